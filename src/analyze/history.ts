/** `kiln history`: the image's history entries with their layers' sizes, newest first (docker history). */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openLayer } from '../layer/decompress.js';
import type { ImageSource, LayerRef } from './source.js';

export interface HistoryRow {
  /** Layer diff_id, or undefined for an entry without a layer (ENV, CMD...). */
  diffId?: string;
  layerIndex?: number;
  created?: string;
  createdBy: string;
  comment?: string;
  /** Uncompressed layer size in bytes (0 for entries without a layer). */
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
      size: layer ? await layerUncompressedSize(layer) : 0,
      emptyLayer: false,
    });
    li++;
  }
  // Layers without history entries (history is optional in images).
  for (; li < src.layers.length; li++) {
    const layer = src.layers[li]!;
    rows.push({ diffId: layer.diffId, layerIndex: li, createdBy: '', size: await layerUncompressedSize(layer), emptyLayer: false });
  }
  return rows.reverse();
}
