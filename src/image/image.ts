/**
 * An image, whoever holds it: a manifest, a config and layers (go-containerregistry's pkg/v1
 * `Image` and `Layer`). The store (store/image.ts), the archive readers (archive/read.ts:
 * docker-archive and OCI layout, as a tar or a directory) and the registry (registry/image.ts: a
 * remote image whose layers are fetched when they are read) implement it; analyze, save, push and
 * the engine's image inputs take it. Pure types: opening a layer is the implementation's business.
 */
import type { Readable } from 'node:stream';
import { type Digest } from '../util/index.js';
import type { Descriptor, HistoryEntry, ImageConfig, Manifest } from './types.js';

/** One layer of an image, in the order of the config's diff_ids. */
export interface Layer {
  index: number;
  /** The digest of the uncompressed tar (the config's rootfs.diff_ids[index]). */
  diffId: Digest;
  /** The blob's digest (compressed as the holder keeps it), when it has one: a legacy docker-archive's `layer.tar` is named by path only. */
  digest?: Digest;
  mediaType?: string;
  /** Blob size in bytes, when known. */
  size?: number;
  /** The history entry that made this layer ("(missing)" sources have none). */
  history?: HistoryEntry;
  /** Size of the uncompressed tar, when known without reading it. */
  uncompressedSize?: number;
  /** Its files' bytes (what docker shows as a layer's size: layer/content-size.ts), when known without reading it. */
  contentSize?: number;
  /** Where the blob lies in a local file (byte range, end inclusive), when it does: read in place. */
  file?: { path: string; start: number; end: number };
  /** The blob as held (gzip, zstd or plain tar: layer/decompress.ts's openLayer makes the tar of any). */
  open(): Readable;
}

/** Where an image is held. */
export type ImageKind = 'store' | 'archive' | 'registry';

export interface Image {
  /** What the user named. */
  display: string;
  /** Full normalised name when the image has one. */
  name?: string;
  /** Image id: the config digest. */
  id: Digest;
  /** Manifest digest, when the image has a manifest. */
  digest?: Digest;
  /** The manifest's descriptor (media type, digest, size), when the image has a manifest. */
  descriptor?: Descriptor;
  config: ImageConfig;
  manifest?: Manifest;
  layers: Layer[];
  kind: ImageKind;
  /** The config as its bytes (its digest is the id). */
  rawConfig(): Promise<Buffer>;
  /** The manifest as its bytes (its digest is `digest`), when the image has one. */
  rawManifest?(): Promise<Buffer>;
  /** Release what reading it holds (a decompressed archive's temp file, a connection). */
  close(): Promise<void>;
}

/** Pair each non-empty history entry with its layer, in order (docker's rule). */
export function layerHistory(config: ImageConfig): (HistoryEntry | undefined)[] {
  const n = config.rootfs.diff_ids.length;
  const nonEmpty = (config.history ?? []).filter((h) => !h.empty_layer);
  return Array.from({ length: n }, (_, i) => nonEmpty[i]);
}
