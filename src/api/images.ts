/**
 * The library's image operations on a store: `pull` and `push` (registries), `save` and `load`
 * (docker-archive and OCI-layout tars), `inspect` (docker inspect's fields) and `run` (a
 * container from an image, as docker run).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import {
  loadArchive,
  type LoadResult,
  saveImages,
  saveImagesToFile,
  type ArchiveFormat,
  type SaveInput,
  type SavedEntry,
} from '../archive/index.js';
import {
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  familiarName,
  normalizeImageName,
  parseReference,
  type ContainerConfig,
  type Descriptor,
  type HistoryEntry,
  type Platform,
} from '../image/index.js';
import {
  type PullOptions as RegistryPullOptions,
  pull as registryPull,
  push as registryPush,
  type PushOptions as RegistryPushOptions,
} from '../registry/index.js';
import {
  containerArgs,
  containerEnv,
  ensureEmulation,
  runStep,
  type BackendKind,
  type Mount,
  type SnapshotterKind,
} from '../sandbox/index.js';
import { isIndexDescriptor, type LoadedImage } from '../store/index.js';
import { type Digest, KilnError } from '../util/index.js';
import { openStore, type StoreOptions } from './store.js';
import { requireSandboxPrivileges } from './privilege.js';

export interface PullOptions extends StoreOptions, Omit<RegistryPullOptions, 'platform'> {
  /** The platform to pick from a multi-platform image: os/arch[/variant] or a Platform (default: this machine's). */
  platform?: string | Platform;
}

/** Pulls an image from a registry into the store (tagged under its full name); progress through `onProgress`. */
export async function pull(reference: string, o: PullOptions = {}): Promise<LoadedImage> {
  const { root: _r, store: _s, platform, ...rest } = o;
  return registryPull(await openStore(o), reference, {
    ...rest,
    platform: typeof platform === 'string' ? parsePlatform(platform) : platform,
  });
}

export interface PushOptions extends StoreOptions, RegistryPushOptions {
  /** Where to push (default: the image's name). */
  destination?: string;
}

export interface PushResult {
  ref: string;
  digest: Digest;
  size: number;
}

/** Pushes an image of the store (name or id) to a registry, its plain layers compressed (gzip unless told). */
export async function push(image: string, o: PushOptions = {}): Promise<PushResult> {
  const { root: _r, store: _s, destination, ...rest } = o;
  return registryPush(await openStore(o), image, destination, rest);
}

export interface SaveOptions extends StoreOptions {
  /** docker (default: `docker load` reads it) or oci (an OCI image layout). */
  format?: ArchiveFormat;
  /** The file to write (atomically), or… */
  dest?: string;
  /** …a stream to write the tar to. */
  stream?: Writable;
  /** Of a multi-platform image, save this platform's image only (default: the index, every platform). */
  platform?: string | Platform;
}

/**
 * Saves images of the store (names or ids) to one archive. A name of a multi-platform image saves
 * its index and every platform's image (with `platform`: that one image only); in a docker-archive
 * manifest.json then names this machine's image of it (else its first), as Docker 25+ writes it:
 * each entry of the result says which.
 */
export async function save(images: string[], o: SaveOptions): Promise<SavedEntry[]> {
  const store = await openStore(o);
  const format = o.format ?? 'docker';
  if (format !== 'docker' && format !== 'oci')
    throw new KilnError('USAGE', `unknown archive format "${String(format)}": use docker or oci`);
  if (o.dest === undefined && !o.stream) throw new KilnError('USAGE', 'save needs a dest file or a stream');
  const inputs: SaveInput[] = [];
  const platform = typeof o.platform === 'string' ? parsePlatform(o.platform) : o.platform;
  for (const i of images) {
    const tagged = platform ? undefined : await store.tagged(i);
    if (tagged && isIndexDescriptor(tagged))
      inputs.push({
        name: normalizeImageName(i),
        index: { mediaType: tagged.mediaType, digest: tagged.digest, size: tagged.size },
      });
    else inputs.push(await store.resolveImage(i, { platform }));
  }
  return o.dest !== undefined
    ? saveImagesToFile(store, inputs, format, o.dest)
    : saveImages(store, inputs, format, o.stream!);
}

export interface LoadOptions extends StoreOptions {
  /** The archive file, or… */
  input?: string;
  /** …a stream of it (named `where` in messages). */
  stream?: Readable;
  where?: string;
}

/** Loads the images of a docker-archive or OCI-layout tar into the store. */
export async function load(o: LoadOptions): Promise<LoadResult> {
  if (o.input !== undefined && !existsSync(o.input))
    throw new KilnError('NOT_FOUND', 'no such file', { path: o.input });
  // A file is read in place (archive/read.ts); a stream is spooled to the store's tmp/ first.
  const src = o.input ?? o.stream;
  if (!src) throw new KilnError('USAGE', 'load needs an input file or a stream');
  return loadArchive(await openStore(o), src, o.where ?? o.input ?? 'stream');
}

