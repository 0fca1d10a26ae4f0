/**
 * The library's manifest lists (image indexes) in the store, as `docker manifest` and `buildah
 * manifest` make them: `manifestCreate` (from images of the store or references on a registry),
 * `manifestAnnotate` (an image's platform and annotations in the list), `manifestPush` (every
 * image, then the index) and `manifestRemove`; `manifestInspect` reads the store's index or a
 * registry's document. A list is an OCI index tagged in the store (as buildah keeps them), so
 * `kiln images`, `kiln push`, `kiln rmi` and every command taking an image see it.
 */
import { existsSync } from 'node:fs';
import {
  formatPlatform,
  normalizeImageName,
  parseJSONText,
  parseManifestOrIndex,
  parseReference,
  type Descriptor,
  type Index,
  type Platform,
} from '../image/index.js';
import {
  closeIdleConnections,
  pull as registryPull,
  push as registryPush,
  RegistryClient,
  type ClientOptions,
  type PushOptions as RegistryPushOptions,
} from '../registry/index.js';
import {
  defaultStoreRoot,
  isIndexDescriptor,
  platformOfManifest,
  readIndexBlob,
  writeIndex,
  type IndexEntry,
  type Store,
} from '../store/index.js';
import { type Digest, KilnError } from '../util/index.js';
import { openStore, type StoreOptions } from './store.js';

export interface ManifestCreateOptions extends StoreOptions, ClientOptions {
  /** Add to the list NAME names already (docker's --amend); without it an existing list is refused. */
  amend?: boolean;
  /** An IMAGE that is itself a list adds all its images (buildah's --all); without it, it is refused. */
  all?: boolean;
}

export interface ManifestListEntry {
  digest: Digest;
  mediaType: string;
  size: number;
  platform: Platform;
  annotations?: Record<string, string>;
}

export interface ManifestListResult {
  /** The list's full name in the store. */
  name: string;
  /** The index's descriptor (its digest is the list's). */
  descriptor: Descriptor;
  manifests: ManifestListEntry[];
}

/** A list of the store by name: its descriptor and index; a clear error when NAME is no list. */
async function listOf(store: Store, name: string): Promise<{ descriptor: Descriptor; index: Index } | undefined> {
  const d = await store.tagged(name);
  if (!d) return undefined;
  if (!isIndexDescriptor(d))
    throw new KilnError(
      'INVALID',
      `${name} is not a manifest list: it is an image`,
      { image: name },
      { hint: `give the list another name, or 'kiln rmi ${name}' first` },
    );
  return { descriptor: d, index: await readIndexBlob(store, d, name) };
}

function entriesOf(index: Index): IndexEntry[] {
  return index.manifests.map((m) => {
    if (!m.platform)
      throw new KilnError('INVALID', `image ${m.digest} of the list names no platform`, { image: m.digest });
    const { platform, annotations, ...descriptor } = m;
    return { descriptor, platform, ...(annotations ? { annotations } : {}) };
  });
}

function resultOf(name: string, descriptor: Descriptor, entries: IndexEntry[]): ManifestListResult {
  const { annotations: _a, ...d } = descriptor;
  void _a;
  return {
    name,
    descriptor: d,
    manifests: entries.map((e) => ({
      digest: e.descriptor.digest,
      mediaType: e.descriptor.mediaType,
      size: e.descriptor.size,
      platform: e.platform,
      ...(e.annotations ? { annotations: e.annotations } : {}),
    })),
  };
}

function samePlatform(a: Platform, b: Platform): boolean {
  return formatPlatform(a) === formatPlatform(b) && (a['os.version'] ?? '') === (b['os.version'] ?? '');
}

/**
 * The entries an IMAGE argument adds: an image of the store (name, id or digest), else a reference
 * on a registry, whose image is pulled into the store untagged (so the list can be pushed anywhere).
 */
