/**
 * Layers compressed for distribution. The store keeps the layers a build makes as plain tars, as
 * docker's own image store does: no build step waits for gzip, and reading a layer back (partial
 * views, analysis, `kiln run`) skips decompression. A push, an OCI or docker archive of a build and
 * a cache export carry compressed layers: they are made here, when they are needed, once per layer
 * and compression. The store remembers the compressed blob of a diff_id (variants/), so a second
 * push compresses nothing and gives the same digests; the encoder is deterministic, so a layer
 * compressed here is the very blob a build that compressed it at once would have made.
 */
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { canonicalJSON, MediaType, type Compression, type Descriptor, type Manifest } from '../image/index.js';
import { announceContentSize, openLayer, measureLayer } from '../layer/index.js';
import { isDigest, type Digest, KilnError, writeFileAtomic } from '../util/index.js';
import type { LoadedImage, Store } from './store.js';
import { variantPath } from './variants.js';

export interface CompressOptions {
  compression: Compression;
  /** Compression level (gzip 1-9, zstd 1-19); default: the encoder's (gzip 6, zstd 3). */
  level?: number;
  /** Re-encode layers compressed otherwise too (BuildKit's force-compression); else only plain tars. */
  force?: boolean;
  /** A layer is being compressed (progress: it can take a while). */
  onLayer?: (layer: Descriptor) => void;
}

/** What a layer's media type says of its compression; undefined for layers never re-encoded (foreign, non-distributable). */
export function compressionOf(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MediaType.OciLayer:
      return 'none';
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

/** The name a compression has in docker's and BuildKit's flags (`compression=uncompressed`). */
export function parseCompression(name: string): Compression | undefined {
  return ({ uncompressed: 'none', none: 'none', gzip: 'gzip', zstd: 'zstd' } as Record<string, Compression>)[name];
}

/** The levels each compression takes (`compression-level`). */
export function validLevel(compression: Compression, level: number): boolean {
  return (
    Number.isInteger(level) &&
    (compression === 'gzip' ? level >= 1 && level <= 9 : compression === 'zstd' ? level >= 1 && level <= 19 : false)
  );
}

/** The blob of `diffId` compressed with `compression`, if the store made it before and still has it. */
async function knownVariant(
  store: Store,
  diffId: Digest,
  compression: Compression,
  level: number | undefined,
): Promise<Descriptor | undefined> {
  const t = await fsp.readFile(variantPath(store.root, diffId, compression, level), 'utf8').catch(() => undefined);
  if (!t) return undefined;
  try {
    const d = JSON.parse(t) as Descriptor;
    if (typeof d.mediaType !== 'string' || !isDigest(d.digest) || !Number.isSafeInteger(d.size)) return undefined;
    return (await store.hasBlob(d.digest)) ? { mediaType: d.mediaType, digest: d.digest, size: d.size } : undefined;
  } catch {
    return undefined; // damaged: made again
  }
}

/** A layer as `opts.compression` wants it: the same descriptor when it already is, else a blob made (or found) in the store. */
export async function compressedLayer(
  store: Store,
  layer: Descriptor,
  diffId: Digest,
  opts: CompressOptions,
): Promise<Descriptor> {
  return (await readyLayer(store, layer, diffId, opts)) ?? encodeVariant(store, layer, diffId, opts);
}

/** The layer as `opts.compression` wants it without encoding anything (itself, or a variant made before); undefined: it needs encoding. */
export async function readyLayer(
  store: Store,
  layer: Descriptor,
  diffId: Digest,
  opts: CompressOptions,
): Promise<Descriptor | undefined> {
  const have = compressionOf(layer.mediaType);
  if (have === undefined || have === opts.compression || (have !== 'none' && !opts.force)) return layer;
  return knownVariant(store, diffId, opts.compression, opts.level);
}

/** Encode the layer as `opts.compression` into the store and remember it; `tee` sees the bytes as they are written. */
export async function encodeVariant(
  store: Store,
  layer: Descriptor,
  diffId: Digest,
  opts: CompressOptions & {
    tee?: (chunk: Buffer) => Promise<void>;
    /** The blob's descriptor as soon as it is encoded and checked, before the store has committed it. */
    encoded?: (blob: Descriptor) => void;
  },
): Promise<Descriptor> {
  opts.onLayer?.(layer);
  const facts = await store.layerFacts(layer.digest);
  const tar = openLayer(store.openBlob(layer.digest));
  // The content size the store knows already: the encoder need not parse every tar header again.
  const contentSize = facts?.contentSize;
  if (contentSize !== undefined) announceContentSize(tar, () => contentSize);
  const info = await store
    .putLayer(tar, {
      compression: opts.compression,
      level: opts.level,
      expectedDiffId: diffId,
      tops: facts?.tops,
      skeleton: facts?.skeleton,
      tee: opts.tee,
      encoded: opts.encoded && ((i) => opts.encoded!({ mediaType: i.mediaType, digest: i.digest, size: i.size })),
    })
    .catch((e: unknown) => {
      if (e instanceof KilnError && e.code === 'DIGEST')
        throw new KilnError(
          'DIGEST',
          `layer ${layer.digest} in the store is damaged: ${e.message}`,
          { path: store.blobPath(layer.digest) },
          { hint: 'remove the image (kiln rmi), then pull or build it again' },
        );
      throw e;
    });
  const d: Descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
  const file = variantPath(store.root, diffId, opts.compression, opts.level);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(d));
  return d;
}

