/**
 * Bounded fuzz of the frontend (parser → planner → lint) on generated multi-stage Dockerfiles: a
 * fixed seed and a few thousand inputs in CI; `npm run fuzz` runs many more (KILN_FUZZ_RUNS,
 * KILN_FUZZ_SEED). Whatever the input: a result or a KilnError, never another exception, and no
 * input over its time budget. A failure prints the seed and the input, so it can be replayed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { createPlan } from '../../../src/plan/index.js';
import { lintDockerfile } from '../../../src/analyze/lint/index.js';
import { KilnError } from '../../../src/util/errors.js';

const RUNS = Number(process.env.KILN_FUZZ_RUNS ?? 3000);
const SEED = Number(process.env.KILN_FUZZ_SEED ?? 24);
const BUDGET_MS = Number(process.env.KILN_FUZZ_BUDGET_MS ?? 500);

/** mulberry32: small, seedable, the same sequence on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'a',
  '/x',
  '.',
  '$A',
  '${A}',
  '${A:-d}',
  '${A:+x}',
  '${A:?err}',
  '${A#*/}',
  '${A%%.*}',
  '${A/x/y}',
  '"q w"',
  "'s q'",
  '\\$',
  '*',
  '?',
  '[a-',
  'x=y',
  '80/tcp',
  '&&',
  '|',
  ';',
  '#',
  'é',
  '$S',
];
const BASES = ['scratch', 'debian:bookworm', '${BASE}', '$A', 'busybox@sha256:bad', 'x:${A:-1}', 'Bad/Name'];
const MOUNTS = [
  'type=cache,target=/c',
  'type=cache,id=$A,target=/c,sharing=locked',
  'type=secret,id=s,env=S',
  'type=secret,id=s,required',
  'type=bind,from=s0,target=/b',
  'type=bind,from=${S},source=/,target=/b',
  'type=ssh',
  'type=tmpfs,target=/t,size=1k',
  'type=bogus',
  'target',
];

/** One instruction of a stage: mostly well-formed (so the planner is reached), sometimes not. */
function instruction(r: () => number, stage: number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const w = () => pick(WORDS);
  const ref = () =>
    pick([`s${Math.floor(r() * (stage + 2))}`, `${Math.floor(r() * (stage + 1))}`, '$S', 'debian:bookworm', 's-none']);
  const cmd = () => (r() < 0.5 ? `echo ${w()} ${w()}` : `["sh", "-c", "echo ${w()}"]`);
  switch (Math.floor(r() * 17)) {
    case 0:
      return `RUN ${r() < 0.4 ? `--mount=${r() < 0.95 ? pick(MOUNTS.slice(0, -2)) : pick(MOUNTS.slice(-2))} ` : ''}${r() < 0.2 ? `--network=${pick(['none', 'host', 'default'])} ` : ''}${r() < 0.15 ? '<<EOF\necho $A\nEOF' : cmd()}`;
    case 1:
      return `COPY ${r() < 0.4 ? `--from=${ref()} ` : ''}${r() < 0.2 ? '--chown=1:$A ' : ''}${r() < 0.1 ? '--chmod=755 ' : ''}${r() < 0.1 ? '--link ' : ''}${r() < 0.1 ? '--parents ' : ''}${w()} ${r() < 0.2 ? '<<EOF /f\nx\nEOF' : w()}`;
    case 2:
      return `ADD ${r() < 0.2 ? '--checksum=sha256:00 ' : ''}${r() < 0.1 ? '--keep-git-dir ' : ''}${pick(['https://example.com/x.tar', 'git@github.com:a/b.git', w()])} ${w()}`;
    case 3:
      return `ENV ${pick(['A', 'B', 'S', 'PATH'])}=${w()}${r() < 0.3 ? ` C=${w()}` : ''}`;
    case 4:
      return `ARG ${pick(['A', 'B', 'S', 'BASE'])}${r() < 0.5 ? `=${w()}` : ''}`;
    case 5:
      return `LABEL ${pick(['a', '"b c"'])}=${w()}`;
    case 6:
      return `WORKDIR ${w()}`;
    case 7:
      return `USER ${pick(['1000', 'app:app', '$A', '0:0'])}`;
    case 8:
      return `EXPOSE ${pick(['80', '80/tcp', '1-2/udp', '$A'])}`;
    case 9:
      return `CMD ${cmd()}`;
    case 10:
      return `ENTRYPOINT ${cmd()}`;
    case 11:
      return `HEALTHCHECK ${r() < 0.97 ? pick(['NONE', '--interval=5s CMD true', 'CMD ["true"]']) : pick(['--interval=x CMD true', 'CMD'])}`;
    case 12:
      return `SHELL ${r() < 0.97 ? '["/bin/bash", "-c"]' : pick(['["a",', 'sh'])}`;
    case 13:
      return `ONBUILD ${r() < 0.97 ? pick(['RUN true', 'COPY a b']) : pick(['ONBUILD RUN x', 'FROM x'])}`;
    case 14:
      return `VOLUME ${pick(['/v', '["/a", "/b"]', '$A'])}`;
    case 15:
      return `STOPSIGNAL ${pick(['SIGTERM', '9', '$A'])}`;
    default:
      return `${r() < 0.95 ? pick(['RUN', 'run', 'Run']) : pick(['COPY', 'ENV', 'BOGUS'])} ${w()}${pick([' \\\n  ', ' ', '\t'])}${w()}`;
  }
}

