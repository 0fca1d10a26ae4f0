/**
 * `kiln build --on-error=keep` and `kiln debug` on a real build in the real sandbox: a failing
 * `pip install` (python-slim's venv, offline: --no-index) that wrote a file first is kept; entered
 * with a command, the file is there, the secret mount is there (read again from its source), the
 * exit code passes through and nothing stays mounted; --before has no such file; the record on
 * disk holds no secret byte; a gone secret source is refused; --list, --rm and prune remove it.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';
import { Workspace } from './util.js';
import { Store } from '../../../src/store/index.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-debug-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const secret = `dbg-secret-${randomBytes(12).toString('hex')}`;
const secretFile = path.join(ws.dir, 'token.txt');

const DOCKERFILE = [
  'FROM python-slim:1',
  'RUN python3 -m venv /venv',
  'WORKDIR /app',
  'RUN --mount=type=secret,id=x --mount=type=cache,target=/root/.cache/pip echo written > /written && /venv/bin/pip install --no-index nosuchpkg',
];

/** Every file under `dir` (no symlink followed). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) out.push(...filesUnder(p));
    else if (d.isFile()) out.push(p);
  }
  return out;
}

/** Mount points of this machine under the test's store. */
function mountsInStore(): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[1]?.startsWith(ws.root));
}

describe('kiln debug: a kept failed step', { skip }, () => {
  let id = '';
  before(async () => {
    writeFileSync(secretFile, `${secret}\n`);
    const r = await ws.kiln(['import', await ensureBaseTar('python-slim'), 'python-slim:1']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('a failing RUN with --on-error=keep fails the build and says how to enter the step', async () => {
    const ctx = ws.context('ctx', { Dockerfile: DOCKERFILE.join('\n') + '\n' });
    const r = await ws.kiln([
      'build',
      '--progress',
      'plain',
      '--on-error=keep',
      '--secret',
      `id=x,src=${secretFile}`,
      ctx,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Dockerfile:4:1: stage 0: RUN failed with exit code 1/);
    assert.match(r.stderr, /No matching distribution found for nosuchpkg/);
    const m = /hint: the failed step is kept: kiln debug ([0-9a-f]{12})/.exec(r.stderr);
    assert.ok(m, r.stderr);
    id = m[1]!;
    assert.deepEqual(mountsInStore(), []);
  });

  test('entered with a command: the file it wrote, the secret mount, its user and workdir; the exit code passes through', async () => {
    const r = await ws.kiln(['debug', id, '--cmd', 'cat /written; cat /run/secrets/x; pwd; id -u; exit 7']);
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout, `written\n${secret}\n/app\n0\n`);
    assert.deepEqual(mountsInStore(), [], 'nothing is left mounted');
    // The venv of the step before is there too (the kept changes sit on the step's layers).
    const venv = await ws.kiln(['debug', id.slice(0, 6), '--', '/venv/bin/python', '-c', 'print("venv ok")']);
    assert.equal(venv.code, 0, venv.stderr);
    assert.equal(venv.stdout, 'venv ok\n');
  });

  test('a shell reads its commands from stdin; the newest kept step is the default', async () => {
    const r = await ws.kiln(['debug'], { input: 'cat /written\nls /run/secrets\nexit 3\n' });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'written\nx\n');
  });

  test('--before: the state before the step, where a fixed command can be tried', async () => {
    const r = await ws.kiln([
      'debug',
      id,
      '--before',
      '--cmd',
      'test ! -e /written && test -x /venv/bin/pip && echo clean',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'clean\n');
    assert.deepEqual(mountsInStore(), []);
  });

  test('the kept record on disk holds no byte of the secret', () => {
    const dir = path.join(ws.root, 'kept-steps', id);
    const files = filesUnder(dir);
    assert.ok(files.some((f) => f.endsWith('record.json')));
    assert.ok(files.some((f) => f.endsWith(`${path.sep}written`)));
    for (const f of [...files, ...filesUnder(path.join(ws.root, 'gc-roots'))])
      assert.ok(!readFileSync(f).includes(secret), `${f} holds the secret`);
    const rec = JSON.parse(readFileSync(path.join(dir, 'record.json'), 'utf8')) as { secrets: unknown };
    assert.deepEqual(rec.secrets, [{ id: 'x', src: secretFile }]);
  });

  test('a secret whose source is gone is refused with what to do', async () => {
    rmSync(secretFile);
    try {
      const r = await ws.kiln(['debug', id, '--cmd', 'true']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`kept step ${id}: secret "x" is no longer there \\(file ${secretFile}\\)`));
      assert.match(r.stderr, /hint: put the file back/);
      assert.equal(r.stderr.trim().split('\n').length, 2, r.stderr);
    } finally {
      writeFileSync(secretFile, `${secret}\n`);
    }
  });

  test('--list, --rm and prune remove kept steps and their snapshots', async () => {
    const list = await ws.kiln(['debug', '--list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${id} .*Dockerfile:4 \\(0\\) +1 +echo written`));
    // A second kept step, removed by --rm.
    const again = await ws.kiln(['build', '--on-error=keep', '--secret', `id=x,src=${secretFile}`, ws.dir + '/ctx']);
    assert.equal(again.code, 1);
    const second = /kiln debug ([0-9a-f]{12})/.exec(again.stderr)![1]!;
    const json = JSON.parse((await ws.kiln(['debug', '--list', '--format', 'json'])).stdout) as { id: string }[];
    assert.deepEqual(
      json.map((k) => k.id),
      [second, id],
    );
    const rm = await ws.kiln(['debug', '--rm', second]);
    assert.equal(rm.code, 0, rm.stderr);
    const gone = await ws.kiln(['debug', second, '--cmd', 'true']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`no kept step ${second}`));
    // gc keeps what a kept step needs, its base image untagged…
    const rmi = await ws.kiln(['rmi', 'python-slim:1']);
    assert.equal(rmi.code, 0, rmi.stderr);
    await (await Store.open({ root: ws.root })).gc({ minAgeMs: 0 });
    const still = await ws.kiln(['debug', id, '--cmd', 'cat /written; /venv/bin/python -c "print(1)"']);
    assert.equal(still.code, 0, still.stderr);
    assert.equal(still.stdout, 'written\n1\n');
    const snapshots = () => readdirSync(path.join(ws.root, 'snapshots')).length;
    const before = snapshots();
    // …and prune removes the kept steps, then their snapshots.
    const prune = await ws.kiln(['prune', '--all-ages']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, /Deleted 1 kept failed step\(s\)/);
    assert.ok(snapshots() < before, "the kept step's snapshots are freed");
    assert.equal((await ws.kiln(['debug', '--list'])).stdout.split('\n').filter(Boolean).length, 1);
    assert.ok(statSync(path.join(ws.root, 'kept-steps')).isDirectory());
    assert.deepEqual(readdirSync(path.join(ws.root, 'kept-steps')), []);
  });
});
