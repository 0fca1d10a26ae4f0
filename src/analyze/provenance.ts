/**
 * Reading the provenance a build recorded (store/provenance.ts, written by engine/provenance.ts):
 *   - `kiln trace IMAGE PATH…`: the layer that wrote a file, its Dockerfile line and, through
 *     COPY --from chains, the stage, step, source path and package it came from;
 *   - the SBOM's copied packages: what a COPY --from brought without its package metadata (a
 *     library taken out of a Debian builder), with its originating package and version;
 *   - `kiln analyze --copies`: what each COPY --from carries that a runtime rarely needs;
 *   - the report's stage graph: the bytes each stage's copies put into the image.
 */
import * as path from 'node:path';
import { makePurl } from './sbom/purl.js';
import type { OsRelease, Package } from './sbom/types.js';
import type { ImageSource } from './source.js';
import { walkImage } from './walk.js';
import type {
  CopyProvenance,
  ProvenanceFrom,
  ProvenanceHop,
  ProvenancePackage,
  ProvenanceStep,
  Store,
} from '../store/index.js';
import type { Digest } from '../util/index.js';
import type { Instruction } from '../dockerfile/index.js';
import type { BuildPlan } from '../plan/index.js';

/** The records of an image's layers (undefined where none was recorded), bottom first. */
export async function imageProvenance(
  store: Store | undefined,
  diffIds: readonly string[],
): Promise<(CopyProvenance | undefined)[]> {
  if (!store) return diffIds.map(() => undefined);
  return Promise.all(diffIds.map((d) => store.provenance(d as Digest)));
}

export interface TraceResult {
  /** The path asked for, absolute. */
  path: string;
  /** Not in the image (never there, or deleted: `deletedIn` says by which layer). */
  missing?: boolean;
  deletedIn?: number;
  layer?: { index: number; diffId: string; createdBy: string };
  /** The step that wrote the layer, when this store's build recorded it. */
  step?: ProvenanceStep & { kind: string };
  from?: ProvenanceFrom;
  /** Path in the source (stage, image or context), absolute. */
  source?: string;
  package?: ProvenancePackage;
  via?: ProvenanceHop[];
}

/** Where each path of the image's final filesystem came from. */
export async function traceImage(src: ImageSource, store: Store | undefined, paths: string[]): Promise<TraceResult[]> {
  const walked = await walkImage(src, { entries: true, hash: 'none' });
  const records = await imageProvenance(
    store,
    walked.layers.map((l) => l.diffId),
  );
  return paths.map((asked) => {
    const rel = path.posix.normalize(`/${asked}`).slice(1).replace(/\/+$/, '');
    const abs = `/${rel}`;
    for (let i = walked.layers.length - 1; i >= 0; i--) {
      const l = walked.layers[i]!;
      const entries = l.entries ?? [];
      if (entries.some((e) => whiteoutHides(e.path, rel))) return { path: abs, missing: true, deletedIn: i };
      if (!entries.some((e) => e.path === rel)) continue;
      const r: TraceResult = {
        path: abs,
        layer: { index: i, diffId: l.diffId, createdBy: src.layers[i]?.history?.created_by ?? '' },
      };
      const rec = records[i];
      if (rec) {
        r.step = { ...rec.step, kind: rec.kind };
        r.from = rec.from;
        const f = rec.files.find((x) => x.path === rel);
        if (f) {
          r.source = `/${f.source}`;
          if (f.pkg !== undefined) r.package = rec.packages[f.pkg];
          if (f.via?.length) r.via = f.via;
        }
      }
      return r;
    }
    return { path: abs, missing: true };
  });
}

/** Does the whiteout entry `w` delete `rel` (itself or an ancestor)? */
function whiteoutHides(w: string, rel: string): boolean {
  const base = w.slice(w.lastIndexOf('/') + 1);
  if (!base.startsWith('.wh.')) return false;
  const dir = w.slice(0, Math.max(0, w.lastIndexOf('/')));
  if (base === '.wh..wh..opq') return false; // opaque: hides what is below, not this layer's own
  const target = dir ? `${dir}/${base.slice(4)}` : base.slice(4);
  return rel === target || rel.startsWith(`${target}/`);
}

/** How a stage or image source is called in text. */
export function fromLabel(f: ProvenanceFrom): string {
  switch (f.kind) {
    case 'context':
      return 'the build context';
    case 'stage':
      return `stage ${f.name ?? f.index}`;
    case 'image':
      return `image ${f.ref}`;
    case 'remote':
      return f.what;
    case 'none':
      return 'the step itself';
  }
}

