/**
 * Why a step missed the cache (`kiln build --explain`). A cache key is a digest: it cannot say what
 * changed. So for each step, besides its record, the store keeps what went into the step's last key
 * — its "parts" — under the step's identity, and the next build of the same step compares its own
 * parts with them.
 *
 * A step's identity is where it is written, not what it does: the Dockerfile (its absolute path,
 * or the context directory and the name given when it came from stdin), the stage (its name, or its
 * index when unnamed) and the step's position in the stage (1-based; a base's ONBUILD triggers
 * count first). Editing a step keeps its identity (so the edit is the cause named); inserting a
 * step shifts the identities after it (they then report their instruction as changed).
 *
 * Stored in the store under cache/explain/<identity hex>.json, one small record per identity
 * (at most EXPLAIN_MAX_FILES context files listed per step; beyond that only their digest),
 * written atomically; `kiln prune` removes them with the cache records they describe.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { sha256, type Digest, joinPath } from '../util/index.js';
import { replaceFile } from './small-files.js';

export const EXPLAIN_VERSION = 1;
/** Context files listed per step input; a larger selection keeps only its digest. */
export const EXPLAIN_MAX_FILES = 1000;

/** One entry a COPY/ADD (or a bind mount) selected from the build context. */
export interface ExplainFile {
  path: string;
  /** f file, d directory, l symlink. */
  type: 'f' | 'd' | 'l';
  /** Permission bits, octal. */
  mode: string;
  size?: number;
  /** A file's content digest (hex) or a symlink's target. */
  content?: string;
}

/** Something a step reads from outside its state. */
export interface ExplainInput {
  /** `context`: build-context files; `stage`: paths of another stage; `image`: of an image; `other`: a URL, an ARG value, RUN's sandbox options. */
  kind: 'context' | 'stage' | 'image' | 'other';
  /** What it is, for people: the sources, the stage or image, the text. */
  label: string;
  digest: string;
  /** Context entries (absent when more than EXPLAIN_MAX_FILES). */
  files?: ExplainFile[];
  /** For `stage`: the stage's index. */
  stage?: number;
}

/** What went into a step's key, kept to compare with the next build of the same step. */
export interface StepParts {
  /** The state the step starts from (keys.ts's stateId). */
  parent: Digest;
  /** The stage's base: `ref@digest` of an image, `stage N`, `scratch`. */
  base: string;
  /** The expanded instruction as it enters the key (canonical JSON), and as written. */
  instruction: string;
  text: string;
  env: [string, string][];
  /** Names among env that are build args (the others are ENV). */
  args: string[];
  platform: string;
  sourceDateEpoch: number | null;
  network: string | null;
  inputs: ExplainInput[];
}

export interface ExplainRecord {
  v: typeof EXPLAIN_VERSION;
  /** The step identity, readable: `Dockerfile path#stage/step`. */
  identity: string;
  key: Digest;
  /** When the step was last built (ISO time). */
  time: string;
  parts: StepParts;
}

/** The identity of a step (see the header), readable; its digest names the record file. */
export function stepIdentity(dockerfile: string, stage: string, step: number): string {
  return `${dockerfile}#${stage}/${step}`;
}

function explainPath(cacheDir: string, identity: string): string {
  return joinPath(cacheDir, 'explain', `${sha256(identity).slice('sha256:'.length)}.json`);
}