function generate(r: () => number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const lines: string[] = [];
  if (r() < 0.1) lines.push(pick(['# escape=`', '# syntax=docker/dockerfile:1', '# check=skip=all', '#escape=\\']));
  if (r() < 0.4) lines.push(`ARG ${pick(['A', 'B', 'S', 'BASE'])}${r() < 0.7 ? `=${pick(BASES)}` : ''}`);
  const stages = 1 + Math.floor(r() * 6);
  for (let s = 0; s < stages; s++) {
    const base =
      r() < 0.4 && s > 0 ? `s${Math.floor(r() * (s + 2))}` : r() < 0.9 ? pick(BASES.slice(0, 2)) : pick(BASES);
    const platform = r() < 0.15 ? `--platform=${pick(['$BUILDPLATFORM', 'linux/arm64', '$A', 'bogus'])} ` : '';
    lines.push(`FROM ${platform}${base}${r() < 0.8 ? ` AS s${r() < 0.05 ? s - 1 : s}` : ''}`);
    const n = Math.floor(r() * 8);
    for (let i = 0; i < n; i++) {
      let line = instruction(r, s);
      // Now and then a damaged line: cut short, or a stray continuation.
      if (r() < 0.01) line = line.slice(0, Math.floor(r() * line.length));
      if (r() < 0.01) line += ' \\';
      lines.push(line);
    }
  }
  return lines.join(r() < 0.95 ? '\n' : '\r\n') + (r() < 0.9 ? '\n' : '');
}

function typedOnly(stage: string, text: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof KilnError))
      assert.fail(`${stage} threw ${(e as Error)?.stack ?? String(e)}\nseed ${SEED}, input ${JSON.stringify(text)}`);
  }
}

test(`frontend fuzz: ${RUNS} generated Dockerfiles (seed ${SEED}), typed errors only, each within ${BUDGET_MS} ms`, () => {
  const r = rng(SEED);
  let slowest = 0;
  for (let i = 0; i < RUNS; i++) {
    const text = generate(r);
    const target = r() < 0.2 ? `s${Math.floor(r() * 4)}` : undefined;
    const once = () => {
      const t0 = performance.now();
      typedOnly('parse/plan', text, () =>
        createPlan(parseDockerfile(text, { file: 'Dockerfile' }), { buildArgs: { A: 'x/y.z', S: 's1' }, target }),
      );
      typedOnly('lint', text, () => lintDockerfile(text));
      return performance.now() - t0;
    };
    let ms = once();
    // A slow input is timed again: a GC pause or a busy machine is not the input's fault.
    if (ms >= BUDGET_MS) ms = Math.min(ms, once());
    slowest = Math.max(slowest, ms);
    assert.ok(ms < BUDGET_MS, `input ${i} took ${ms.toFixed(0)} ms (seed ${SEED}): ${JSON.stringify(text)}`);
  }
  assert.ok(slowest < BUDGET_MS);
});
