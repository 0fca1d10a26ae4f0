/**
 * One streaming pass over an image's layers: each layer blob is decompressed and its tar entries
 * read in order, never unpacked. What the pass collects is chosen by the caller: the per-layer
 * entry lists (for efficiency and per-layer changes), content digests of regular files (to tell a
 * modified file from a rewritten identical one), and the package catalogers.
 */
import { createHash } from 'node:crypto';
import { KilnError, isKilnError } from '../util/index.js';
import { cleanEntryName, type TarHeader } from '../layer/index.js';
import { LayerReader } from './inflate.js';
import { TarScanner, type BodySink } from './tarscan.js';
import type { LayerEntry } from './efficiency.js';
import { FsTree, applyLayerEntries, splitWhiteout, type LayerChanges } from './filetree.js';
import { Cataloger } from './sbom/catalog.js';
import type { OsRelease, Package } from './sbom/types.js';
import type { ImageSource } from './source.js';

export interface WalkOptions {
  /** Keep every layer's entries and stack them into the final filesystem. */
  entries?: boolean;
  /** Run the package catalogers. */
  catalog?: boolean;
  /**
   * Which regular files to hash: 'auto' (files a later layer may rewrite — every layer but the
   * last — and files that replace one below), 'all', or 'none'. A layer index in `skipHash` is
   * never hashed (e.g. a layer two images share, for diff).
   */
  hash?: 'auto' | 'all' | 'none';
  skipHash?: Set<number>;
  /** Called as each layer starts (progress). */
  onLayer?: (index: number, count: number) => void;
}

export interface WalkedLayer {
  index: number;
  diffId: string;
  entries?: LayerEntry[];
  changes?: LayerChanges;
  /** Entries with names that could escape the root (".."/absolute): skipped, counted. */
  unsafeEntries: number;
}

export interface WalkResult {
  layers: WalkedLayer[];
  /** The stacked filesystem (when entries were kept). */
  tree?: FsTree;
  packages: Package[];
  os: OsRelease;
}

/** Names that are already clean (relative, no "." or ".." parts, no empty parts, no NUL) pass as they are. */
const NEEDS_CLEANING = /^\.?\/|\/\/|(?:^|\/)\.\.?(?:\/|$)|\0/;
function cleanName(name: string): string {
  // Rootfs tars (tar -C dir .) name everything "./…": the common prefix is dropped first.
  const n = name.startsWith('./') ? name.slice(2) : name;
  return NEEDS_CLEANING.test(n) ? cleanEntryName(name) : n;
}

export async function walkImage(src: ImageSource, opts: WalkOptions = {}): Promise<WalkResult> {
  const cat = opts.catalog ? new Cataloger() : undefined;
  const tree = opts.entries ? new FsTree() : undefined;
  const hashMode = opts.hash ?? (opts.entries ? 'auto' : 'none');
  const layers: WalkedLayer[] = [];
  const n = src.layers.length;
  const reader = new LayerReader();
  try {
    for (const layer of src.layers) {
      opts.onLayer?.(layer.index, n);
      const entries: LayerEntry[] | undefined = opts.entries ? [] : undefined;
      let unsafeEntries = 0;
      const finish = (p: string, header: TarHeader, content: Buffer | undefined, hash: string | undefined) => {
        cat?.entry(layer.index, p, header, content);
        if (entries) {
          const e: LayerEntry = {
            path: p,
            type: header.type,
            size: header.size,
            mode: header.mode,
            uid: header.uid,
            gid: header.gid,
          };
          if (header.linkname !== undefined) e.linkname = header.linkname;
          if (hash) e.hash = hash;
          entries.push(e);
        }
      };
      const scanner = new TarScanner((header): BodySink | undefined => {
        let p: string;
        try {
          p = cleanName(header.name);
        } catch (e) {
          if (isKilnError(e) && e.code === 'UNSAFE') {
            unsafeEntries++;
            return undefined;
          }
          throw e;
        }
        if (p === '') return undefined;
        let hashIt = false;
        if (header.type === 'file' && hashMode !== 'none' && !opts.skipHash?.has(layer.index) && !splitWhiteout(p)) {
          if (hashMode === 'all' || layer.index < n - 1) hashIt = true;
          else if (layer.index > 0 && tree?.get(p)?.info?.type === 'file') hashIt = true;
        }
        const keep = cat?.wants(p, header) ?? false;
        if (!hashIt && !keep) {
          finish(p, header, undefined, undefined);
          return undefined;
        }
        const h = hashIt ? createHash('sha256') : undefined;
        const chunks: Buffer[] = [];
        return {
          data: (c) => {
            h?.update(c);
            if (keep) chunks.push(c);
          },
          end: () =>
            finish(p, header, keep ? Buffer.concat(chunks) : undefined, h ? `sha256:${h.digest('hex')}` : undefined),
        };
      });
      try {
        await reader.pump(layer, (c) => scanner.write(c));
        scanner.end();
      } catch (e) {
        throw inLayer(e, layer, src);
      }
      cat?.endLayer();
      const wl: WalkedLayer = { index: layer.index, diffId: layer.diffId, unsafeEntries };
      if (entries && tree) {
        wl.entries = entries;
        wl.changes = applyLayerEntries(tree, entries, layer.index);
      }
      layers.push(wl);
    }
  } finally {
    await reader.close();
  }
  const diffIds = src.layers.map((l) => l.diffId);
  return { layers, tree, packages: cat ? cat.packages(diffIds) : [], os: cat ? cat.osRelease() : {} };
}

/** A layer's read error, prefixed with the layer (number and diff_id) and the image it belongs to. */
export function inLayer(e: unknown, layer: { index: number; diffId: string }, src: { display: string }): unknown {
  if (!isKilnError(e)) return e;
  return new KilnError(
    e.code,
    `layer ${layer.index + 1} (${layer.diffId.slice(0, 19)}): ${e.message}`,
    { image: src.display },
    { hint: e.hint, cause: e },
  );
}