async function entriesFor(store: Store, image: string, o: ManifestCreateOptions): Promise<IndexEntry[]> {
  const tagged = await store.tagged(image);
  if (tagged && isIndexDescriptor(tagged)) {
    if (!o.all)
      throw new KilnError(
        'INVALID',
        `${image} is a manifest list`,
        { image },
        { hint: '--all adds every image of it (as buildah manifest create --all)' },
      );
    return entriesOf(await readIndexBlob(store, tagged, image));
  }
  const local = await store.resolveImage(image).catch((e: unknown) => {
    if (e instanceof KilnError && e.code === 'NOT_FOUND') return undefined;
    throw e;
  });
  if (local) {
    // A store image given by a digest of an index resolves to one of its images: take what was named.
    return [{ descriptor: plain(local.descriptor), platform: await platformOfManifest(store, local.manifest) }];
  }
  let ref;
  try {
    ref = parseReference(image);
  } catch {
    throw new KilnError(
      'NOT_FOUND',
      `no such image: ${image}`,
      { image },
      { hint: "give an image of 'kiln images' or a registry reference" },
    );
  }
  if (ref.tag === undefined && ref.digest === undefined) ref = parseReference(`${ref.name()}:latest`);
  const client = new RegistryClient(o);
  const got = await client.getManifest(ref);
  const doc = parseManifestOrIndex(parseJSONText(got.body, 'manifest', ref.toString()), got.mediaType, ref.toString());
  if (doc.kind === 'manifest') {
    const img = await registryPull(store, `${ref.name()}@${got.digest}`, { ...o, client, tag: false });
    return [{ descriptor: plain(img.descriptor), platform: await platformOfManifest(store, img.manifest) }];
  }
  if (!o.all)
    throw new KilnError(
      'INVALID',
      `${ref.familiar()} is a manifest list`,
      { image },
      { hint: '--all adds every image of it (as buildah manifest create --all)' },
    );
  const out: IndexEntry[] = [];
  for (const m of doc.index.manifests) {
    const img = await registryPull(store, `${ref.name()}@${m.digest}`, { ...o, client, tag: false });
    out.push({
      descriptor: plain(img.descriptor),
      platform: m.platform ?? (await platformOfManifest(store, img.manifest)),
      ...(m.annotations ? { annotations: m.annotations } : {}),
    });
  }
  return out;
}