export async function readExplain(cacheDir: string, identity: string): Promise<ExplainRecord | undefined> {
  // Synchronous: a few KB, read on every cache hit (the critical path), where a trip through the
  // thread pool waited behind the layer I/O of the stages running beside it.
  let text: string;
  try {
    text = readFileSync(explainPath(cacheDir, identity), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const r = JSON.parse(text) as ExplainRecord;
    // Our own file, but a damaged or foreign one is simply "no previous build".
    if (r.v !== EXPLAIN_VERSION || r.identity !== identity || typeof r.parts !== 'object' || r.parts === null)
      return undefined;
    if (!Array.isArray(r.parts.env) || !Array.isArray(r.parts.inputs) || !Array.isArray(r.parts.args)) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

export async function writeExplain(cacheDir: string, rec: ExplainRecord): Promise<void> {
  // Not fsynced: a lost or damaged explain record only makes `--explain` say less (see readExplain).
  replaceFile(explainPath(cacheDir, rec.identity), JSON.stringify(rec));
}

/**
 * Remove explain records whose key is not among `keep` (all of them without `keep`): a record
 * lives as long as the cache record it describes.
 */
export async function pruneExplain(cacheDir: string, keep?: Set<string>): Promise<number> {
  const dir = joinPath(cacheDir, 'explain');
  let n = 0;
  for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
    const p = joinPath(dir, f);
    if (keep !== undefined && /^[a-f0-9]{64}\.json$/.test(f)) {
      const key = await fsp
        .readFile(p, 'utf8')
        .then((t) => (JSON.parse(t) as { key?: unknown }).key)
        .catch(() => undefined);
      if (typeof key === 'string' && keep.has(key)) continue;
    }
    await fsp.rm(p, { force: true });
    n++;
  }
  return n;
}

/** Why a step missed (or where its hit came from), as `--explain` and the `explain` event give it. */
export type ExplainReason =
  | 'hit'
  | 'no-cache'
  | 'first-build'
  | 'record-gone'
  | 'base-image'
  | 'earlier-step'
  | 'base-stage'
  | 'instruction'
  | 'build-arg'
  | 'env'
  | 'context-files'
  | 'stage-files'
  | 'image-files'
  | 'input'
  | 'platform'
  | 'uncacheable'
  | 'unknown';

export interface Explanation {
  reason: ExplainReason;
  /** One line for people. */
  text: string;
  /** The changes, one line each (files, variables), at most a few dozen. */
  changes: string[];
  /** For a hit: `local` or the `--cache-from` reference the record came from. */
  record?: string;
  /** For `earlier-step`: the step (in the same stage) whose change caused this one. */
  causeStep?: number;
}

/** What the comparison needs to know beyond the two parts. */
export interface ExplainContext {
  noCache?: 'all' | 'stage';
  /** The first step of this stage that missed in this build for a cause of its own. */
  firstChangedStep?: { step: number; text: string };
  /** The stage this one is based on (stage bases), and whether it missed somewhere in this build. */
  baseStage?: { label: string; changed: boolean };
  /** Stages by index: label and whether they missed somewhere in this build (for COPY --from). */
  stages: Map<number, { label: string; changed: boolean }>;
  /** The step is the first of its stage. */
  first: boolean;
}

const MAX_CHANGES = 20;

/** Compare a step's parts with those of its last build; `key` is the step's current key. */
export function explainMiss(
  prev: ExplainRecord | undefined,
  key: Digest,
  cur: StepParts,
  ctx: ExplainContext,
): Explanation {
  const mk = (reason: ExplainReason, text: string, changes: string[] = []): Explanation => ({
    reason,
    text,
    changes: changes.slice(0, MAX_CHANGES),
  });
  if (ctx.noCache === 'all') return mk('no-cache', '--no-cache');
  if (ctx.noCache === 'stage') return mk('no-cache', '--no-cache-filter names this stage');
  if (!prev) return mk('first-build', 'first build of this step on this store');
  const p = prev.parts;
  if (prev.key === key) return mk('record-gone', 'same inputs as the last build, but its cache record was pruned');
  if (p.parent !== cur.parent) {
    if (p.base !== cur.base && ctx.first)
      return ctx.baseStage
        ? mk('base-stage', `because stage ${ctx.baseStage.label} changed`)
        : mk('base-image', `base image changed: ${p.base} → ${cur.base}`, [`${p.base} → ${cur.base}`]);
    if (ctx.firstChangedStep)
      return {
        ...mk('earlier-step', `because step ${ctx.firstChangedStep.step} changed (${ctx.firstChangedStep.text})`),
        causeStep: ctx.firstChangedStep.step,
      };
    if (ctx.first && ctx.baseStage) return mk('base-stage', `because stage ${ctx.baseStage.label} changed`);
    if (p.base !== cur.base) return mk('base-image', `base image changed: ${p.base} → ${cur.base}`);
    return mk('earlier-step', 'the state before it differs (an earlier step came from another cache record)');
  }
  if (p.instruction !== cur.instruction)
    return mk('instruction', 'instruction changed', [`was: ${p.text}`, `now: ${cur.text}`]);
  const envChanges = diffEnv(p, cur);
  if (envChanges.length) {
    const argsOnly = envChanges.every((c) => c.arg);
    return mk(
      argsOnly ? 'build-arg' : 'env',
      `${argsOnly ? 'build arg' : 'variable'} changed: ${envChanges.map((c) => c.name).join(', ')}`,
      envChanges.map((c) => c.line),
    );
  }
  for (const [i, now] of cur.inputs.entries()) {
    const was = p.inputs[i];
    if (was && was.kind === now.kind && was.label === now.label && was.digest === now.digest) continue;
    if (now.kind === 'context') {
      const files = was && was.kind === 'context' ? diffFiles(was.files, now.files) : undefined;
      return mk(
        'context-files',
        files === undefined
          ? `context files changed (${now.label}; too many to list)`
          : `context files changed: ${files.names.slice(0, 5).join(', ')}${files.names.length > 5 ? ', …' : ''}`,
        files?.lines ?? [],
      );
    }
    if (now.kind === 'stage') {
      const s = now.stage !== undefined ? ctx.stages.get(now.stage) : undefined;
      return mk(
        'stage-files',
        `files from stage ${s?.label ?? now.label} changed${s?.changed ? ` (because stage ${s.label} changed)` : ''}`,
        [now.label],
      );
    }
    if (now.kind === 'image') return mk('image-files', `files from image ${now.label} changed`, [now.label]);
    if (now.label.startsWith('arg ') && was?.label.startsWith('arg ')) {
      const lines = diffArgLabels(p.inputs, cur.inputs);
      return mk('build-arg', `build arg changed: ${lines.map((l) => l.split(':')[0]).join(', ')}`, lines);
    }
    return mk('input', `input changed: ${now.label}`, was ? [`was: ${was.label}`, `now: ${now.label}`] : []);
  }
  if (p.inputs.length !== cur.inputs.length) return mk('input', 'the step reads other inputs than last time');
  if (p.platform !== cur.platform) return mk('platform', `platform changed: ${p.platform} → ${cur.platform}`);
  if (p.sourceDateEpoch !== cur.sourceDateEpoch)
    return mk('env', `SOURCE_DATE_EPOCH changed: ${p.sourceDateEpoch ?? 'unset'} → ${cur.sourceDateEpoch ?? 'unset'}`);
  if (p.network !== cur.network) return mk('input', `RUN network changed: ${p.network} → ${cur.network}`);
  return mk('unknown', 'the key changed for a reason the last record does not show (another kiln version?)');
}

function diffEnv(p: StepParts, cur: StepParts): { name: string; arg: boolean; line: string }[] {
  const was = new Map(p.env);
  const now = new Map(cur.env);
  const out: { name: string; arg: boolean; line: string }[] = [];
  const args = new Set([...p.args, ...cur.args]);
  for (const name of new Set([...was.keys(), ...now.keys()])) {
    const a = was.get(name);
    const b = now.get(name);
    if (a === b) continue;
    const arg = args.has(name);
    const what = arg ? 'build arg' : 'ENV';
    out.push({
      name,
      arg,
      line:
        a === undefined
          ? `${what} ${name}: set to "${b}"`
          : b === undefined
            ? `${what} ${name}: unset (was "${a}")`
            : `${what} ${name}: "${a}" → "${b}"`,
    });
  }
  return out;
}

/** ARG steps: their values are inputs `arg NAME=value` (or `arg NAME` without one). */
function diffArgLabels(was: ExplainInput[], now: ExplainInput[]): string[] {
  const val = (l: string) => {
    const s = l.slice(4);
    const eq = s.indexOf('=');
    return eq < 0 ? ([s, undefined] as const) : ([s.slice(0, eq), s.slice(eq + 1)] as const);
  };
  const a = new Map(was.filter((i) => i.label.startsWith('arg ')).map((i) => val(i.label)));
  const b = new Map(now.filter((i) => i.label.startsWith('arg ')).map((i) => val(i.label)));
  const out: string[] = [];
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(name) === b.get(name)) continue;
    out.push(`${name}: ${JSON.stringify(a.get(name) ?? null)} → ${JSON.stringify(b.get(name) ?? null)}`);
  }
  return out;
}

