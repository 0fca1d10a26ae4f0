/** `kiln history`: the image's history entries with their layers' sizes, newest first (docker history). */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openLayer, TarContentSize } from '../layer/index.js';
import type { ImageSource, LayerRef } from './source.js';

export interface HistoryRow {
  /** Layer diff_id, or undefined for an entry without a layer (ENV, CMD...). */
  diffId?: string;
  layerIndex?: number;
  created?: string;
  createdBy: string;
  comment?: string;
  /** The layer's size as docker history counts it: its files' bytes (0 for entries without a layer). */
  size: number;
  emptyLayer: boolean;
}

/** Uncompressed size of a layer: recorded by the store, or counted by decompressing it (streamed). */
export async function layerUncompressedSize(layer: LayerRef): Promise<number> {
  if (layer.uncompressedSize !== undefined) return layer.uncompressedSize;
  let n = 0;
  await pipeline(
    openLayer(layer.open()),
    new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        n += chunk.length;
        cb();
      },
    }),
  );
  return n;
}

/**
 * A layer's size as `docker history` and `docker images` count it: the bytes of its files
 * (layer/content-size.ts), recorded by the store or measured by reading the layer (streamed);
 * the tar's length when it is not a readable tar.
 */
export async function layerFilesSize(layer: LayerRef): Promise<number> {
  if (layer.contentSize !== undefined) return layer.contentSize;
  const c = new TarContentSize();
  let n = 0;
  for await (const chunk of openLayer(layer.open())) {
    c.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  return c.size ?? n;
}

export async function imageHistory(src: ImageSource): Promise<HistoryRow[]> {
  const rows: HistoryRow[] = [];
  const entries = src.config.history ?? [];
  let li = 0;
  for (const h of entries) {
    if (h.empty_layer) {
      rows.push({ created: h.created, createdBy: h.created_by ?? '', comment: h.comment, size: 0, emptyLayer: true });
      continue;
    }
    const layer = src.layers[li];
    rows.push({
      diffId: layer?.diffId,
      layerIndex: layer ? li : undefined,
      created: h.created,
      createdBy: h.created_by ?? '',
      comment: h.comment,
      size: layer ? await layerFilesSize(layer) : 0,
      emptyLayer: false,
    });
    li++;
  }
  // Layers without history entries (history is optional in images).
  for (; li < src.layers.length; li++) {
    const layer = src.layers[li]!;
    rows.push({
      diffId: layer.diffId,
      layerIndex: li,
      createdBy: '',
      size: await layerFilesSize(layer),
      emptyLayer: false,
    });
  }
  return rows.reverse();
}
