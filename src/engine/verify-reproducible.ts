/**
 * `kiln build --verify-reproducible`: the target built twice, each time in a clean scratch store of
 * its own (no build cache, no snapshot shared), with the same SOURCE_DATE_EPOCH; the images'
 * digests compared; when they differ, the first differing file named with its layer, its step and
 * the kind of difference, and a likely cause (heuristics). docs/reproducible.md describes it.
 *
 * The images the build reads (FROM, COPY --from, RUN --mount from=) are given to each scratch store
 * from the main store's blobs, hard-linked (content-addressed blobs are never written again: the
 * main store's copy stays as it was), their unpacked snapshots symlinked (read-only lower dirs);
 * what the main store lacks, each build pulls for itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, mkdtemp, rename, rm, stat, symlink } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { parseDockerfile } from '../dockerfile/index.js';
import { parsePlatform, type Descriptor, type ImageConfig } from '../image/index.js';
import { openLayer, readTar, type TarHeader } from '../layer/index.js';
import { createPlan } from '../plan/index.js';
import { pickSnapshotter } from '../sandbox/index.js';
import { Store, type LoadedImage } from '../store/index.js';
import { type Digest, type ErrorPlace } from '../util/index.js';
import { build, type BuildOptions, type BuildResult } from './engine.js';
import type { EventSink } from './events.js';

export type DifferenceKind = 'content' | 'mtime' | 'owner' | 'mode' | 'order' | 'xattr' | 'missing' | 'type' | 'link';

export interface FileDifference {
  path: string;
  kind: DifferenceKind;
  /** What each build has, in words (`mtime 1700000000`, `absent`, …). */
  first: string;
  second: string;
  /** Index of the layer in the image (0: the bottom one). */
  layerIndex: number;
  layers: [Digest, Digest];
  step?: ErrorPlace & { text?: string };
  /** A guess from the difference itself (labelled as such when shown). */
  likelyCause?: string;
}

export interface VerifyResult {
  reproducible: boolean;
  sourceDateEpoch: number;
  parallel: boolean;
  builds: [BuildResult, BuildResult];
  /** The first difference found: a file, or (every layer the same) a field of the config. */
  difference?: FileDifference | { config: string; first: string; second: string };
  /** How many layers differ (a difference in one layer often changes no other). */
  layersDiffering?: number;
  ms: [number, number];
}

export interface VerifyOptions extends Omit<BuildOptions, 'tags' | 'cacheFrom' | 'cacheTo' | 'sourceDateEpoch'> {
  sourceDateEpoch: number;
  /** Where the scratch stores go (default: the store's tmp dir, so that blobs can be hard-linked). */
  scratchDir?: string;
  /** Build one after the other even when the CPUs would allow both at once. */
  sequential?: boolean;
  /** Keep the two scratch stores (for a look afterwards): their paths are in the result. */
  keepScratch?: boolean;
}

/** The images a build of this Dockerfile reads from outside (FROM, --from, from=): their references. */
function externalImages(o: VerifyOptions): string[] {
  const df = parseDockerfile(o.dockerfileText, { file: o.dockerfileName });
  const plan = createPlan(df, { buildArgs: o.buildArgs, target: o.target, platform: o.platform ?? 'linux/amd64' });
  const refs = new Set<string>();
  for (const s of plan.stages) {
    if (s.base.kind === 'image') refs.add(s.base.ref);
    for (const p of [...(s.onbuild ?? []), ...s.instructions])
      for (const src of p.sources ?? []) if (src.kind === 'image') refs.add(src.ref);
  }
  return [...refs];
}