/**
 * Packages copied into the image without their metadata: each file a COPY --from brought that a
 * package owned in its source, when the image's own catalog does not list that package (by type,
 * name and version). `copied` says from where, and which files.
 */
export function copiedPackages(
  records: (CopyProvenance | undefined)[],
  cataloged: Package[],
  os: OsRelease,
): Package[] {
  const have = new Set(cataloged.map((p) => `${p.type}:${p.name}@${p.version}`));
  const out = new Map<string, Package>();
  records.forEach((rec, layer) => {
    if (!rec || (rec.from.kind !== 'stage' && rec.from.kind !== 'image')) return;
    for (const f of rec.files) {
      if (f.pkg === undefined) continue;
      const p = rec.packages[f.pkg]!;
      const key = `${p.type}:${p.name}@${p.version}`;
      if (have.has(key)) continue;
      let pkg = out.get(key);
      if (!pkg) {
        const from = f.via?.length ? f.via[f.via.length - 1]!.from : rec.from;
        pkg = {
          type: p.type,
          name: p.name,
          version: p.version,
          purl: makePurl(p.type, p.name, p.version, { os, arch: p.arch }),
          licenses: [],
          location: f.path,
          layer,
          layerDiffId: rec.diffId,
          foundBy: 'kiln-provenance',
          copied: { from: fromLabel(from), step: `${rec.step.file}:${rec.step.line}`, files: [] },
        };
        if (p.arch) pkg.arch = p.arch;
        out.set(key, pkg);
      }
      pkg.copied!.files.push(`/${f.path}`);
    }
  });
  return [...out.values()];
}

