/**
 * Robustness of `kiln build` (issue 6): SIGTERM during a step leaves no mounts, run state,
 * temporary files or processes behind, the store stays valid and the next build works; builds at
 * the same time on one store all succeed, also when they write the very same blobs and snapshots.
 * (build.test.ts has Ctrl-C during a RUN and two different builds at once.)
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { cliPath } from '../../helpers/paths.js';
import { Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-robust-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

/** Processes whose command line contains `marker`. */
function processesWith(marker: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(marker)) out.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** What a build process may leave in the store: mounts, run state, its temporary files. */
function leftovers(pid: number): string[] {
  const out: string[] = [];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
    if (l.includes(ws.root)) out.push(`mount: ${l.split(' ')[4]}`);
  const list = (d: string) => (existsSync(d) ? readdirSync(d) : []);
  for (const n of list(path.join(ws.root, 'run'))) out.push(`run state: ${n}`);
  for (const n of list(path.join(ws.root, 'tmp')))
    if (n.includes(`-${pid}-`) || n.includes(`-${pid}.`)) out.push(`tmp: ${n}`);
  for (const n of list(path.join(ws.root, 'snapshots')))
    if (n.startsWith('tmp-') && n.includes(String(pid))) out.push(`snapshot in progress: ${n}`);
  return out;
}

/** Start a build; resolve `ready` when a JSON progress event matches. */
function startBuild(ctx: string, ready: (e: { type: string; text?: string; data?: string }) => boolean) {
  const child = spawn(process.execPath, [cliPath, 'build', '--progress=json', ctx], {
    env: { ...process.env, KILN_ROOT: ws.root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : -1))));
  const started = new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const e = JSON.parse(line) as { type: string; text?: string; data?: string };
        if (ready(e)) resolve();
      }
    });
    void exited.then((c) => reject(new Error(`the build ended (${c}) before the step started: ${stderr}`)));
  });
  return { child, started, exited, stderr: () => stderr };
}

describe('kiln build robustness', { skip }, () => {
  before(() => ws.importDebian());

  test("SIGTERM during a RUN: the step's processes are ended, nothing is left mounted or on disk, the next build works", async () => {
    const marker = '317.4159';
    const ctx = ws.context('term-run', {
      Dockerfile: `FROM debian-slim:bookworm\nRUN (sleep ${marker} &) ; sleep ${marker} & echo started; wait\n`,
    });
    const b = startBuild(ctx, (e) => e.type === 'step-output' && (e.data ?? '').includes('started'));
    await b.started;
    assert.ok(processesWith(marker).length > 0, 'the step is running');
    b.child.kill('SIGTERM');
    const code = await b.exited;
    assert.notEqual(code, 0);
    assert.match(b.stderr(), /build interrupted/);
    assert.deepEqual(processesWith(marker), [], 'no process of the step is left (the detached one too)');
    assert.deepEqual(leftovers(b.child.pid!), []);
    const again = ws.context('term-run-after', { Dockerfile: 'FROM debian-slim:bookworm\nRUN echo after > /after\n' });
    await ws.build(again, 'after-term:1');
    assert.equal(await ws.sh('after-term:1', 'cat /after'), 'after\n');
  });

  test('SIGTERM during a COPY: no partial image or blob left, the store stays valid, the same build then succeeds', async () => {
    // Enough data that the COPY takes a moment (hashing and compressing); random, so it does not compress away.
    const ctx = ws.context('term-copy', {
      Dockerfile: 'FROM debian-slim:bookworm\nCOPY big /big\nRUN test -s /big/0\n',
    });
    const { randomBytes } = await import('node:crypto');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(path.join(ctx, 'big'));
    for (let i = 0; i < 40; i++) writeFileSync(path.join(ctx, 'big', String(i)), randomBytes(2 << 20));
    const b = startBuild(ctx, (e) => e.type === 'step-start' && (e.text ?? '').startsWith('COPY'));
    await b.started;
    b.child.kill('SIGTERM');
    const code = await b.exited;
    assert.notEqual(code, 0, 'the build stops (at the latest after the step it was in)');
    assert.match(b.stderr(), /build interrupted/);
    assert.deepEqual(leftovers(b.child.pid!), []);
    const images = await ws.kiln(['images', '--format', 'json']);
    assert.equal(images.code, 0, images.stderr);
    await ws.build(ctx, 'after-copy:1');
    assert.equal(await ws.sh('after-copy:1', 'ls /big | wc -l; cmp /big/7 /big/7 && echo same'), '40\nsame\n');
  });

  test('three builds at once on one store, two of them identical (the same blobs and snapshots written at the same time)', async () => {
    const same = ws.context('race-same', {
      Dockerfile: 'FROM debian-slim:bookworm\nCOPY f /f\nRUN cat /f > /g && echo ran >> /g\nWORKDIR /w\n',
      f: 'same\n',
    });
    const other = ws.context('race-other', {
      Dockerfile: 'FROM debian-slim:bookworm\nRUN echo other > /g\nCOPY f /f\n',
      f: 'other\n',
    });
    const [a, b, c] = await Promise.all([
      ws.kiln(['build', '-q', '-t', 'race:a', same]),
      ws.kiln(['build', '-q', '-t', 'race:b', same]),
      ws.kiln(['build', '-q', '-t', 'race:c', other]),
    ]);
    for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr);
    assert.equal(a.stdout.trim(), b.stdout.trim(), 'identical builds give the same image');
    assert.equal(await ws.sh('race:a', 'cat /g; pwd'), 'same\nran\n/w\n');
    assert.equal(await ws.sh('race:b', 'cat /g'), 'same\nran\n');
    assert.equal(await ws.sh('race:c', 'cat /g /f'), 'other\nother\n');
  });
});
