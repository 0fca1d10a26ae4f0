/**
 * `--squash` and `--squash-all` (buildah's and podman's): the image's layers above the final
 * stage's base image (or all of them) merged into one. Streamed: a first pass reads the layers'
 * headers and decides, for each path, which layer's entry is final (later layers win, a whiteout
 * drops what earlier squashed layers put below it, an opaque directory its children); a second pass
 * copies those entries, bodies straight from their blobs, into one tar. A whiteout stays in the
 * merged layer, as it deletes from the layers below it (the base); an opaque marker too. A path
 * deleted then made again keeps both (OCI: a whiteout applies only to the layers below its own).
 */
import { PassThrough, type Readable } from 'node:stream';
import { type Compression, type Descriptor, type HistoryEntry, type ImageConfig } from '../image/index.js';
import { encodeHeader, END_OF_ARCHIVE, openLayer, padding, readTar, type LayerInfo } from '../layer/index.js';
import { type Store } from '../store/index.js';

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

export interface SquashOptions {
  store: Store;
  /** How many layers at the bottom stay as they are (the base image's; 0 for --squash-all). */
  keep: number;
  /** How many history entries are the base image's (0 for --squash-all): those stay as they are. */
  baseHistory: number;
  compression: Compression;
  level?: number;
  /** The squash history entry's time. */
  created: string;
  /** Text of the added history entry (which flag). */
  createdBy: string;
}

/** The image's config and layers with the layers above `keep` merged into one (unchanged when fewer than two). */
export async function squashImage(
  config: ImageConfig,
  layers: Descriptor[],
  o: SquashOptions,
): Promise<{ config: ImageConfig; layers: Descriptor[]; squashed?: LayerInfo }> {
  const above = layers.slice(o.keep);
  if (above.length < 2 && o.keep > 0) return { config, layers };
  if (above.length === 0) return { config, layers };
  // With nothing below (--squash-all), whiteouts and opaque markers have nothing to hide: left out.
  const plan = await finalEntries(o.store, above, o.keep > 0);
  const merged = await o.store.putLayer(mergedTar(o.store, above, plan), {
    compression: o.compression,
    level: o.level,
  });
  const out = structuredClone(config);
  out.rootfs.diff_ids = [...config.rootfs.diff_ids.slice(0, o.keep), merged.diffId];
  // Every history entry stays; those that made a squashed layer become empty ones, and one entry
  // stands for the merged layer (the non-empty entries still count the layers).
  const kept: HistoryEntry[] = (out.history ?? []).map((h, i) =>
    i < o.baseHistory || h.empty_layer ? h : { ...h, empty_layer: true },
  );
  kept.push({ created: o.created, created_by: o.createdBy, comment: `${above.length} layers squashed into one` });
  out.history = kept;
  out.created = o.created;
  const descriptor: Descriptor = { mediaType: merged.mediaType, digest: merged.digest, size: merged.size };
  return { config: out, layers: [...layers.slice(0, o.keep), descriptor], squashed: merged };
}

/** For each squashed layer (by index), the entry numbers (in tar order) that are final. */
type Plan = Set<number>[];

async function finalEntries(store: Store, layers: Descriptor[], below: boolean): Promise<Plan> {
  /** path → [layer, entry number] of the entry in effect. */
  const owner = new Map<string, [number, number]>();
  const plan: Plan = layers.map(() => new Set<number>());
  /** Whiteouts by the path they delete: one is enough. */
  const whiteouts = new Map<string, [number, number]>();
  const drop = (map: Map<string, [number, number]>, p: string) => {
    const e = map.get(p);
    if (e) plan[e[0]]!.delete(e[1]);
    map.delete(p);
  };
  /** What the squashed layers put at `dir` (when `self`) and below it goes. */
  const dropBelow = (dir: string, self: boolean) => {
    const prefix = dir === '' ? '' : `${dir}/`;
    if (self) drop(owner, dir);
    for (const p of [...owner.keys()]) if (p.startsWith(prefix)) drop(owner, p);
  };
  for (const [l, d] of layers.entries()) {
    let n = 0;
    for await (const { header, body } of readTar(openLayer(store.openBlob(d.digest)))) {
      for await (const _ of body) void _;
      const no = n++;
      const name = header.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
      const slash = name.lastIndexOf('/');
      const dir = slash < 0 ? '' : name.slice(0, slash);
      const base = name.slice(slash + 1);
      if (base === OPAQUE) {
        dropBelow(dir, false);
        if (below) plan[l]!.add(no); // hides the base's children too
        continue;
      }
      if (base.startsWith(WH)) {
        const target = dir === '' ? base.slice(WH.length) : `${dir}/${base.slice(WH.length)}`;
        dropBelow(target, true);
        drop(whiteouts, target);
        if (below) {
          whiteouts.set(target, [l, no]);
          plan[l]!.add(no);
        }
        continue;
      }
      drop(owner, name);
      // A directory replaced by something else takes its children with it.
      if (header.type !== 'directory') dropBelow(name, false);
      owner.set(name, [l, no]);
      plan[l]!.add(no);
    }
  }
  return plan;
}

/** The final entries of each layer, in layer order, as one tar. */
function mergedTar(store: Store, layers: Descriptor[], plan: Plan): Readable {
  const out = new PassThrough();
  const write = (b: Buffer) => (out.write(b) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', r)));
  void (async () => {
    for (const [l, d] of layers.entries()) {
      let n = 0;
      const keep = plan[l]!;
      for await (const { header, body } of readTar(openLayer(store.openBlob(d.digest)))) {
        const no = n++;
        if (!keep.has(no)) {
          for await (const _ of body) void _;
          continue;
        }
        await write(encodeHeader(header));
        for await (const chunk of body) await write(chunk);
        await write(padding(header.type === 'file' ? header.size : 0));
      }
    }
    await write(END_OF_ARCHIVE);
    out.end();
  })().catch((e: unknown) => out.destroy(e as Error));
  return out;
}