/** What a runtime rarely needs, by kind; the first that matches a path names it. */
export const RARELY_NEEDED: { kind: string; test: RegExp; exclude: string }[] = [
  { kind: 'tests', test: /(?:^|\/)(?:tests?|__tests__|testing)\//, exclude: '**/tests' },
  { kind: '__pycache__', test: /(?:^|\/)__pycache__\/|\.py[co]$/, exclude: '**/__pycache__' },
  { kind: '.git', test: /(?:^|\/)\.git\//, exclude: '**/.git' },
  {
    kind: 'package manager caches',
    test: /(?:^|\/)(?:\.cache|\.npm|_cacache|var\/cache\/apt|\.yarn\/cache)\//,
    exclude: '**/.cache',
  },
  { kind: 'man pages', test: /(?:^|\/)share\/(?:man|info)\//, exclude: '**/share/man' },
  {
    kind: 'docs',
    test: /(?:^|\/)(?:share\/doc|docs?|examples?)\/|(?:^|\/)(?:README|CHANGELOG|HISTORY)[^/]*$|\.(?:md|markdown|rst)$/i,
    exclude: '**/share/doc',
  },
  { kind: 'headers', test: /(?:^|\/)include\/|\.(?:h|hh|hpp)$/, exclude: '**/include' },
  { kind: 'static libraries', test: /\.l?a$/, exclude: '**/*.a' },
];

export interface CopyFinding {
  kind: string;
  bytes: number;
  files: number;
  /** e.g. `--exclude=**\/__pycache__`, or what to run in the builder. */
  suggestion: string;
}

export interface CopyReport {
  layer: number;
  step: ProvenanceStep;
  from: string;
  bytes: number;
  files: number;
  findings: CopyFinding[];
  /** Σ findings' bytes: what the suggestions would save. */
  saving: number;
  /** The copy's top source directories with their sizes (largest first), when narrowing helps. */
  narrower?: { path: string; bytes: number }[];
}

/** Each COPY/ADD --from of the image: its size and what it carries a runtime rarely needs. */
export function analyzeCopies(records: (CopyProvenance | undefined)[]): CopyReport[] {
  const out: CopyReport[] = [];
  records.forEach((rec, layer) => {
    if (!rec || (rec.from.kind !== 'stage' && rec.from.kind !== 'image')) return;
    const found = new Map<string, CopyFinding>();
    const note = (kind: string, size: number, suggestion: string) => {
      let f = found.get(kind);
      if (!f) found.set(kind, (f = { kind, bytes: 0, files: 0, suggestion }));
      f.bytes += size;
      f.files++;
    };
    let bytes = 0;
    const tops = new Map<string, number>();
    const common = commonDir(rec.files.map((f) => f.source));
    for (const f of rec.files) {
      bytes += f.size;
      const rest = common ? f.source.slice(common.length + 1) : f.source;
      const top = rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : rest;
      tops.set(top, (tops.get(top) ?? 0) + f.size);
      const p = f.pkg !== undefined ? rec.packages[f.pkg] : undefined;
      if (p?.dev) {
        note('dev dependencies', f.size, 'npm ci --omit=dev (or npm prune --omit=dev) in the builder before the copy');
        continue;
      }
      const k = RARELY_NEEDED.find((r) => r.test.test(f.source));
      if (k) note(k.kind, f.size, `--exclude=${k.exclude}`);
    }
    const findings = [...found.values()].sort((a, b) => b.bytes - a.bytes);
    const r: CopyReport = {
      layer,
      step: rec.step,
      from: fromLabel(rec.from),
      bytes,
      files: rec.files.length,
      findings,
      saving: findings.reduce((s, f) => s + f.bytes, 0),
    };
    if (tops.size > 1)
      r.narrower = [...tops]
        .map(([p, b]) => ({ path: `/${common ? `${common}/` : ''}${p}`, bytes: b }))
        .sort((a, b) => b.bytes - a.bytes);
    out.push(r);
  });
  return out;
}

/** The deepest directory all paths are under ('' for the root). */
function commonDir(paths: string[]): string {
  if (!paths.length) return '';
  let parts = paths[0]!.split('/').slice(0, -1);
  for (const p of paths) {
    const q = p.split('/');
    let i = 0;
    while (i < parts.length && i < q.length - 1 && parts[i] === q[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join('/');
}

/** Bytes each stage's copies put into the image (COPY --from a stage), by stage name or index. */
export function copiedBytesByStage(records: (CopyProvenance | undefined)[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const rec of records) {
    if (!rec || rec.from.kind !== 'stage') continue;
    const bytes = rec.files.reduce((s, f) => s + f.size, 0);
    for (const key of [String(rec.from.index), ...(rec.from.name ? [rec.from.name.toLowerCase()] : [])])
      out.set(key, (out.get(key) ?? 0) + bytes);
  }
  return out;
}

/**
 * Records for an image no build of this store recorded, from the Dockerfile it was built from: the
 * target stage's COPY/ADD --from instructions, matched from the end with the image's COPY/ADD
 * history entries that made a layer; each gets its layer's files (their image paths stand for the
 * source paths, no packages). Where the store has a record, it is kept.
 */
export async function recordsFromDockerfile(
  src: ImageSource,
  plan: BuildPlan,
  recorded: (CopyProvenance | undefined)[],
): Promise<(CopyProvenance | undefined)[]> {
  const target = plan.stages[plan.target];
  if (!target) return recorded;
  const copies = target.instructions
    .map((p) => p.instruction)
    .filter((i): i is Instruction & { kind: 'COPY' | 'ADD' } => i.kind === 'COPY' || i.kind === 'ADD');
  // Layer index of each history entry that made a layer and reads as a COPY/ADD.
  const layers: number[] = [];
  let n = 0;
  for (const h of src.config.history ?? []) {
    if (h.empty_layer) continue;
    if (/^(?:COPY|ADD)\b/.test(h.created_by ?? '')) layers.push(n);
    n++;
  }
  const walked = await walkImage(src, { entries: true, hash: 'none' });
  const out = [...recorded];
  for (let k = 1; k <= Math.min(copies.length, layers.length); k++) {
    const ins = copies[copies.length - k]!;
    const layer = layers[layers.length - k]!;
    if (!ins.from || out[layer]) continue;
    const named = plan.stages.find((s) => s.name?.toLowerCase() === ins.from!.toLowerCase());
    const entries = walked.layers[layer]?.entries ?? [];
    out[layer] = {
      version: 1,
      diffId: (walked.layers[layer]?.diffId ?? '') as Digest,
      kind: ins.kind,
      step: {
        file: plan.file,
        line: ins.range.start.line,
        text: ins.original,
        stage: { index: target.index, ...(target.name ? { name: target.name } : {}) },
      },
      from: named
        ? { kind: 'stage', index: named.index, ...(named.name ? { name: named.name } : {}) }
        : { kind: 'image', ref: ins.from },
      packages: [],
      files: entries
        .filter((e) => e.type !== 'directory' && !e.path.split('/').pop()!.startsWith('.wh.'))
        .map((e) => ({ path: e.path, source: e.path, size: e.type === 'file' ? e.size : 0 })),
    };
  }
  return out;
}
