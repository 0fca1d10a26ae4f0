/**
 * kill -9 of kiln in the middle of a pull and of a push: after `kiln prune` no temp file is left,
 * no tag points at a half image, and every blob in the store verifies.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { cliPath } from '../../helpers/paths.js';
import { craftTar } from '../../helpers/craft-tar.js';
import {
  registryUnavailable,
  startFaultProxy,
  startRegistry,
  type FaultProxy,
  type Registry,
} from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-kill-xfer-'));
after(() => rmSync(work, { recursive: true, force: true }));

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

async function killWhen(args: string[], root: string, ready: () => boolean): Promise<void> {
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...process.env, KILN_ROOT: root },
    stdio: 'ignore',
  });
  const end = Date.now() + 30_000;
  while (!ready()) {
    if (Date.now() > end) throw new Error(`kiln ${args.join(' ')} never reached the point to kill it`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

async function pruneAndCheck(root: string): Promise<void> {
  const p = await runKiln(['prune'], { root });
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(readdirSync(path.join(root, 'tmp')), [], 'no temp file left');
  blobsVerify(root);
}

describe('kill -9 during transfers', { skip: needs(registryUnavailable()) }, () => {
  let reg: Registry;
  let proxy: FaultProxy;
  const src = path.join(work, 'src');
  before(async () => {
    reg = await startRegistry();
    const tarFile = path.join(work, 'big.tar');
    writeFileSync(tarFile, craftTar([{ name: 'big', content: randomBytes(8 << 20) }]));
    assert.equal((await runKiln(['import', tarFile, 'big:1'], { root: src })).code, 0);
    assert.equal((await runKiln(['push', 'big:1', `${reg.host}/kill/big:1`], { root: src })).code, 0);
    proxy = await startFaultProxy(reg.host, [
      { method: 'GET', path: /\/blobs\/sha256:/, action: 'delay', delayMs: 60_000, times: 100 },
      { method: 'PATCH', path: /\/blobs\/uploads\//, action: 'delay', delayMs: 60_000, times: 100 },
      { method: 'PUT', path: /\/blobs\/uploads\//, action: 'delay', delayMs: 60_000, times: 100 },
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  test('during a pull: no tag, no temp blob after prune', async () => {
    const root = path.join(work, 'pull');
    await killWhen(['pull', `${proxy.host}/kill/big:1`], root, () =>
      proxy.log.some((l) => l.method === 'GET' && l.path.includes('/blobs/')),
    );
    const images = await runKiln(['images', '-q'], { root });
    assert.equal(images.stdout, '', 'nothing tagged');
    await pruneAndCheck(root);
  });

  test('during a push: the store is as it was, every blob verifies', async () => {
    await killWhen(['push', 'big:1', `${proxy.host}/kill/other:1`], src, () =>
      proxy.log.some((l) => (l.method === 'PATCH' || l.method === 'PUT') && l.path.includes('/uploads/')),
    );
    await pruneAndCheck(src);
    const again = await runKiln(['images', '--format', '{{.Repository}}:{{.Tag}}'], { root: src });
    assert.equal(again.stdout, 'big:1\n');
  });
});
