/**
 * Where the store remembers the compressed variants of its plain layers (variants/<diff_id>.<c>.json,
 * made by compressed.ts) and forgetting those whose blob gc removed. Apart from compressed.ts so that
 * the store (gc) and compressed.ts (which uses the store) do not import each other.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type Compression } from '../image/index.js';
import { digestHex, isDigest, type Digest } from '../util/index.js';
import { storeLayout } from './layout.js';

/** The record of a layer's variant for one compression (and level) under the store root. */
export function variantPath(root: string, diffId: Digest, compression: Compression, level: number | undefined): string {
  return path.join(
    storeLayout(root).variantsDir,
    `${digestHex(diffId)}.${compression}${level !== undefined ? `-${level}` : ''}.json`,
  );
}

/** Forget compressed variants whose blob is gone (gc calls this after removing blobs). */
export async function sweepVariants(root: string): Promise<void> {
  const layout = storeLayout(root);
  const dir = layout.variantsDir;
  for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
    const t = await fsp.readFile(path.join(dir, f), 'utf8').catch(() => '');
    let digest: unknown;
    try {
      digest = (JSON.parse(t) as { digest?: unknown }).digest;
    } catch {
      digest = undefined;
    }
    const gone =
      typeof digest !== 'string' ||
      !isDigest(digest) ||
      !(await fsp.stat(layout.blobFile(digest)).catch(() => undefined));
    if (gone) await fsp.rm(path.join(dir, f), { force: true });
  }
}