function plain(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** Creates (or with `amend`, extends) the manifest list NAME of the store from IMAGES. */
export async function manifestCreate(
  name: string,
  images: string[],
  o: ManifestCreateOptions = {},
): Promise<ManifestListResult> {
  const store = await openStore(o);
  const existing = await listOf(store, name);
  if (existing && !o.amend)
    throw new KilnError(
      'USAGE',
      `refusing to amend an existing manifest list with no --amend flag`,
      { image: name },
      { hint: `'kiln manifest create --amend ${name} …' adds to it; 'kiln manifest rm ${name}' drops it` },
    );
  const entries = existing ? entriesOf(existing.index) : [];
  try {
    for (const image of images) {
      for (const e of await entriesFor(store, image, o)) {
        const same = entries.find((x) => x.descriptor.digest === e.descriptor.digest);
        if (same)
          throw new KilnError(
            'USAGE',
            `${image} (${e.descriptor.digest}) is already in the manifest list ${name}`,
            { image },
            { hint: `'kiln manifest annotate ${name} ${image}' changes its platform` },
          );
        const clash = entries.find((x) => samePlatform(x.platform, e.platform));
        if (clash)
          throw new KilnError(
            'USAGE',
            `${image} is for ${formatPlatform(e.platform)}, and ${name} has an image for that platform already (${clash.descriptor.digest})`,
            { image },
            { hint: 'a list holds one image per platform: annotate one of them with another platform' },
          );
        entries.push(e);
      }
    }
  } finally {
    closeIdleConnections();
  }
  if (!entries.length)
    throw new KilnError(
      'USAGE',
      `the manifest list ${name} would hold no image`,
      { image: name },
      { hint: 'name the images to put in it' },
    );
  const descriptor = await writeIndex(store, entries, { annotations: existing?.index.annotations });
  await store.setTag(name, descriptor);
  return resultOf(normalizeImageName(name), descriptor, entries);
}

export interface ManifestAnnotateOptions extends StoreOptions, ClientOptions {
  os?: string;
  arch?: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
  /** KEY=VALUE annotations of the image's entry in the list. */
  annotations?: Record<string, string>;
}

/** Changes the platform (and annotations) of one image of the list NAME, as docker manifest annotate. */
export async function manifestAnnotate(
  name: string,
  image: string,
  o: ManifestAnnotateOptions = {},
): Promise<ManifestListResult> {
  const store = await openStore(o);
  const list = await listOf(store, name);
  if (!list)
    throw new KilnError(
      'NOT_FOUND',
      `manifest list ${name} does not exist`,
      { image: name },
      { hint: `'kiln manifest create ${name} IMAGE…' makes it` },
    );
  const entries = entriesOf(list.index);
  const digest = await digestOf(store, image, o);
  const e = entries.find((x) => x.descriptor.digest === digest);
  if (!e)
    throw new KilnError(
      'NOT_FOUND',
      `manifest for image ${image} does not exist in ${name}`,
      { image },
      { hint: `'kiln manifest inspect ${name}' lists its images` },
    );
  const p: Platform = { ...e.platform };
  if (o.os !== undefined) p.os = o.os;
  if (o.arch !== undefined) p.architecture = o.arch;
  if (o.variant !== undefined) {
    if (o.variant) p.variant = o.variant;
    else delete p.variant;
  }
  if (o.osVersion !== undefined) {
    if (o.osVersion) p['os.version'] = o.osVersion;
    else delete p['os.version'];
  }
  if (o.osFeatures !== undefined) {
    if (o.osFeatures.length) p['os.features'] = o.osFeatures;
    else delete p['os.features'];
  }
  const clash = entries.find((x) => x !== e && samePlatform(x.platform, p));
  if (clash)
    throw new KilnError(
      'USAGE',
      `${name} has an image for ${formatPlatform(p)} already (${clash.descriptor.digest})`,
      { image },
      { hint: 'a list holds one image per platform' },
    );
  e.platform = p;
  if (o.annotations && Object.keys(o.annotations).length)
    e.annotations = { ...(e.annotations ?? {}), ...o.annotations };
  const descriptor = await writeIndex(store, entries, { annotations: list.index.annotations });
  await store.setTag(name, descriptor);
  return resultOf(normalizeImageName(name), descriptor, entries);
}

/** The manifest digest IMAGE names: a digest, an image of the store, else a reference on a registry. */
async function digestOf(store: Store, image: string, o: ClientOptions): Promise<Digest> {
  if (/^sha256:[a-f0-9]{64}$/.test(image)) return image as Digest;
  const tagged = await store.tagged(image);
  if (tagged) return tagged.digest;
  const local = await store.resolveImage(image).catch(() => undefined);
  if (local) return local.descriptor.digest;
  let ref = parseReference(image);
  if (ref.digest) return ref.digest as Digest;
  if (ref.tag === undefined) ref = parseReference(`${ref.name()}:latest`);
  try {
    return (await new RegistryClient(o).getManifest(ref)).digest;
  } finally {
    closeIdleConnections();
  }
}

export interface ManifestPushOptions extends StoreOptions, RegistryPushOptions {
  /** Remove the list from the store once pushed (docker's --purge). */
  purge?: boolean;
}

/** Pushes the list NAME (every image, then the index) to DEST (default: NAME), as docker manifest push. */
export async function manifestPush(
  name: string,
  dest: string | undefined,
  o: ManifestPushOptions = {},
): Promise<{ ref: string; digest: Digest; size: number }> {
  const { root: _r, store: _s, purge, ...rest } = o;
  const store = await openStore(o);
  if (!(await listOf(store, name)))
    throw new KilnError(
      'NOT_FOUND',
      `no such manifest list: ${name}`,
      { image: name },
      { hint: "'kiln manifest create' makes one; 'kiln push' pushes an image" },
    );
  const r = await registryPush(store, name, dest, rest);
  if (purge) await store.removeTag(name);
  return r;
}

/** Removes manifest lists from the store (their images stay), as docker manifest rm. */
export async function manifestRemove(names: string[], o: StoreOptions = {}): Promise<string[]> {
  const store = await openStore(o);
  for (const n of names)
    if (!(await listOf(store, n)))
      throw new KilnError('NOT_FOUND', `No such manifest: ${n}`, { image: n }, { hint: "see 'kiln images'" });
  for (const n of names) await store.removeTag(n);
  return names;
}

/**
 * The document a manifest list or image names: the store's list NAME when there is one (as docker
 * manifest inspect reads its local lists first), else the registry's manifest or index.
 */
export async function manifestInspect(
  reference: string,
  o: StoreOptions & ClientOptions = {},
): Promise<{ ref: string; descriptor: Descriptor; raw: Buffer; source: 'store' | 'registry' }> {
  // A store that does not exist is not made for this: the registry answers.
  const store = o.store ?? (existsSync(o.root ?? defaultStoreRoot()) ? await openStore(o) : undefined);
  const list = store ? await listOf(store, reference).catch(() => undefined) : undefined;
  if (store && list) {
    const { annotations: _a, ...d } = list.descriptor;
    void _a;
    return { ref: reference, descriptor: d, raw: await store.readBlob(d.digest), source: 'store' };
  }
  let ref = parseReference(reference);
  if (ref.tag === undefined && ref.digest === undefined) ref = parseReference(`${ref.name()}:latest`);
  try {
    const m = await new RegistryClient(o).getManifest(ref);
    return {
      ref: ref.toString(),
      descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.body.length },
      raw: m.body,
      source: 'registry',
    };
  } finally {
    closeIdleConnections();
  }
}