async function linkBlob(from: Store, to: Store, d: Digest): Promise<void> {
  const dest = to.blobPath(d);
  if (await stat(dest).catch(() => undefined)) return;
  await mkdir(path.dirname(dest), { recursive: true });
  try {
    await link(from.blobPath(d), dest);
  } catch {
    // Another filesystem: a copy, atomically (temp + rename) as every store write.
    const tmp = `${dest}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
    await copyFile(from.blobPath(d), tmp);
    await rename(tmp, dest);
  }
}

/** `img`'s blobs (manifest, config, layers) and its layers' facts, from one store into another. */
async function linkImage(from: Store, to: Store, img: LoadedImage): Promise<void> {
  for (const d of [img.descriptor.digest, img.manifest.config.digest, ...img.manifest.layers.map((l) => l.digest)])
    await linkBlob(from, to, d);
  for (const l of img.manifest.layers) {
    const facts = await from.layerFacts(l.digest);
    if (facts) await to.recordLayer(l.digest, facts);
  }
}

/** Give `to` the image `ref` as `from` has it (blobs linked, the tag, the layers' facts). */
async function seedImage(from: Store, to: Store, ref: string, platform?: string): Promise<boolean> {
  let img: LoadedImage;
  try {
    img = await from.resolveImage(ref, { platform: parsePlatform(platform ?? 'linux/amd64') });
  } catch {
    return false; // not in the main store: each build pulls it
  }
  await linkImage(from, to, img);
  // The base's unpacked snapshots too, when the main store has them: overlay mounts them as read-only
  // lower dirs and nothing writes a snapshot once made, so both builds may share them (unpacking a
  // 500 MB base twice would be most of a small build's time).
  const ids = img.config.rootfs.diff_ids;
  for (let i = 1; i <= ids.length; i++) {
    const have = from.snapshotPath(ids.slice(0, i));
    const dest = to.snapshotPath(ids.slice(0, i));
    if (!(await from.hasSnapshot(ids.slice(0, i))) || (await stat(dest).catch(() => undefined))) continue;
    await mkdir(path.dirname(dest), { recursive: true });
    await symlink(have, dest);
  }
  await to.setTag(ref, img.descriptor);
  return true;
}

/** Build twice on scratch stores and compare; the main store is read (base images) and not written. */
export async function verifyReproducible(o: VerifyOptions, emit: EventSink = () => undefined): Promise<VerifyResult> {
  const scratchRoot = await mkdtemp(path.join(o.scratchDir ?? o.store.tmpDir, 'verify-'));
  try {
    const refs = externalImages(o);
    const stores: Store[] = [];
    for (const name of ['first', 'second']) {
      const s = await Store.open({ root: path.join(scratchRoot, name) });
      for (const ref of refs) await seedImage(o.store, s, ref, o.platform);
      stores.push(s);
    }
    // One snapshotter for both builds, chosen once: overlay and native layers differ where a RUN opened
    // a file for writing and left it unchanged (overlay copies it up: docs/rootless.md), so two builds
    // that fell back differently would differ for kiln's reason, not the Dockerfile's.
    const snapshotter =
      o.snapshotter ?? (await pickSnapshotter(o.store.runDir, undefined, o.backend === 'host-root')).kind;
    const parallel = !o.sequential && availableParallelism() >= 4;
    const one = async (i: number): Promise<[BuildResult, number]> => {
      const t0 = Date.now();
      // The first build's events are the progress shown; the second's only its warnings and errors.
      const sink: EventSink =
        i === 0 ? emit : (e) => (e.type === 'step-error' || e.type === 'warning' ? emit(e) : undefined);
      const r = await build({ ...o, snapshotter, store: stores[i]!, noCache: true, tags: undefined }, sink);
      return [r, Date.now() - t0];
    };
    const results = parallel ? await Promise.all([one(0), one(1)]) : [await one(0), await one(1)];
    const [a, b] = [results[0]!, results[1]!];
    const out: VerifyResult = {
      reproducible: a[0].descriptor.digest === b[0].descriptor.digest,
      sourceDateEpoch: o.sourceDateEpoch,
      parallel,
      builds: [a[0], b[0]],
      ms: [a[1], b[1]],
    };
    if (!out.reproducible) {
      const [ia, ib] = await Promise.all([
        stores[0]!.loadImage(a[0].descriptor),
        stores[1]!.loadImage(b[0].descriptor),
      ]);
      Object.assign(out, await firstDifference(stores[0]!, ia, stores[1]!, ib, a[0].made));
    } else {
      // The image the user asked for: into the main store (blobs linked), as a normal build would.
      await linkImage(stores[0]!, o.store, await stores[0]!.loadImage(a[0].descriptor));
    }
    return out;
  } finally {
    if (!o.keepScratch) await rm(scratchRoot, { recursive: true, force: true });
  }
}

interface EntryFacts {
  header: TarHeader;
  sha256: string;
  index: number;
}

async function layerEntries(store: Store, layer: Descriptor): Promise<Map<string, EntryFacts>> {
  const out = new Map<string, EntryFacts>();
  let index = 0;
  for await (const e of readTar(openLayer(store.openBlob(layer.digest)))) {
    const h = createHash('sha256');
    for await (const c of e.body) h.update(c);
    out.set(e.header.name, { header: e.header, sha256: h.digest('hex'), index: index++ });
  }
  return out;
}

/** Up to `cap` bytes of one file of a layer (for the heuristics). */
async function entryBytes(store: Store, layer: Descriptor, name: string, cap = 1 << 20): Promise<Buffer> {
  for await (const e of readTar(openLayer(store.openBlob(layer.digest)))) {
    if (e.header.name !== name) continue;
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of e.body) {
      if (n < cap) parts.push(c.subarray(0, cap - n));
      n += c.length;
    }
    return Buffer.concat(parts);
  }
  return Buffer.alloc(0);
}

function xattrText(h: TarHeader): string {
  return Object.entries(h.xattrs ?? {})
    .sort(([x], [y]) => (x < y ? -1 : 1))
    .map(([k, v]) => `${k}=${v.toString('hex')}`)
    .join(',');
}

/** The first way two entries of one path differ, in the order a reader notices it. */
function compareEntries(
  a: EntryFacts,
  b: EntryFacts,
): { kind: DifferenceKind; first: string; second: string } | undefined {
  const ha = a.header;
  const hb = b.header;
  if (ha.type !== hb.type) return { kind: 'type', first: ha.type, second: hb.type };
  if ((ha.linkname ?? '') !== (hb.linkname ?? ''))
    return { kind: 'link', first: `→ ${ha.linkname ?? ''}`, second: `→ ${hb.linkname ?? ''}` };
  if (a.sha256 !== b.sha256)
    return {
      kind: 'content',
      first: `${ha.size} bytes, sha256 ${a.sha256.slice(0, 12)}`,
      second: `${hb.size} bytes, sha256 ${b.sha256.slice(0, 12)}`,
    };
  if (ha.mode !== hb.mode) return { kind: 'mode', first: ha.mode.toString(8), second: hb.mode.toString(8) };
  if (ha.uid !== hb.uid || ha.gid !== hb.gid)
    return { kind: 'owner', first: `${ha.uid}:${ha.gid}`, second: `${hb.uid}:${hb.gid}` };
  if (ha.mtime !== hb.mtime) return { kind: 'mtime', first: `mtime ${ha.mtime}`, second: `mtime ${hb.mtime}` };
  if (xattrText(ha) !== xattrText(hb))
    return { kind: 'xattr', first: xattrText(ha) || 'none', second: xattrText(hb) || 'none' };
  return undefined;
}

const TIMESTAMP =
  /\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}:\d{2}|\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b|\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b|\b1[5-9]\d{8}\b/;
const RANDOM_PART = /[0-9a-f]{8,}|[A-Za-z0-9]{6,}(?=[._-]|$)/;

/** A guess at why a file differs, from the two versions alone. */
export function guessCause(
  kind: DifferenceKind,
  pathName: string,
  a: Buffer | undefined,
  b: Buffer | undefined,
  otherNames: string[] = [],
): string | undefined {
  if (kind === 'mtime')
    return 'a file time older than SOURCE_DATE_EPOCH that differs between builds (a tool set it: touch -d, tar -x, an unpacked archive keeps its own times; newer ones are clamped)';
  if (kind === 'order') return 'entries in another order: the step wrote them in another order';
  if (kind === 'missing') {
    const base = path.posix.basename(pathName);
    const similar = otherNames.find((n) => {
      const o = path.posix.basename(n);
      return (
        o !== base && o.length === base.length && o.replace(/[0-9a-zA-Z]/g, 'x') === base.replace(/[0-9a-zA-Z]/g, 'x')
      );
    });
    if (similar || RANDOM_PART.test(base))
      return `a random name: the other build has ${similar ? `/${similar}` : 'no file of that name'} (mktemp, a UUID, a process id in a file name)`;
    return undefined;
  }
  if (kind !== 'content' || !a || !b) return undefined;
  if (pathName.endsWith('.pyc')) return pycCause(a, b);
  if (/\.(gz|tgz)$/.test(pathName) && a.length > 8 && b.length > 8 && a.subarray(4, 8).compare(b.subarray(4, 8)) !== 0)
    return 'a gzip header time: gzip writes the time unless -n';
  if (a.subarray(0, 4).toString('latin1') === 'PK\x03\x04')
    return "a zip archive (wheel, jar, zip): it stores each member's mtime; give the tool SOURCE_DATE_EPOCH (ARG SOURCE_DATE_EPOCH in that stage: pip, setuptools and zip-based tools honour it) or normalise the times";
  let at = 0;
  while (at < a.length && at < b.length && a[at] === b[at]) at++;
  const around = (x: Buffer) => x.subarray(Math.max(0, at - 24), at + 40).toString('latin1');
  if (TIMESTAMP.test(around(a)) && TIMESTAMP.test(around(b)))
    return `a timestamp written by a tool: "${around(a).trim()}" vs "${around(b).trim()}"`;
  const la = a.toString('latin1').split('\n');
  const lb = b.toString('latin1').split('\n');
  if (la.length > 2 && la.length === lb.length && [...la].sort().join('\n') === [...lb].sort().join('\n'))
    return 'an unsorted listing: the same lines in another order (ls -U, find, a directory read without sorting, a hash map)';
  const id = /[0-9a-f]{8,}|[0-9A-F]{8,}/;
  const text = (x: string) => /^[\x20-\x7e\t\n\r]*$/.test(x);
  if (text(around(a)) && text(around(b)) && id.test(around(a)) && id.test(around(b)))
    return `a random id (a UUID, a hash of something that changes): "${around(a).trim()}" vs "${around(b).trim()}"`;
  return undefined;
}

const PYC_GENERIC =
  "Python bytecode: it embeds the source file's mtime unless SOURCE_DATE_EPOCH reaches the RUN (ARG SOURCE_DATE_EPOCH) or --invalidation-mode checked-hash is used";

/**
 * A .pyc's 16-byte header (PEP 552): magic, flags, then for flags 0 (timestamp mode) the source's
 * mtime and size. When only that mtime differs, say so with the two times: the source file's own
 * mtime is clamped in the layer, the copy of it inside the .pyc is not (it is the file's bytes).
 */
function pycCause(a: Buffer, b: Buffer): string {
  if (a.length < 16 || b.length < 16 || a.length !== b.length) return PYC_GENERIC;
  const sameOutside = a.subarray(0, 8).equals(b.subarray(0, 8)) && a.subarray(12).equals(b.subarray(12));
  if (a.readUInt32LE(4) !== 0 || !sameOutside) return PYC_GENERIC;
  const when = (x: Buffer) => new Date(x.readUInt32LE(8) * 1000).toISOString().replace('.000Z', 'Z');
  return (
    `Python bytecode in timestamp mode: only bytes 8-11 differ, the source's mtime when it was compiled (${when(a)} vs ${when(b)}); ` +
    'pip install, python -m venv (ensurepip) and compileall write .pyc files even with PYTHONDONTWRITEBYTECODE=1. ' +
    'Declare ARG SOURCE_DATE_EPOCH in the stage that runs them (Python then writes hash-checked .pyc files) or compile with --invalidation-mode checked-hash'
  );
}

