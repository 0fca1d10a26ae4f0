/**
 * Where a command's time goes (`--profile`, or KILN_PROFILE=1 to print the phases on stderr at
 * exit; KILN_PROFILE=FILE appends them to FILE as one JSON line, what `npm run bench` collects).
 * Off, every call is one boolean test: the phases are marked on the hot paths of every build.
 * KILN_PROFILE_STEPS=0: the phases without their build step. The step is carried by an
 * AsyncLocalStorage, whose hooks run at every promise of the build: ~30 ms of CPU on the one thread
 * of a small cold build (node-distroless: ~190 against ~160 ms), which a benchmark of the build's
 * time must not add (the benchmarks sum phases by name, not by step).
 *
 * A phase is a name, when it started (ms since the process started: node's performance time
 * origin) and how long it took; phases of a build step carry the step (`stage/step`), so their
 * sum per kind tells cache lookups from diffs from commits across a whole build.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';

export interface ProfilePhase {
  /** What was done: 'cli loaded', 'cache lookup', 'diff', … */
  name: string;
  /** The step it belongs to ('1/3': stage 1, step 3), if any. */
  step?: string;
  /** ms since the process started. */
  start: number;
  ms: number;
}

const phases: ProfilePhase[] = [];
let enabled = false;
/** Phases carry their build step (KILN_PROFILE_STEPS not 0). */
let withSteps = true;
let sink: string | undefined;
let hooked = false;
let lastMark = 0;
/** The build step the current async context works for (set by the engine, read by every phase). */
const currentStep = new AsyncLocalStorage<string>();

/** Turns profiling on when asked (`--profile` or KILN_PROFILE): the CLI calls it first thing. */
export function startProfile(flag = false): void {
  const env = process.env.KILN_PROFILE;
  if (!flag && (env === undefined || env === '' || env === '0')) return;
  enabled = true;
  withSteps = process.env.KILN_PROFILE_STEPS !== '0';
  sink = env && env !== '1' && env !== 'true' ? env : undefined;
  if (hooked) return;
  hooked = true;
  // Node's own start-up, measured by node: what any command pays before kiln's first line runs.
  const t = performance.nodeTiming;
  phases.push({ name: 'node start-up (to first module)', start: 0, ms: t.bootstrapComplete });
  lastMark = t.bootstrapComplete;
  process.once('exit', (code) => writeProfile(code));
}

export function profiling(): boolean {
  return enabled;
}

/** A phase that ends now and began at `start` (a `performance.now()` taken before it). */
export function phaseDone(name: string, start: number, step: string | undefined = currentStep.getStore()): void {
  if (!enabled) return;
  phases.push({ name, start, ms: performance.now() - start, ...(step !== undefined ? { step } : {}) });
}

/** A phase measured before profiling was known to be on (both `performance.now()` values). */
export function phaseBetween(name: string, start: number, end: number): void {
  if (!enabled) return;
  phases.push({ name, start, ms: end - start });
}

/** A point in time: a phase from the previous mark (or node's start-up) to now. */
export function mark(name: string): void {
  if (!enabled) return;
  const now = performance.now();
  phases.push({ name, start: lastMark, ms: now - lastMark });
  lastMark = now;
}

/** Times `fn` as one phase. */
export async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  const start = performance.now();
  try {
    return await fn();
  } finally {
    phaseDone(name, start);
  }
}

/** Runs `fn` as build step `step` ('stage/step'): the phases inside it carry the step. */
export function inStep<T>(step: string, fn: () => T): T {
  return enabled && withSteps ? currentStep.run(step, fn) : fn();
}

/** `performance.now()` when profiling, else 0 (no clock read on the hot path). */
export function phaseStart(): number {
  return enabled ? performance.now() : 0;
}

/** The phases so far (tests, the library). */
export function profilePhases(): readonly ProfilePhase[] {
  return phases;
}

function writeProfile(code: number): void {
  if (!enabled) return;
  const total = performance.now();
  const usage = process.resourceUsage();
  const record = {
    argv: process.argv.slice(2),
    exitCode: code,
    totalMs: round(total),
    cpuMs: round((usage.userCPUTime + usage.systemCPUTime) / 1000),
    maxRssMB: round(usage.maxRSS / 1024),
    loadavg: loadavg(),
    // In time order (a phase is recorded when it ends; an enclosing one before what it encloses).
    phases: [...phases]
      .sort((a, b) => a.start - b.start || b.ms - a.ms)
      .map((p) => ({ ...p, start: round(p.start), ms: round(p.ms) })),
    byName: sumByName(),
  };
  try {
    if (sink) appendFileSync(sink, `${JSON.stringify(record)}\n`);
    else process.stderr.write(formatProfile(record));
  } catch (e) {
    process.stderr.write(`kiln: could not write the profile to ${sink}: ${(e as Error).message}\n`);
  }
}

function sumByName(): Record<string, { count: number; ms: number }> {
  const by: Record<string, { count: number; ms: number }> = {};
  for (const p of phases) {
    const s = (by[p.name] ??= { count: 0, ms: 0 });
    s.count++;
    s.ms = round(s.ms + p.ms);
  }
  return by;
}

/** The load average as `uptime` shows it (Linux's /proc/loadavg; elsewhere none). */
function loadavg(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8')
      .split(' ')
      .slice(0, 3)
      .map((x) => Number(x));
  } catch {
    return [];
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** The profile as text: each phase in order, then the sum per kind of phase. */
export function formatProfile(r: {
  totalMs: number;
  cpuMs: number;
  maxRssMB: number;
  loadavg: number[];
  phases: ProfilePhase[];
  byName: Record<string, { count: number; ms: number }>;
}): string {
  const lines = [
    `profile: ${r.totalMs.toFixed(1)} ms wall, ${r.cpuMs.toFixed(1)} ms CPU (user+sys, all threads), peak RSS ${r.maxRssMB.toFixed(0)} MB, load ${r.loadavg.join(' ')}`,
    `  ${'start ms'.padStart(9)} ${'ms'.padStart(9)}  phase`,
  ];
  for (const p of r.phases)
    lines.push(
      `  ${p.start.toFixed(1).padStart(9)} ${p.ms.toFixed(1).padStart(9)}  ${p.name}${p.step ? ` [${p.step}]` : ''}`,
    );
  const width = Math.max(...Object.keys(r.byName).map((n) => n.length));
  lines.push(`  sum per phase: ${''.padEnd(width - 13)} ${'count'.padStart(5)} ${'ms'.padStart(9)}`);
  for (const [name, s] of Object.entries(r.byName).sort((a, b) => b[1].ms - a[1].ms))
    lines.push(`    ${name.padEnd(width)} ${String(s.count).padStart(5)} ${s.ms.toFixed(1).padStart(9)}`);
  return `${lines.join('\n')}\n`;
}
