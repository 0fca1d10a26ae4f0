/**
 * Named build contexts (`kiln build --build-context NAME=VALUE`, as BuildKit's): another source a
 * Dockerfile reaches by name in `FROM NAME`, `COPY --from=NAME` and `RUN --mount from=NAME`. The
 * name also replaces an image of that name (`--build-context alpine=docker-image://alpine:3.19`
 * makes every `FROM alpine` use that one) and a stage of that name (the stage is not built).
 *
 * The VALUE:
 *   - a directory: its files (its own .dockerignore applies), owned by root, as the main
 *     context's. kiln makes it an image of one layer (made again each build: same files, same
 *     layer, so the steps after it stay cached);
 *   - `docker-image://REF`: that image (from the store, else pulled);
 *   - `oci-layout://PATH[:TAG|@DIGEST]`: an image from an OCI image layout directory (the only
 *     one it holds, or the one with that tag or digest; an index picks the build's platform).
 *   - a git repository (`https://host/repo.git#ref:subdir`, `git://…`, `git@host:repo.git`) or an
 *     `http(s)://` URL of a tarball: fetched as the main context is (remote-context.ts: a shallow
 *     checkout without .git, an unpacked archive) when the build first needs it, then taken as a
 *     directory (BuildKit: a URL context is a directory for `COPY --from=NAME`).
 * A library caller may also give an `Image` it holds (image/image.ts: an archive's, a registry's),
 * kind 'given': it is copied into the store and verified, as an oci-layout:// context's is.
 *
 * BuildKit looks the name up as the reference is written in the Dockerfile in its familiar form
 * without ":latest" (`FROM docker.io/library/alpine:latest` is `alpine`): `contextKey` does the
 * same on both sides.
 */
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import { BuildContext } from '../context/index.js';
import {
  contextKey,
  parseReference,
  type ImageConfig,
  type Platform,
  parseIndex,
  parseJSONText,
  type Image,
} from '../image/index.js';
import { tarEntries, type EntrySpec } from '../layer/index.js';
import { type LoadedImage, type Store, copyImageToStore } from '../store/index.js';
import { openImageArchive } from '../archive/index.js';
import { KilnError } from '../util/index.js';
import { isRemoteContext, prepareRemoteContext } from './remote-context.js';

export type NamedContext =
  | { name: string; kind: 'dir'; dir: string }
  | { name: string; kind: 'image'; ref: string }
  | { name: string; kind: 'oci-layout'; dir: string; select?: { tag?: string; digest?: string } }
  /** A git repository or an http(s) tarball, fetched when first needed. */
  | { name: string; kind: 'remote'; url: string }
  /** An `Image` a library caller holds (an archive's, a registry's, the store's): copied into the store, verified. */
  | { name: string; kind: 'given'; image: Image };

export { contextKey };

/** `NAME=VALUE` of --build-context. */
export function parseBuildContextFlag(spec: string): NamedContext {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1)
    throw new KilnError(
      'USAGE',
      `invalid --build-context "${spec}": use NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://PATH[:TAG|@DIGEST], NAME=https://…tar.gz or NAME=GIT-URL#REF:SUBDIR`,
    );
  const rawName = spec.slice(0, eq);
  const value = spec.slice(eq + 1);
  const name = contextKey(rawName);
  if (name === undefined)
    throw new KilnError(
      'USAGE',
      `invalid --build-context name "${rawName}": a name is written as an image name is (lowercase letters, digits, ".", "_", "-", "/")`,
    );
  if (value.startsWith('docker-image://')) {
    const ref = value.slice('docker-image://'.length);
    try {
      parseReference(ref);
    } catch (e) {
      throw new KilnError(
        'USAGE',
        `--build-context ${rawName}: invalid image reference "${ref}"${e instanceof KilnError ? `: ${e.message}` : ''}`,
      );
    }
    return { name, kind: 'image', ref };
  }
  if (value.startsWith('oci-layout://')) {
    const rest = value.slice('oci-layout://'.length);
    const at = rest.lastIndexOf('@');
    const colon = rest.lastIndexOf(':');
    let dir = rest;
    let select: { tag?: string; digest?: string } | undefined;
    if (at > 0) {
      dir = rest.slice(0, at);
      select = { digest: rest.slice(at + 1) };
    } else if (colon > rest.lastIndexOf('/')) {
      dir = rest.slice(0, colon);
      select = { tag: rest.slice(colon + 1) };
    }
    if (!existsSync(path.join(dir, 'index.json')))
      throw new KilnError(
        'NOT_FOUND',
        `--build-context ${rawName}: ${dir} is not an OCI image layout (no index.json)`,
        { path: dir },
      );
    return { name, kind: 'oci-layout', dir: path.resolve(dir), select };
  }
  if (value !== '-' && isRemoteContext(value)) return { name, kind: 'remote', url: value };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value))
    throw new KilnError(
      'USAGE',
      `--build-context ${rawName}=${value}: not a context kiln can fetch`,
      {},
      { hint: 'give a directory, docker-image://REF, oci-layout://PATH, a git URL or an http(s) URL of a tarball' },
    );
  if (!existsSync(value) || !lstatSync(value).isDirectory())
    throw new KilnError(
      'NOT_FOUND',
      `--build-context ${rawName}: ${value} is not a directory`,
      { path: value },
      { hint: 'give a directory, docker-image://REF or oci-layout://PATH' },
    );
  return { name, kind: 'dir', dir: path.resolve(value) };
}

