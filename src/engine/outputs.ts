/**
 * Where a build's result goes (BuildKit's exporters): the image into the store (the default,
 * tagged), pushed to a registry, saved as a docker or OCI archive, or the final stage's files as
 * a directory or a tar. A spec says which; `parseOutputSpec` reads the `-o type=…,k=v` text of
 * `kiln build -o`; each kind has one writer behind `OutputWriter`, run by the build once the image
 * is in the store (engine/build-outputs.ts).
 */
import type { Writable } from 'node:stream';
import { saveImagesToFile, writeFilesystemOutput } from '../archive/index.js';
import { normalizeImageName, type Compression, type Descriptor } from '../image/index.js';
import { type ClientOptions, type TransferEvent, push } from '../registry/index.js';
import { parseCompression, validLevel, type LoadedImage, type Store } from '../store/index.js';
import { type Digest, KilnError } from '../util/index.js';

/** How layers leave the machine (registry, archives): BuildKit's compression options. */
export interface LayerCompressionOptions {
  /** gzip (default for a registry or an archive), zstd or none. */
  compression?: Compression;
  /** gzip 1-9, zstd 1-19. */
  compressionLevel?: number;
  /** Re-encode layers compressed otherwise (a base image's, the cache's) too. */
  forceCompression?: boolean;
}

/** The image in the store, under the build's tags (the default output). */
export interface StoreOutput extends LayerCompressionOptions {
  type: 'store';
}
/** The image pushed to a registry: under `name` (several: comma-separated), else each of the build's tags. */
export interface RegistryOutput extends LayerCompressionOptions {
  type: 'registry';
  name?: string;
}
/** The image as a docker-archive (`docker load` reads it) or an OCI-layout tar (a multi-platform build's: its index, every platform). */
export interface ArchiveOutput extends LayerCompressionOptions {
  type: 'docker' | 'oci';
  dest: string;
  /** The name in the archive (default: the build's first tag). */
  name?: string;
}
/** The final stage's files, not an image: into a directory. */
export interface LocalOutput {
  type: 'local';
  dest: string;
}
/** The final stage's files as one tar: a file, or a stream (`dest: '-'` on the CLI is stdout). */
export type TarOutput = { type: 'tar'; dest: string } | { type: 'tar'; stream: Writable };

export type OutputSpec = StoreOutput | RegistryOutput | ArchiveOutput | LocalOutput | TarOutput;
export type OutputType = OutputSpec['type'];

/** What an output wrote. */
export type OutputResult =
  | { type: 'store'; tags: string[] }
  | { type: 'registry'; ref: string; digest: Digest; size: number }
  | { type: 'docker' | 'oci'; dest: string }
  | { type: 'local'; dest: string }
  | { type: 'tar'; dest?: string };

export interface OutputContext {
  store: Store;
  /** The built image, in the store (a multi-platform build's first platform's). */
  image: LoadedImage;
  /** A multi-platform build's index of its images (in the store): what a registry or an OCI archive output writes. */
  index?: Descriptor;
  /** The build's tags (`-t`). */
  tags: string[];
  /** Registry client settings, for a push. */
  registry?: ClientOptions;
  /** Upload progress of a push. */
  onPush?: (ref: string, e: TransferEvent) => void;
  /** Each output once written, in order (the CLI prints "pushed …"). */
  onOutput?: (r: OutputResult) => void;
}

/** One kind of output: writes the built image (or its files) where its spec says. */
export interface OutputWriter<S extends OutputSpec = OutputSpec> {
  write(spec: S, ctx: OutputContext): Promise<OutputResult[]>;
}

const storeWriter: OutputWriter<StoreOutput> = {
  // The engine tagged the image as it wrote it; nothing more to do.
  write: async (_spec, ctx) => [{ type: 'store', tags: ctx.tags }],
};

const registryWriter: OutputWriter<RegistryOutput> = {
  async write(spec, ctx) {
    const names = spec.name ? spec.name.split(/[,;]/).filter(Boolean) : ctx.tags;
    if (!names.length)
      throw new KilnError('USAGE', 'the registry output needs a name: a tag or name=REF', {}, { hint: '-t REF' });
    const out: OutputResult[] = [];
    for (const n of names) {
      // An index is pushed by a name the store gives it (push sends every image, then the index).
      if (ctx.index && !ctx.tags.includes(n)) await ctx.store.setTag(n, ctx.index);
      const r = await push(ctx.store, ctx.index ? n : ctx.image.descriptor.digest, n, {
        ...ctx.registry,
        compression: layerCompression(spec),
        compressionLevel: spec.compressionLevel,
        onProgress: ctx.onPush && ((e) => ctx.onPush!(n, e)),
      });
      const result: OutputResult = { type: 'registry', ...r };
      ctx.onOutput?.(result);
      out.push(result);
    }
    return out;
  },
};

