/**
 * The bare backend (chroot alone, for unprivileged containers), forced on the host: what the
 * process sees (user, groups, environment, working directory, docker's device nodes, the host's
 * resolv.conf where the image has none), the layer it makes (the same as the chroot backend's),
 * what it refuses (mounts, network none), and nothing it leaves running.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { Store, type LoadedImage } from '../../../src/store/store.js';
import { runStep, type RunStepOptions } from '../../../src/sandbox/index.js';

const missing =
  basesUnavailable() ??
  (spawnSync('sh', ['-c', 'command -v perl && command -v setpriv']).status === 0
    ? undefined
    : 'perl and setpriv are needed (apt-get install perl-base util-linux)');
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bare-'));
const root = path.join(work, 'store');
let store: Store;
let base: LoadedImage;
after(() => rmSync(work, { recursive: true, force: true }));

async function run(
  o: Partial<RunStepOptions> & { args: string[] },
): Promise<{ code: number; out: string; err: string; outcome: Awaited<ReturnType<typeof runStep>> }> {
  let out = '';
  let err = '';
  const outcome = await runStep({
    store,
    layers: base.manifest.layers,
    diffIds: base.config.rootfs.diff_ids,
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'FOO=bar'],
    backend: 'bare',
    snapshotter: 'native',
    listChanges: true,
    onStdout: (b) => (out += b.toString()),
    onStderr: (b) => (err += b.toString()),
    ...o,
  });
  return { code: outcome.exitCode, out, err, outcome };
}

describe('the bare backend', () => {
  before(async () => {
    if (missing) throw new Error(missing);
    const r = await runKiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm'], { root });
    assert.equal(r.code, 0, r.stderr);
    store = await Store.open({ root });
    base = await store.resolveImage('debian-slim:bookworm');
  });

  test('the process sees its user, groups, environment, working directory and /dev; the layer holds its changes only', async () => {
    const r = await run({
      args: [
        'sh',
        '-c',
        'id; pwd; env | sort; echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1; test -e /proc/self || echo no-proc; echo made > /tmp/made.txt',
      ],
      user: 'nobody',
      cwd: '/tmp/work',
      capture: true,
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.outcome.backend, 'bare');
    assert.match(r.out, /^uid=65534\(nobody\) gid=65534\(nogroup\) groups=65534\(nogroup\)\n\/tmp\/work\n/);
    assert.match(r.out, /\nFOO=bar\nHOME=\/nonexistent\nPATH=\/usr\/local\/sbin[^\n]*\nPWD=\/tmp\/work\n/);
    assert.match(r.out, / 00 00 00 00\nno-proc\n$/);
    // /tmp/work was made (as docker makes a missing WORKDIR), /tmp/made.txt written: nothing of /dev.
    assert.deepEqual(
      r.outcome.changes.map((c) => `${c.kind} ${c.path}`),
      ['add tmp', 'add tmp/made.txt', 'add tmp/work'],
    );
  });

  test('a missing command exits 127; a failing one with its own code', async () => {
    assert.equal((await run({ args: ['no-such-command'], capture: false })).code, 127);
    assert.equal((await run({ args: ['sh', '-c', 'exit 7'], capture: false })).code, 7);
  });

  test('what the process leaves running is killed when it exits', async () => {
    const marker = `sleep ${400000 + (process.pid % 10000)}`;
    const t0 = Date.now();
    const r = await run({
      args: ['sh', '-c', `${marker} & ${marker} & setsid ${marker} & echo started`],
      capture: false,
    });
    assert.equal(r.code, 0, r.err);
    assert.ok(Date.now() - t0 < 20_000, 'no wait for the background processes');
    const left = spawnSync('ps', ['-eo', 'args='], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l.trim() === marker);
    assert.deepEqual(left, []);
  });

  test('mounts and network none are refused, saying why', async () => {
    await assert.rejects(
      run({ args: ['true'], mounts: [{ type: 'tmpfs', target: '/cache' }], capture: false }),
      /need a mount namespace[^]*bare backend/,
    );
    await assert.rejects(
      run({ args: ['true'], network: 'none', capture: false }),
      /network none needs a network namespace/,
    );
  });
});