/** The first differing layer (in image order), and in it the first differing file. */
async function firstDifference(
  sa: Store,
  a: LoadedImage,
  sb: Store,
  b: LoadedImage,
  made: BuildResult['made'],
): Promise<Pick<VerifyResult, 'difference' | 'layersDiffering'>> {
  const ida = a.config.rootfs.diff_ids;
  const idb = b.config.rootfs.diff_ids;
  const n = Math.max(ida.length, idb.length);
  let differing = 0;
  let first: number | undefined;
  for (let i = 0; i < n; i++)
    if (ida[i] !== idb[i]) {
      differing++;
      first ??= i;
    }
  if (first === undefined) return { difference: configDifference(a.config, b.config), layersDiffering: 0 };
  const la = a.manifest.layers[first];
  const lb = b.manifest.layers[first];
  const step = made?.get(ida[first] ?? idb[first]!)?.step;
  const base = { layerIndex: first, layers: [ida[first] ?? 'none', idb[first] ?? 'none'] as [Digest, Digest], step };
  if (!la || !lb)
    return {
      layersDiffering: differing,
      difference: {
        ...base,
        path: '/',
        kind: 'missing',
        first: la ? 'a layer' : 'no layer',
        second: lb ? 'a layer' : 'no layer',
      },
    };
  const [ea, eb] = await Promise.all([layerEntries(sa, la), layerEntries(sb, lb)]);
  // Files in the first build's order, then those only the second has.
  const names = [...ea.keys(), ...[...eb.keys()].filter((k) => !ea.has(k))];
  for (const name of names) {
    const x = ea.get(name);
    const y = eb.get(name);
    if (!x || !y) {
      const only = x ? 'first' : 'second';
      const others = [...(x ? eb : ea).keys()].filter((k) => !(x ? ea : eb).has(k));
      return {
        layersDiffering: differing,
        difference: {
          ...base,
          path: `/${name}`,
          kind: 'missing',
          first: x ? 'present' : 'absent',
          second: y ? 'present' : 'absent',
          likelyCause:
            guessCause('missing', name, undefined, undefined, others) ?? `a file only the ${only} build wrote`,
        },
      };
    }
    const d = compareEntries(x, y);
    if (!d) continue;
    const bytes =
      d.kind === 'content' ? await Promise.all([entryBytes(sa, la, name), entryBytes(sb, lb, name)]) : undefined;
    return {
      layersDiffering: differing,
      difference: { ...base, path: `/${name}`, ...d, likelyCause: guessCause(d.kind, name, bytes?.[0], bytes?.[1]) },
    };
  }
  // The same files, the same bytes: then the order of the entries differs.
  const order = (m: Map<string, EntryFacts>) =>
    [...m.entries()].sort((p, q) => p[1].index - q[1].index).map(([k]) => k);
  const oa = order(ea);
  const ob = order(eb);
  const at = oa.findIndex((k, i) => ob[i] !== k);
  return {
    layersDiffering: differing,
    difference: {
      ...base,
      path: `/${oa[Math.max(0, at)] ?? ''}`,
      kind: 'order',
      first: `entry ${at + 1}: /${oa[at] ?? ''}`,
      second: `entry ${at + 1}: /${ob[at] ?? ''}`,
      likelyCause: guessCause('order', '', undefined, undefined),
    },
  };
}