/**
 * A docker-archive (manifest.json) names one image per name and has no place for an index: a
 * multi-platform build's is refused, as BuildKit's docker exporter refuses to export a manifest list.
 */
export function refuseDockerArchiveOfIndex(platforms: readonly string[]): never {
  throw new KilnError(
    'UNSUPPORTED',
    '--output type=docker writes a docker-archive, which cannot hold the index of a multi-platform build',
    {},
    {
      hint: `use -o type=oci,dest=FILE (every platform in one OCI layout), or build one platform (--platform ${platforms[0] ?? 'os/arch'}); kiln save --platform os/arch NAME saves one platform of the index as a docker-archive`,
    },
  );
}

const archiveWriter: OutputWriter<ArchiveOutput> = {
  async write(spec, ctx) {
    const given = spec.name ?? ctx.tags[0];
    const name = given ? normalizeImageName(given) : undefined;
    // A multi-platform build's archive is its index, with every platform's image (BuildKit's oci exporter).
    if (ctx.index && spec.type === 'docker') refuseDockerArchiveOfIndex([]);
    await saveImagesToFile(
      ctx.store,
      [ctx.index ? { name, index: ctx.index } : { ...ctx.image, name }],
      spec.type,
      spec.dest,
    );
    return [{ type: spec.type, dest: spec.dest }];
  },
};

const filesWriter: OutputWriter<LocalOutput | TarOutput> = {
  async write(spec, ctx) {
    await writeFilesystemOutput(ctx.store, ctx.image, spec);
    return [
      spec.type === 'local'
        ? { type: 'local', dest: spec.dest }
        : { type: 'tar', dest: 'dest' in spec ? spec.dest : undefined },
    ];
  },
};

/** The writer of each kind of output. */
export function outputWriter(spec: OutputSpec): OutputWriter {
  switch (spec.type) {
    case 'store':
      return storeWriter as OutputWriter;
    case 'registry':
      return registryWriter as OutputWriter;
    case 'docker':
    case 'oci':
      return archiveWriter as OutputWriter;
    case 'local':
    case 'tar':
      return filesWriter as OutputWriter;
  }
}

/** Whether an output is the final stage's files rather than an image (nothing is tagged then, as BuildKit). */
export function isFilesOutput(spec: OutputSpec): spec is LocalOutput | TarOutput {
  return spec.type === 'local' || spec.type === 'tar';
}

/**
 * The compression of an output's layers: what it says, else none for the store and the files
 * (the store keeps plain tars), gzip for a registry or an archive, as BuildKit.
 */
export function layerCompression(spec: OutputSpec): Compression {
  if ('compression' in spec && spec.compression) return spec.compression;
  return spec.type === 'store' || isFilesOutput(spec) ? 'none' : 'gzip';
}

/** Checks a spec a library user wrote (the CLI's come from parseOutputSpec, already checked). */
export function checkOutputSpec(spec: OutputSpec, tags: readonly string[] = []): void {
  const t = (spec as { type: string }).type;
  if (!['store', 'registry', 'docker', 'oci', 'local', 'tar'].includes(t))
    throw new KilnError('USAGE', `unknown output type "${t}": use store, registry, docker, oci, local or tar`);
  if ((spec.type === 'docker' || spec.type === 'oci' || spec.type === 'local') && !spec.dest)
    throw new KilnError('USAGE', `output type=${spec.type} needs dest=${spec.type === 'local' ? 'DIR' : 'FILE'}`);
  if (spec.type === 'tar' && !('stream' in spec) && !spec.dest)
    throw new KilnError('USAGE', 'output type=tar needs dest=FILE (or a stream)');
  if (spec.type === 'registry' && !spec.name && !tags.length)
    throw new KilnError('USAGE', '--output type=registry needs a name: -t REF or name=REF');
  if ('compressionLevel' in spec && spec.compressionLevel !== undefined) {
    const c = layerCompression(spec);
    if (!validLevel(c, spec.compressionLevel))
      throw new KilnError(
        'USAGE',
        `invalid compression-level in --output for ${c === 'none' ? 'uncompressed layers' : c}`,
        {},
        { hint: 'gzip takes 1-9, zstd 1-19' },
      );
  }
}