/** Entries added, removed or changed between two listings; undefined when one was not kept. */
export function diffFiles(
  was: ExplainFile[] | undefined,
  now: ExplainFile[] | undefined,
): { names: string[]; lines: string[] } | undefined {
  if (!was || !now) return undefined;
  const a = new Map(was.map((f) => [f.path, f]));
  const b = new Map(now.map((f) => [f.path, f]));
  const names: string[] = [];
  const lines: string[] = [];
  for (const [p, f] of b) {
    const o = a.get(p);
    if (!o) {
      names.push(p);
      lines.push(`${p}: added${f.size !== undefined ? ` (${f.size} B)` : ''}`);
      continue;
    }
    const what: string[] = [];
    if (o.type !== f.type) what.push(`type ${o.type} → ${f.type}`);
    if (o.mode !== f.mode) what.push(`mode ${o.mode} → ${f.mode}`);
    if (o.size !== f.size) what.push(`size ${o.size ?? '-'} → ${f.size ?? '-'} B`);
    if (o.content !== f.content) what.push(f.type === 'l' ? `target → ${f.content ?? ''}` : 'content');
    if (what.length) {
      names.push(p);
      lines.push(`${p}: ${what.join(', ')}`);
    }
  }
  for (const p of a.keys())
    if (!b.has(p)) {
      names.push(p);
      lines.push(`${p}: removed`);
    }
  if (!names.length) lines.push('same files; the selection or their order changed');
  return { names, lines };
}
