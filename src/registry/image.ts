/**
 * A remote image as an `Image` (image/image.ts): the reference is resolved to the platform's
 * manifest and its config is fetched when it is opened (both verified by digest); a layer is
 * fetched only when it is read, streamed and checked against its digest and size as it flows (a
 * mismatch fails the stream at its end). Nothing is written to the store: `pull` is what copies
 * an image into it.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createHash } from 'node:crypto';
import { type Digest, KilnError } from '../util/index.js';
import {
  layerHistory,
  type Image,
  type Layer,
  hostPlatform,
  parseReference,
  type ImageReference,
  type Descriptor,
  type Platform,
  parseImageConfig,
  parseJSONText,
  parseManifestOrIndex,
} from '../image/index.js';
import type { RegistryClient } from './client.js';
import { clientFor, resolveManifest, type PullOptions } from './pull.js';

export interface RemoteImageOptions extends Omit<PullOptions, 'tag' | 'concurrency'> {
  client?: RegistryClient;
  platform?: Platform;
}

/** The image a reference names on its registry (`:latest` when it names no tag or digest). */
export async function openRemoteImage(refText: string, opts: RemoteImageOptions = {}): Promise<Image> {
  const parsed = parseReference(refText);
  const ref =
    parsed.tag === undefined && parsed.digest === undefined ? parseReference(`${parsed.name()}:latest`) : parsed;
  const client = clientFor(opts);
  const name = ref.toString();
  const { descriptor, body } = await resolveManifest(client, ref, opts.platform ?? hostPlatform());
  // The client checked the manifest against its digest (the one asked for, or the one the registry named).
  const doc = parseManifestOrIndex(parseJSONText(body, 'manifest', name), descriptor.mediaType, name);
  if (doc.kind !== 'manifest') throw new KilnError('INTERNAL', 'expected a manifest');
  const manifest = doc.manifest;
  const configBytes = await fetchAll(client, ref, manifest.config);
  const config = parseImageConfig(parseJSONText(configBytes, 'image config', name), name);
  if (manifest.layers.length !== config.rootfs.diff_ids.length)
    throw new KilnError(
      'INVALID',
      `image has ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`,
      { image: name },
    );
  const hist = layerHistory(config);
  return {
    display: refText,
    name,
    id: manifest.config.digest,
    digest: descriptor.digest,
    descriptor,
    config,
    manifest,
    kind: 'registry',
    layers: manifest.layers.map((d, i): Layer => ({
      index: i,
      diffId: config.rootfs.diff_ids[i]!,
      digest: d.digest,
      mediaType: d.mediaType,
      size: d.size,
      history: hist[i],
      open: () => fetchStream(client, ref, d),
    })),
    rawConfig: async () => configBytes,
    rawManifest: async () => body,
    close: async () => undefined,
  };
}

/** A small blob (a config), whole, verified. */
async function fetchAll(client: RegistryClient, ref: ImageReference, d: Descriptor): Promise<Buffer> {
  if (d.size > 64 << 20)
    throw new KilnError('INVALID', `blob ${d.digest} is too large for an image config`, { image: ref.toString() });
  const chunks: Buffer[] = [];
  for await (const c of fetchStream(client, ref, d)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A blob as a stream, fetched when first read, checked against its descriptor as it flows. */
function fetchStream(client: RegistryClient, ref: ImageReference, d: Descriptor): Readable {
  const hash = createHash('sha256');
  let got = 0;
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      got += chunk.length;
      if (got > d.size) return cb(mismatch(`is larger than its ${d.size} bytes`));
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (got !== d.size) return cb(mismatch(`has ${got} bytes, not ${d.size}`));
      const digest = `sha256:${hash.digest('hex')}` as Digest;
      cb(digest === d.digest ? null : mismatch(`does not match its digest (got ${digest})`));
    },
  });
  const mismatch = (what: string) =>
    new KilnError(
      'DIGEST',
      `blob ${d.digest} from ${ref.name()} ${what}`,
      { image: ref.toString() },
      { hint: 'the registry serves different content than the manifest names' },
    );
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    client.fetchBlob(ref, d.digest).then(
      (res) => {
        res.body.on('error', (e) => check.destroy(e));
        check.once('close', () => res.body.destroy());
        res.body.pipe(check);
      },
      (e: unknown) => check.destroy(e as Error),
    );
  };
  // Fetched on the first read (or the first listener for data), not when the layer is listed.
  const read = check._read.bind(check);
  check._read = (n: number) => {
    start();
    read(n);
  };
  return check;
}