/**
 * The image with its layers as `opts.compression` wants them: the same image when they are, else a
 * new manifest (same config, so the same image id) written to the store. A docker manifest stays one
 * for gzip; for zstd or plain tars it becomes an OCI manifest, as BuildKit's exporter does (docker's
 * schema has no media type for them).
 */
export async function compressedImage(store: Store, img: LoadedImage, opts: CompressOptions): Promise<LoadedImage> {
  const ids = img.config.rootfs.diff_ids;
  const layers: Descriptor[] = [];
  // One layer at a time: the encoder already uses every core.
  for (const [i, l] of img.manifest.layers.entries()) layers.push(await compressedLayer(store, l, ids[i]!, opts));
  return withLayers(store, img, layers, opts.compression);
}

/** The image with its layers replaced by these (the same contents, compressed as `compression`). */
export async function withLayers(
  store: Store,
  img: LoadedImage,
  layers: Descriptor[],
  compression: Compression,
): Promise<LoadedImage> {
  // A layer that needed nothing is the very descriptor of the image (readyLayer returns it as is).
  if (layers.every((l, i) => l === img.manifest.layers[i])) return img;
  const docker = img.manifest.mediaType === MediaType.DockerManifest;
  const keepDocker = docker && compression === 'gzip';
  const manifest: Manifest = {
    ...img.manifest,
    mediaType: keepDocker || !docker ? img.manifest.mediaType : MediaType.OciManifest,
    config: docker && !keepDocker ? { ...img.manifest.config, mediaType: MediaType.OciConfig } : img.manifest.config,
    layers: layers.map((l) => ({ ...l, mediaType: layerMediaType(l.mediaType, keepDocker) })),
  };
  const m = await store.putBlob(canonicalJSON(manifest));
  return {
    ...img,
    descriptor: { mediaType: manifest.mediaType ?? MediaType.OciManifest, digest: m.digest, size: m.size },
    manifest,
  };
}

/** A layer's media type in a docker (gzip) or an OCI manifest. */
function layerMediaType(mediaType: string, docker: boolean): string {
  if (docker) return mediaType === MediaType.OciLayerGzip ? MediaType.DockerLayerGzip : mediaType;
  if (mediaType === MediaType.DockerLayerGzip) return MediaType.OciLayerGzip;
  if (mediaType === MediaType.DockerLayerForeignGzip) return MediaType.OciLayerNondistributableGzip;
  return mediaType;
}

/** What a layer blob unpacks to: its diff_id and the size of its tar. */
export interface LayerMeasure {
  diffId: Digest;
  uncompressedSize: number;
}

/**
 * A layer blob measured as it arrives (a pull's download): decompressed and hashed in the same pass
 * that writes it to the store, so it need not be read again to be checked against its config's
 * diff_id. Its bytes are given in order by `write`; `restart` when they start over from the first.
 * A blob that does not read as a layer gives no measure (`measured()` is undefined): the store's
 * verifyLayer then reads it and says what is wrong with it, as for any blob.
 */
export class IncomingLayer {
  private input = new PassThrough({ highWaterMark: 1 << 20 });
  private result: Promise<LayerMeasure | undefined> = this.measure(this.input);
  private failed = false;

  private measure(input: PassThrough): Promise<LayerMeasure | undefined> {
    return measureLayer(input).then(
      (m) => ({ diffId: m.diffId, uncompressedSize: m.uncompressedSize }),
      () => {
        if (this.input === input) this.failed = true; // not fed any more
        input.destroy();
        return undefined;
      },
    );
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failed) return;
    const input = this.input;
    // Backpressure from the decompressor; a measure that failed does not hold the download.
    if (!input.write(chunk)) await Promise.race([once(input, 'drain').catch(() => undefined), this.result]);
  }

  restart(): void {
    this.input.destroy();
    this.failed = false;
    this.input = new PassThrough({ highWaterMark: 1 << 20 });
    this.result = this.measure(this.input);
  }

  /** Every byte was written: what the blob unpacks to, or undefined when it is no layer. */
  measured(): Promise<LayerMeasure | undefined> {
    if (!this.failed) this.input.end();
    return this.result;
  }
}
