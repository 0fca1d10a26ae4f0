/**
 * `kiln build --progress=plain|json|quiet|tty` and `-q` on a small Dockerfile over the Debian base:
 * what lands on stdout and stderr, step ids and CACHED in plain logs, the JSON stream, the live
 * view on a pseudo-terminal (util-linux `script`), and a base image pulled from a registry shown
 * in the same display.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { runKiln } from '../../helpers/kiln.js';
import { cliPath } from '../../helpers/paths.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { emulate } from '../../unit/ui/script.js';
import { Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-progress-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const ID = /^sha256:[0-9a-f]{64}$/;
const DOCKERFILE = [
  'FROM debian-slim:bookworm',
  'COPY hello.txt /hello.txt',
  'RUN echo "progress-out $(cat /hello.txt)" && echo progress-err >&2',
  'ENV DONE=1',
  '',
].join('\n');

type Json = Record<string, unknown> & { type: string };

function jsonLines(stdout: string): Json[] {
  const lines = stdout.split('\n');
  assert.equal(lines.pop(), '', 'stdout ends with a newline');
  return lines.map((l) => {
    const o = JSON.parse(l) as Json;
    assert.equal(o.v, 1);
    return o;
  });
}

/** Runs kiln on a pseudo-terminal (util-linux script): everything the terminal got, and the exit code. */
function onPty(args: string[], cols: number, rows: number): Promise<{ code: number; out: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = `stty cols ${cols} rows ${rows}; exec ${[process.execPath, cliPath, ...args].map(quote).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', cmd, '/dev/null'], {
      env: { ...process.env, KILN_ROOT: ws.root, TERM: 'xterm', NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out: Buffer.concat(out).toString('utf8') }));
    child.stdin.end();
  });
}

function scriptUnavailable(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v script']).status !== 0)
    return 'util-linux script is not installed (apt-get install bsdutils: a pseudo-terminal for the tty view)';
  const probe = spawnSync('script', ['-qefc', 'test -t 2', '/dev/null'], { stdio: 'ignore' });
  return probe.status === 0 ? undefined : 'script gives no terminal here';
}

describe('build progress', { skip }, () => {
  let ctx: string;
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('app', { Dockerfile: DOCKERFILE, 'hello.txt': 'hello' });
  });

  test('plain: a line per step with its #id, output prefixed by the id and time, DONE, the summary; stdout only the id', async () => {
    const r = await ws.kiln(['build', '--progress=plain', '-t', 'progress:1', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), ID);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    const err = r.stderr;
    assert.doesNotMatch(err, /\x1b/, 'no escape sequences in a plain log');
    assert.match(err, /^#1 \[stage 1\/1\] FROM debian-slim:bookworm$/m);
    const copy = /^#(\d+) \[stage-0 1\/3\] COPY hello\.txt \/hello\.txt$/m.exec(err);
    assert.ok(copy, err);
    assert.match(err, new RegExp(`^#${copy[1]} DONE \\d+\\.\\ds$`, 'm'));
    const run = /^#(\d+) \[stage-0 2\/3\] RUN echo "progress-out/m.exec(err);
    assert.ok(run, err);
    assert.notEqual(run[1], copy[1]);
    assert.match(err, new RegExp(`^#${run[1]} \\d+\\.\\d{3} progress-out hello$`, 'm'));
    assert.match(err, new RegExp(`^#${run[1]} \\d+\\.\\d{3} progress-err$`, 'm'));
    assert.match(err, new RegExp(`^#${run[1]} DONE \\d+\\.\\ds$`, 'm'));
    assert.match(err, /^#\d+ \[stage-0 3\/3\] ENV DONE=1$/m);
    assert.ok(err.includes(`Built ${r.stdout.trim()} in `), err);
    assert.match(err, /: 2 layers, [\d.]+MB \(manifest sha256:[0-9a-f]{64}\)$/m);
  });

  test('plain again: every step CACHED, no output replayed', async () => {
    const r = await ws.kiln(['build', '--progress=plain', ctx]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of [1, 2, 3]) {
      const m = new RegExp(`^#(\\d+) \\[stage-0 ${n}/3\\] `, 'm').exec(r.stderr);
      assert.ok(m, r.stderr);
      assert.match(r.stderr, new RegExp(`^#${m[1]} CACHED$`, 'm'));
    }
    assert.doesNotMatch(r.stderr, /^#\d+ [\d.]+ progress-/m);
  });

  test('json: only JSON lines on stdout, from plan to done (with the image id); output as text; nothing on stderr', async () => {
    const r = await ws.kiln(['build', '--progress=json', '--no-cache', '-t', 'progress:json', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const ev = jsonLines(r.stdout);
    assert.equal(ev[0]!.type, 'plan');
    const done = ev.at(-1)!;
    assert.equal(done.type, 'done');
    assert.match(String(done.imageId), ID);
    assert.equal(done.layers, 2);
    const types = new Set(ev.map((e) => e.type));
    for (const t of ['stage-start', 'step-start', 'step-output', 'step-done', 'stage-done']) assert.ok(types.has(t), t);
    const out = ev
      .filter((e) => e.type === 'step-output' && e.stream === 'stdout')
      .map((e) => e.data)
      .join('');
    assert.equal(out, 'progress-out hello\n');
    const starts = ev.filter((e) => e.type === 'step-start');
    assert.deepEqual(
      starts.map((e) => [e.step, e.total, e.line]),
      [
        [1, 3, 2],
        [2, 3, 3],
        [3, 3, 4],
      ],
    );
    const copyDone = ev.find((e) => e.type === 'step-done' && e.step === 1)!;
    assert.match(String((copyDone.layer as { digest: string }).digest), ID);
    // The id the JSON gives is the image's.
    assert.equal((await ws.inspect('progress:json')).Id, done.imageId);
  });

  test('json: a final stage runs its own steps while its builder stage still runs; it waits only at COPY --from', async () => {
    const df = [
      'FROM debian-slim:bookworm AS builder',
      'RUN sleep 1.5 && echo built > /out',
      'FROM debian-slim:bookworm',
      'RUN echo own-step > /own',
      'WORKDIR /app',
      'COPY --from=builder /out /app/out',
      '',
    ].join('\n');
    const c = ws.context('overlap', { Dockerfile: df });
    const r = await ws.kiln(['build', '--progress=json', '--no-cache', '-t', 'progress:overlap', c]);
    assert.equal(r.code, 0, r.stderr);
    const ev = jsonLines(r.stdout);
    const at = (type: string, stage: number, step: number) =>
      Number(ev.find((e) => e.type === type && e.stage === stage && e.step === step)!.time);
    const builderRunDone = at('step-done', 0, 1);
    assert.ok(
      at('step-done', 1, 2) < builderRunDone,
      "the final stage's RUN and WORKDIR finished while the builder slept",
    );
    assert.ok(at('step-done', 1, 3) >= builderRunDone, 'COPY --from finished after the builder');
    assert.equal(await ws.sh('progress:overlap', 'cat /own /app/out'), 'own-step\nbuilt\n');
  });

  test('json: a failing RUN gives step-error with its exit code, then an error line; exit code 1', async () => {
    const bad = ws.context('bad', { Dockerfile: 'FROM debian-slim:bookworm\nRUN echo before-fail && exit 3\n' });
    const r = await ws.kiln(['build', '--progress=json', bad]);
    assert.equal(r.code, 1);
    const ev = jsonLines(r.stdout);
    const se = ev.find((e) => e.type === 'step-error')!;
    assert.ok(se, r.stdout);
    assert.equal(se.exitCode, 3);
    const last = ev.at(-1)!;
    assert.equal(last.type, 'error');
    assert.equal(last.code, 'BUILD');
    assert.equal(last.line, 2);
    assert.match(String(last.message), /exit code 3/);
    assert.match(r.stderr, /^error: /m, 'the message for people is on stderr');
  });

  test('plain: a failing RUN shows its output and ERROR with the exit code', async () => {
    const bad = ws.context('bad', { Dockerfile: 'FROM debian-slim:bookworm\nRUN echo before-fail && exit 3\n' });
    const r = await ws.kiln(['build', '--progress=plain', bad]);
    assert.equal(r.code, 1);
    const m = /^#(\d+) \[stage-0 1\/1\] RUN echo before-fail/m.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.match(r.stderr, new RegExp(`^#${m[1]} [\\d.]+ before-fail$`, 'm'));
    assert.match(r.stderr, new RegExp(`^#${m[1]} ERROR: exit code 3$`, 'm'));
    assert.equal(r.stdout, '');
  });

  test('quiet shows nothing but the id on stdout; -q the same; errors still show', async () => {
    const q = await ws.kiln(['build', '--progress=quiet', ctx]);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stderr, '');
    assert.match(q.stdout, /^sha256:[0-9a-f]{64}\n$/);
    const short = await ws.kiln(['build', '-q', ctx]);
    assert.equal(short.code, 0, short.stderr);
    assert.equal(short.stderr, '');
    assert.equal(short.stdout, q.stdout);
    // -q wins over --progress.
    const both = await ws.kiln(['build', '-q', '--progress=plain', ctx]);
    assert.equal(both.stderr, '');
    assert.equal(both.stdout, q.stdout);
    const bad = ws.context('bad-quiet', { Dockerfile: 'FROM debian-slim:bookworm\nRUN exit 4\n' });
    const f = await ws.kiln(['build', '-q', bad]);
    assert.equal(f.code, 1);
    assert.equal(f.stdout, '');
    assert.match(f.stderr, /^error: .*exit code 4/m);
  });

  test('an unknown --progress is a usage error', async () => {
    const r = await ws.kiln(['build', '--progress=fancy', ctx]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown --progress "fancy"/);
    assert.match(r.stderr, /auto, tty, plain, json, quiet/);
  });

  test(
    'tty (on a pseudo-terminal): the live view while running, then the final frame with the summary; cursor shown',
    { skip: needs(scriptUnavailable()) },
    async () => {
      const c = ws.context('tty', {
        Dockerfile:
          'FROM debian-slim:bookworm AS one\nRUN echo tty-one && sleep 0.5\nFROM debian-slim:bookworm\nRUN echo tty-two && sleep 0.5\nCOPY --from=one /etc/hostname /h\n',
      });
      const r = await onPty(['build', '--no-cache', '-t', 'progress:tty', c], 100, 40);
      assert.equal(r.code, 0, r.out);
      assert.ok(r.out.includes('\x1b[?25l'), 'the cursor is hidden while drawing');
      assert.equal(r.out.lastIndexOf('\x1b[?25h') > r.out.lastIndexOf('\x1b[?25l'), true, 'and shown again');
      assert.match(r.out, /\[\+\] Building \d+\.\ds \(\d\/3\)\x1b\[K/, 'live frames');
      assert.match(r.out, /=> \[one 1\/1\] RUN echo tty-one && sleep 0\.5 +running +\d+\.\ds/);
      // The final screen: the last frame drawn over the live ones, then the id on stdout.
      const screen = emulate(r.out, 100).lines.map((l) => l.trimEnd());
      const id = screen.at(-1)!;
      assert.match(id, ID);
      const fin = screen.findIndex((l) => /^\[\+\] Building \d+\.\ds \(3\/3\) FINISHED$/.test(l));
      assert.ok(fin >= 0, screen.join('\n'));
      const final = screen.slice(fin).join('\n');
      assert.match(final, /=> \[stage 1\/2 one\] FROM debian-slim:bookworm +done/);
      assert.match(final, /=> \[one 1\/1\] RUN echo tty-one && sleep 0\.5 +done +\d+\.\ds/);
      assert.match(final, /=> \[stage-1 1\/2\] RUN echo tty-two && sleep 0\.5 +done/);
      assert.match(final, /=> \[stage-1 2\/2\] COPY --from=one \/etc\/hostname \/h +done/);
      assert.ok(final.includes(`Built ${id} in `), final);
      assert.match(final, /\n {2}manifest sha256:[0-9a-f]{64}\n/);
      assert.doesNotMatch(final, /running|waiting/);
      // Nothing from the live frames is left above the final one (it was drawn over them).
      assert.equal(screen.slice(0, fin).filter((l) => l !== '').length, 0, screen.slice(0, fin).join('\n'));
    },
  );

  test('tty on a narrow terminal: no line of the live view wraps', { skip: needs(scriptUnavailable()) }, async () => {
    const r = await onPty(['build', '--progress=tty', '--no-cache', ctx], 36, 12);
    assert.equal(r.code, 0, r.out);
    const live = r.out.slice(0, r.out.indexOf('FINISHED'));
    for (const line of live.split(/\r?\n|\r|\x1b\[\d*A/)) {
      const text = line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
      assert.ok([...text].length <= 35, JSON.stringify(text));
    }
    assert.ok(r.out.lastIndexOf('\x1b[?25h') > r.out.lastIndexOf('\x1b[?25l'));
  });
});

describe('build progress: a base image pulled from a registry', { skip: skip || needs(registryUnavailable()) }, () => {
  let reg: Registry;
  const pullWs = new Workspace('kiln-progress-pull-');
  after(async () => {
    await reg?.stop();
    rmSync(pullWs.dir, { recursive: true, force: true });
  });
  before(async () => {
    reg = await startRegistry();
    const p = await ws.kiln(['push', 'debian-slim:bookworm', `${reg.host}/kiln/debian:1`]);
    assert.equal(p.code, 0, p.stderr);
  });

  test("plain and json show the pull in the build's own progress", async () => {
    const ref = `${reg.host}/kiln/debian:1`;
    const ctx = pullWs.context('pull', { Dockerfile: `FROM ${ref}\nENV X=1\n` });
    const r = await pullWs.kiln(['build', '--progress=plain', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^#1 \\[stage 1/1\\] FROM ${ref.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(r.stderr, new RegExp(`^#1 pulling ${ref.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(r.stderr, /^#1 [0-9a-f]{12} [\d.]+[kM]?B \/ [\d.]+[kM]?B done$/m);
    assert.match(r.stderr, new RegExp(`^#1 pulled ${ref.replace(/\./g, '\\.')} \\([\\d.]+MB\\) in \\d+\\.\\ds$`, 'm'));
    assert.ok(
      r.stderr.indexOf('pulled') < r.stderr.indexOf('[stage-0 1/1] ENV X=1'),
      'the pull comes before the first step',
    );
    // A new store pulls again: the JSON stream has the pull events.
    const j = await runKiln(['build', '--progress=json', ctx], { root: path.join(pullWs.dir, 'store2') });
    assert.equal(j.code, 0, j.stderr);
    const pulls = jsonLines(j.stdout).filter((e) => e.type === 'pull');
    assert.ok(pulls.length >= 3, j.stdout);
    assert.ok(pulls.every((e) => e.ref === ref));
    const last = pulls.at(-1)!;
    assert.equal(last.layer, undefined);
    assert.equal(last.done, true);
    assert.ok(Number(last.total) > 1_000_000);
    assert.ok(pulls.some((e) => typeof e.layer === 'string' && e.done === true));
  });
});