/**
 * `kiln build -o SPEC` (and `--push`) as a typed spec, docker's way: `type=store` (the default),
 * `type=docker|oci,dest=FILE`, `type=registry[,name=REF]` (`type=image,push=true` is the same;
 * `type=image` alone the store), `type=local,dest=DIR` or `type=tar,dest=FILE`, with
 * `compression=uncompressed|gzip|zstd`, `compression-level=N`, `force-compression=true|false`.
 * Shorthands: `-o DIR` is type=local,dest=DIR, `-o -` a tar on stdout (`{ type: 'tar', dest: '-' }`:
 * the caller gives the stream). Pure; `tags` are the build's -t (a registry output needs a name).
 */
export function parseOutputSpec(text: string, tags: readonly string[] = []): OutputSpec {
  const spec = text === '-' ? 'type=tar,dest=-' : !text.includes('=') ? `type=local,dest=${text}` : text;
  const kv = Object.fromEntries(spec.split(',').map((p) => p.split('=', 2) as [string, string]));
  if (!['store', 'docker', 'oci', 'registry', 'image', 'local', 'tar'].includes(kv.type ?? ''))
    throw new KilnError(
      'USAGE',
      `unsupported --output "${text}": use type=store, type=docker,dest=FILE, type=oci,dest=FILE, type=registry[,name=REF], type=local,dest=DIR or type=tar,dest=FILE`,
    );
  if (kv.type === 'local' && kv.dest === '-')
    throw new KilnError(
      'USAGE',
      '--output type=local needs a directory, not "-"',
      {},
      { hint: 'type=tar,dest=- writes the files as a tar on stdout' },
    );
  let type = kv.type!;
  if (type === 'image') type = kv.push === 'true' ? 'registry' : 'store';
  if (type !== 'store' && type !== 'registry' && !kv.dest)
    throw new KilnError('USAGE', `--output type=${type} needs dest=${type === 'local' ? 'DIR' : 'FILE'}`);
  if (type === 'registry' && !kv.name && !tags.length)
    throw new KilnError('USAGE', '--output type=registry needs a name: -t REF or name=REF');
  let compression: Compression | undefined;
  if (kv.compression !== undefined) {
    compression = parseCompression(kv.compression);
    if (!compression)
      throw new KilnError(
        'USAGE',
        `unknown compression "${kv.compression}" in --output`,
        {},
        { hint: 'use compression=uncompressed, gzip or zstd' },
      );
  }
  if (kv['force-compression'] !== undefined && !['true', 'false'].includes(kv['force-compression']))
    throw new KilnError('USAGE', `invalid force-compression "${kv['force-compression']}" in --output: true or false`);
  const c: LayerCompressionOptions = {};
  if (compression) c.compression = compression;
  if (kv['force-compression'] === 'true') c.forceCompression = true;
  if (kv['compression-level'] !== undefined) c.compressionLevel = Number(kv['compression-level']);
  let out: OutputSpec;
  if (type === 'store') out = { type, ...c };
  else if (type === 'registry') out = { type, ...(kv.name ? { name: kv.name } : {}), ...c };
  else if (type === 'docker' || type === 'oci')
    out = { type, dest: kv.dest!, ...(kv.name ? { name: kv.name } : {}), ...c };
  else if (type === 'local') out = { type, dest: kv.dest! };
  else out = { type: 'tar', dest: kv.dest! };
  // The level is checked against the compression the files outputs take too (none: no level).
  if (c.compressionLevel !== undefined) {
    const lc = compression ?? (type === 'store' || type === 'local' || type === 'tar' ? 'none' : 'gzip');
    if (!validLevel(lc, c.compressionLevel))
      throw new KilnError(
        'USAGE',
        `invalid compression-level in --output for ${lc === 'none' ? 'uncompressed layers' : lc}`,
        {},
        { hint: 'gzip takes 1-9, zstd 1-19' },
      );
  }
  return out;
}

/** Write each output of a build, in order. */
export async function writeOutputs(specs: readonly OutputSpec[], ctx: OutputContext): Promise<OutputResult[]> {
  const results: OutputResult[] = [];
  for (const s of specs) results.push(...(await outputWriter(s).write(s, ctx)));
  return results;
}