/** An image as `docker inspect` shows it, plus its manifest. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Created?: string;
  Author: string;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  Config: ContainerConfig;
  RootFS: { Type: string; Layers: string[] };
  History: HistoryEntry[];
  Manifest: { Digest: string; MediaType: string; Layers: Descriptor[] };
}

/** docker inspect's view of images of the store (names or ids). */
export async function inspect(
  images: string[],
  o: StoreOptions & { platform?: string | Platform } = {},
): Promise<ImageInspect[]> {
  const store = await openStore(o);
  const platform = typeof o.platform === 'string' ? parsePlatform(o.platform) : o.platform;
  const out: ImageInspect[] = [];
  for (const ref of images) {
    const img = await store.resolveImage(ref, { platform });
    if (platform) refuseOtherPlatform(ref, img, platform);
    // Its names: the tags of the image, and those of a multi-platform image holding it when named so.
    const given = await store.tagged(ref);
    const records = (await store.listImages()).filter(
      (r) => r.descriptor.digest === img.descriptor.digest || (given && r.descriptor.digest === given.digest),
    );
    const c = img.config;
    out.push({
      Id: img.id,
      RepoTags: records.map((r) => familiarName(r.name)),
      RepoDigests: records.map((r) => `${familiarName(parseReference(r.name).name())}@${r.descriptor.digest}`),
      Created: c.created,
      Author: c.author ?? '',
      Architecture: c.architecture,
      Variant: c.variant,
      Os: c.os,
      Size: await store.imageSize(img),
      Config: c.config ?? {},
      RootFS: { Type: c.rootfs.type, Layers: c.rootfs.diff_ids },
      History: c.history ?? [],
      Manifest: { Digest: img.descriptor.digest, MediaType: img.descriptor.mediaType, Layers: img.manifest.layers },
    });
  }
  return out;
}

export interface RunOptions extends StoreOptions {
  /** The command and its arguments (default: the image's CMD). */
  command?: string[];
  /** KEY=VALUE, or KEY (taken from `hostEnv`), as docker run -e. */
  env?: string[];
  /** Where a bare -e KEY takes its value (default process.env). */
  hostEnv?: NodeJS.ProcessEnv;
  /** user[:group] or uid[:gid], names from the image. */
  user?: string;
  /** Absolute working directory (made when missing). */
  workdir?: string;
  network?: 'host' | 'none';
  /** Bind mounts (`parseVolume` reads docker's -v HOST:CONTAINER[:ro]); missing host directories are made. */
  volumes?: Mount[];
  /** Replace the image's entrypoint ("" clears it; the image's CMD is dropped too, as docker). */
  entrypoint?: string;
  runtime?: string;
  snapshotter?: SnapshotterKind;
  backend?: BackendKind;
  signal?: AbortSignal;
  /** The container's output (default: discarded). */
  onStdout?: (b: Buffer) => void;
  onStderr?: (b: Buffer) => void;
  /** The image of a multi-platform image to run (os/arch[/variant]; default this machine's), as docker run --platform;
   * another architecture runs under QEMU (binfmt_misc). */
  platform?: string | Platform;
}

/** Runs a container from an image of the store in the foreground, as docker run; its changes are discarded. */
export async function run(image: string, o: RunOptions = {}): Promise<{ exitCode: number }> {
  requireSandboxPrivileges('run');
  if (o.workdir !== undefined && !o.workdir.startsWith('/'))
    throw new KilnError('USAGE', `the working directory "${o.workdir}" is invalid, it needs to be an absolute path`);
  const store = await openStore(o);
  const platform = typeof o.platform === 'string' ? parsePlatform(o.platform) : o.platform;
  const img = await store.resolveImage(image, { platform });
  if (platform) refuseOtherPlatform(image, img, platform);
  // Never the wrong architecture silently: a foreign one needs QEMU registered (with F) first.
  ensureEmulation(img.config.architecture, `the image ${image} (${img.config.os}/${img.config.architecture})`);
  const c = img.config.config ?? {};
  const args = containerArgs(c, o.command ?? [], o.entrypoint);
  if (args.length === 0)
    throw new KilnError(
      'USAGE',
      `no command specified: image ${image} has no ENTRYPOINT or CMD`,
      { image },
      { hint: 'give one after the image name' },
    );
  const hostname = randomBytes(6).toString('hex');
  const env = containerEnv(c.Env ?? [], o.env ?? [], hostname, o.hostEnv);
  const mounts = o.volumes ?? [];
  for (const m of mounts) if (m.source && !existsSync(m.source)) mkdirSync(m.source, { recursive: true });
  const r = await runStep({
    store,
    layers: img.manifest.layers,
    diffIds: img.config.rootfs.diff_ids,
    args,
    env,
    cwd: o.workdir ?? (c.WorkingDir || '/'),
    user: o.user ?? c.User ?? '',
    network: o.network ?? 'host',
    mounts,
    hostname,
    capture: false,
    snapshotter: o.snapshotter,
    backend: o.backend,
    runtime: o.runtime,
    onStdout: o.onStdout ?? (() => undefined),
    onStderr: o.onStderr ?? (() => undefined),
    signal: o.signal,
  });
  return { exitCode: r.exitCode };
}

/** An image of the store asked for by platform that is for another one: docker run --platform's refusal. */
export function refuseOtherPlatform(image: string, img: LoadedImage, want: Platform): void {
  const have = normalizePlatform({
    os: img.config.os,
    architecture: img.config.architecture,
    ...(img.config.variant ? { variant: img.config.variant } : {}),
  });
  const w = normalizePlatform(want);
  if (
    have.os === w.os &&
    have.architecture === w.architecture &&
    (want.variant === undefined || have.variant === w.variant)
  )
    return;
  throw new KilnError(
    'NOT_FOUND',
    `image with reference ${image} was found but does not match the specified platform: wanted ${formatPlatform(want)}, actual: ${formatPlatform(have)}`,
    { image },
    { hint: `pull the image for ${formatPlatform(want)} (kiln pull --platform ${formatPlatform(want)} …)` },
  );
}