/** The image a directory, OCI-layout, remote or given-Image context stands for, in the store. */
export async function namedContextImage(
  store: Store,
  nc: NamedContext & { kind: 'dir' | 'oci-layout' | 'given' | 'remote' },
  platform: Platform,
  signal?: AbortSignal,
): Promise<LoadedImage> {
  if (nc.kind === 'given') return givenImage(store, nc);
  if (nc.kind === 'remote') return remoteImage(store, nc, platform, signal);
  return nc.kind === 'dir' ? dirImage(store, nc.dir, platform) : ociLayoutImage(store, nc, platform);
}

async function givenImage(store: Store, nc: NamedContext & { kind: 'given' }): Promise<LoadedImage> {
  return copyImageToStore(store, nc.image).catch((e: unknown) => {
    throw e instanceof KilnError
      ? new KilnError(e.code, `--build-context ${nc.name}: ${e.message}`, { image: nc.image.display }, { hint: e.hint })
      : e;
  });
}

/** A git or tarball context: fetched into the store's temporary space, made an image as a directory is, removed. */
async function remoteImage(
  store: Store,
  nc: NamedContext & { kind: 'remote' },
  platform: Platform,
  signal?: AbortSignal,
): Promise<LoadedImage> {
  let fetched;
  try {
    fetched = await prepareRemoteContext(nc.url, { tmpDir: store.tmpDir, stdin: process.stdin, signal });
  } catch (e) {
    throw e instanceof KilnError
      ? new KilnError(e.code, `--build-context ${nc.name}=${nc.url}: ${e.message}`, e.place, { hint: e.hint })
      : e;
  }
  try {
    if (fetched.dockerfileText !== undefined)
      throw new KilnError(
        'BUILD',
        `--build-context ${nc.name}=${nc.url}: the URL gives a file, not an archive`,
        {},
        { hint: 'a URL context is a tarball (plain, gzip, bzip2 or xz) or a git repository' },
      );
    return await dirImage(store, fetched.dir, platform, nc.url);
  } finally {
    fetched.cleanup();
  }
}

async function dirImage(store: Store, dir: string, platform: Platform, shown = dir): Promise<LoadedImage> {
  const ctx = BuildContext.open(dir);
  function* entries(): Generator<EntrySpec> {
    for (const e of ctx.walk('')) {
      const st = e.stat;
      const base = { path: e.rel, uid: 0, gid: 0, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isDirectory()) yield { ...base, type: 'directory' };
      else if (st.isSymbolicLink()) yield { ...base, type: 'symlink', linkname: readlinkSync(e.abs), mode: 0o777 };
      else if (st.isFile()) yield { ...base, type: 'file', source: e.abs, size: st.size };
    }
  }
  const layer = await store.putLayer(tarEntries(entries()), { compression: 'none' });
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    config: {},
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created_by: `build context ${shown}`, comment: 'kiln --build-context' }],
  };
  const written = await store.writeImage(config, [
    { mediaType: layer.mediaType, digest: layer.digest, size: layer.size },
  ]);
  return store.loadImage(written.descriptor);
}

async function ociLayoutImage(
  store: Store,
  nc: NamedContext & { kind: 'oci-layout' },
  platform: Platform,
): Promise<LoadedImage> {
  // The layout is read by archive/'s reader, the image copied into the store blob by blob and verified.
  const layout = await openImageArchive(nc.dir, { display: nc.dir });
  try {
    const where = `${nc.dir}/index.json`;
    const index = parseIndex(parseJSONText(await layout.readDocument('index.json'), where), where);
    const sel = nc.select;
    const picked = index.manifests.flatMap((d, i) =>
      (
        sel?.digest
          ? d.digest === sel.digest
          : sel?.tag
            ? refNameIs(d.annotations?.['org.opencontainers.image.ref.name'], sel.tag)
            : true
      )
        ? [i]
        : [],
    );
    if (picked.length !== 1) {
      const what = sel?.digest
        ? `no manifest ${sel.digest}`
        : sel?.tag
          ? `no image tagged "${sel.tag}"`
          : `${index.manifests.length} images and no tag or digest to pick one`;
      throw new KilnError(
        'NOT_FOUND',
        `--build-context ${nc.name}: ${what} in the OCI layout ${nc.dir}`,
        { path: nc.dir },
        { hint: 'oci-layout://PATH:TAG or oci-layout://PATH@sha256:…' },
      );
    }
    const image = await layout.image({ index: picked[0]!, platform });
    const loaded = await copyImageToStore(store, image).catch((e: unknown) => {
      throw e instanceof KilnError
        ? new KilnError(e.code, `--build-context ${nc.name}: ${e.message}`, { path: nc.dir }, { hint: e.hint })
        : e;
    });
    return { ...loaded, name: undefined };
  } finally {
    await layout.close();
  }
}

/** An index entry's ref.name is a tag (the spec's use) or, as some tools write it, a whole reference. */
function refNameIs(refName: string | undefined, tag: string): boolean {
  return refName !== undefined && (refName === tag || refName.endsWith(`:${tag}`));
}