/** The first field of the configs that differs, as a JSON path. */
function configDifference(a: ImageConfig, b: ImageConfig): { config: string; first: string; second: string } {
  const walk = (x: unknown, y: unknown, at: string): { config: string; first: string; second: string } | undefined => {
    if (JSON.stringify(x) === JSON.stringify(y)) return undefined;
    if (x && y && typeof x === 'object' && typeof y === 'object') {
      const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])];
      for (const k of keys) {
        const r = walk(
          (x as Record<string, unknown>)[k],
          (y as Record<string, unknown>)[k],
          Array.isArray(x) ? `${at}[${k}]` : `${at}.${k}`,
        );
        if (r) return r;
      }
    }
    return { config: at || '.', first: JSON.stringify(x) ?? 'absent', second: JSON.stringify(y) ?? 'absent' };
  };
  return walk(a, b, '') ?? { config: '.', first: '', second: '' };
}

/** The stage or image a COPY --from step copied from (`builder`), from the step's text. */
export function copiedFrom(stepText: string | undefined): string | undefined {
  const m = stepText ? /^\s*(?:COPY|ADD)\s(?:.*?\s)?--from=("?)([^\s"]+)\1(?:\s|$)/i.exec(stepText) : null;
  return m?.[2];
}

/** The report, in lines, for the CLI. */
export function formatVerifyResult(r: VerifyResult): string {
  const lines: string[] = [];
  const [a, b] = r.builds;
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  lines.push(
    `built twice from clean scratch stores (${r.parallel ? 'in parallel' : 'one after the other'}), SOURCE_DATE_EPOCH=${r.sourceDateEpoch}: ${secs(r.ms[0])}, ${secs(r.ms[1])}`,
  );
  lines.push(`  first:  manifest ${a.descriptor.digest}, image ${a.imageId}`);
  lines.push(`  second: manifest ${b.descriptor.digest}, image ${b.imageId}`);
  if (r.reproducible) {
    lines.push('reproducible: the two builds gave the same image');
    return lines.join('\n') + '\n';
  }
  lines.push('NOT reproducible: the two builds gave different images');
  const d = r.difference;
  if (d && 'config' in d) {
    lines.push(`  every layer is the same; the config differs first at ${d.config}: ${d.first} vs ${d.second}`);
  } else if (d) {
    const where = d.step?.line !== undefined ? `${d.step.file}:${d.step.line}` : undefined;
    lines.push(
      `  first difference: ${d.path} (${d.kind}) in layer ${d.layerIndex + 1} (${d.layers[0].slice(0, 19)} vs ${d.layers[1].slice(0, 19)})${where ? `, made by ${where}` : ''}`,
    );
    if (d.step?.text) lines.push(`    ${d.step.text}`);
    lines.push(`    first build:  ${d.first}`);
    lines.push(`    second build: ${d.second}`);
    if (d.likelyCause) lines.push(`  likely cause (a heuristic guess): ${d.likelyCause}`);
    const from = copiedFrom(d.step?.text);
    if (from)
      lines.push(
        `  the layer copied it (--from=${from}): the step that wrote the file is in ${from}, and that stage is where ARG SOURCE_DATE_EPOCH goes`,
      );
    if ((r.layersDiffering ?? 0) > 1) lines.push(`  ${r.layersDiffering} layers differ in all`);
  }
  return lines.join('\n') + '\n';
}
