/**
 * kill -9 of kiln at several phases: after each, `kiln prune` leaves no mount, no runtime state,
 * no file holding a secret, and every blob still verifies. And while a RUN with a secret runs,
 * the secret's value is in no file on disk (the spec and runtime state live on a private tmpfs).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { cliPath } from '../../helpers/paths.js';
import { Workspace } from '../build/util.js';
import { needs } from '../../helpers/prereq.js';

const noBases = needs(basesUnavailable());
const ws = new Workspace('kiln-kill-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));
before(async () => {
  if (!noBases) await ws.importDebian();
});

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir));
}

/** Files (not following mounts into image roots) under `dirs` whose content holds `needle`. */
function filesHolding(needle: string, dirs: string[]): string[] {
  // --devices=skip: a fifo (an image's, another process's) must not block the search.
  const r = spawnSync(
    'grep',
    [
      '-rlsF',
      '--devices=skip',
      '--exclude-dir=rootfs',
      '--exclude-dir=snapshots',
      '--exclude-dir=blobs',
      needle,
      ...dirs.filter(existsSync),
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (r.error) throw new Error(`searching for the secret: ${r.error.message}`);
  return r.stdout.split('\n').filter(Boolean);
}

function blobsVerify(root: string): void {
  const dir = path.join(root, 'blobs', 'sha256');
  for (const f of readdirSync(dir))
    assert.equal(
      createHash('sha256')
        .update(readFileSync(path.join(dir, f)))
        .digest('hex'),
      f,
      `blob ${f} verifies`,
    );
}

async function waitFor(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startBuild(ctx: string, secret: string): { child: ChildProcess; out: () => string } {
  let out = '';
  const child = spawn(
    process.execPath,
    [cliPath, 'build', '--progress', 'plain', '--secret', 'id=tok,env=KILL_TEST_SECRET', '-t', 'kill:1', ctx],
    { env: { ...process.env, KILN_ROOT: ws.root, KILL_TEST_SECRET: secret }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return { child, out: () => out };
}

async function killAndPrune(child: ChildProcess, secret: string): Promise<void> {
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const p = await ws.kiln(['prune']);
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(mountsUnder(ws.root), [], 'no mount left under the store');
  assert.deepEqual(readdirSync(path.join(ws.root, 'run')), [], 'no run or view dir left (runtime state included)');
  const shm = readdirSync('/dev/shm')
    .filter((n) => n.startsWith('kiln-'))
    .map((n) => path.join('/dev/shm', n));
  assert.deepEqual(
    filesHolding(secret, [ws.root, ws.dir, ...shm, '/run/runc', '/run/crun']),
    [],
    'no file holds the secret',
  );
  assert.deepEqual(
    readdirSync('/dev/shm').filter(
      (n) => n.startsWith(`kiln-rt-${child.pid}-`) || n.startsWith(`kiln-run-${child.pid}-`),
    ),
    [],
    'no private tmpfs dir of the killed kiln',
  );
  blobsVerify(ws.root);
}

describe('kill -9 of kiln, then kiln prune', { skip: noBases }, () => {
  test('during a RUN with a secret: the secret is in no file while it runs; prune clears mount, container, state', async () => {
    const secret = `s3cr3t-${randomBytes(8).toString('hex')}`;
    const ctx = ws.context('run-secret', {
      Dockerfile: `FROM debian-slim:bookworm\nRUN --mount=type=secret,id=tok,env=TOK echo started-${'$'}{#TOK} && sleep 60\n`,
    });
    const { child, out } = startBuild(ctx, secret);
    await waitFor('the RUN to start', () => /started-\d+/.test(out()));
    assert.match(out(), new RegExp(`started-${secret.length}`), 'the process got the secret');
    assert.ok(
      mountsUnder(path.join(ws.root, 'run')).length > 0,
      'the run has its overlay mounted (the test sees what the kill leaves)',
    );
    assert.deepEqual(
      filesHolding(secret, [ws.root, ws.dir]),
      [],
      'no file on disk holds the secret while the RUN runs',
    );
    await killAndPrune(child, secret);
  });

  test('right after a RUN (while its layer is being written): prune leaves a sound store', async () => {
    const secret = `s3cr3t-${randomBytes(8).toString('hex')}`;
    const ctx = ws.context('after-run', {
      Dockerfile:
        'FROM debian-slim:bookworm\nRUN --mount=type=secret,id=tok,env=TOK head -c 30000000 /dev/urandom > /big && echo wrote\n',
    });
    const { child, out } = startBuild(ctx, secret);
    await waitFor('the RUN to end', () => /wrote/.test(out()));
    await killAndPrune(child, secret);
  });

  // The destination is read from the layers, no view made (sandbox/view.ts layeredDestination):
  // what the kill leaves is the COPY's half-written layer and spill in the store's tmp dir.
  test('during a COPY (its layer being written): prune leaves a sound store', async () => {
    const files: Record<string, string> = { Dockerfile: 'FROM debian-slim:bookworm\nRUN echo x > /x\nCOPY . /ctx/\n' };
    for (let i = 0; i < 3000; i++) files[`f/${i}`] = randomBytes(2000).toString('hex');
    const ctx = ws.context('copy', files);
    const { child, out } = startBuild(ctx, 'unused-secret-value');
    await waitFor('the COPY to start', () => /COPY \. \/ctx\//.test(out()));
    await killAndPrune(child, 'unused-secret-value');
  });
});
