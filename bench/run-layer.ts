/**
 * Benchmark: a process adds 30,000 small files on top of the python-full base (~500 MB); time
 * from the process's exit to the layer being ready, kiln's overlay snapshotter against its native
 * fallback (and buildah's RUN + commit on the same base when buildah is installed).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../src/store/store.js';
import { importRootfs } from '../src/archive/import.js';
import { runStep } from '../src/sandbox/index.js';
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

const basesDir = process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases';
const baseTar = path.join(basesDir, 'python-full.tar');
if (!existsSync(baseTar)) {
  // scripts/make-base.sh, from bench/ (tsx) or dist/bench/ (compiled): the first one up the tree.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'scripts', 'make-base.sh')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const made = spawnSync('bash', [path.join(dir, 'scripts', 'make-base.sh'), basesDir, 'python-full'], {
    stdio: 'inherit',
  });
  if (made.status !== 0) {
    console.error(`run-layer: cannot make ${baseTar} (scripts/make-base.sh failed, exit ${made.status})`);
    process.exit(1);
  }
}
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-run-'));
const script =
  'mkdir -p /gen && cd /gen && i=0; while [ $i -lt 300 ]; do mkdir d$i; j=0; while [ $j -lt 100 ]; do echo "file $i $j" > d$i/f$j; j=$((j+1)); done; i=$((i+1)); done';
try {
  const store = await Store.open({ root: path.join(work, 'store') });
  const img = await importRootfs(store, createReadStream(baseTar), { name: 'python-full:bench' });
  await store.snapshots(img.manifest.layers, img.config.rootfs.diff_ids);
  for (const snapshotter of ['overlay', 'native'] as const) {
    let exited = 0n;
    const t0 = process.hrtime.bigint();
    const r = await runStep({
      store,
      layers: img.manifest.layers,
      diffIds: img.config.rootfs.diff_ids,
      args: ['/bin/sh', '-c', `${script}; echo done`],
      env: [],
      snapshotter,
      onStdout: () => (exited = process.hrtime.bigint()),
    });
    const t1 = process.hrtime.bigint();
    if (r.exitCode !== 0 || !r.layer) throw new Error('run failed');
    console.log(
      `run-layer ${snapshotter}: whole step ${(Number(t1 - t0) / 1e9).toFixed(2)} s, process exit → layer ready ${(Number(t1 - exited) / 1e9).toFixed(2)} s (${r.changes.length} changes, layer ${(r.layer.size / 1e6).toFixed(1)} MB)`,
    );
  }
  if (spawnSync('sh', ['-c', 'command -v buildah']).status === 0) {
    const env = { ...process.env, STORAGE_DRIVER: 'overlay', BUILDAH_ISOLATION: 'chroot' };
    const opts = ['--root', path.join(work, 'buildah'), '--runroot', path.join(work, 'buildah-run')];
    const b = (args: string[]) => spawnSync('buildah', [...opts, ...args], { env, encoding: 'utf8' });
    const imp = spawnSync(
      'sh',
      [
        '-c',
        `buildah ${opts.join(' ')} from --name bench scratch >/dev/null && mnt=$(buildah ${opts.join(' ')} mount bench) && tar -xf ${baseTar} -C "$mnt" && buildah ${opts.join(' ')} commit -q bench pyfull >/dev/null && buildah ${opts.join(' ')} rm bench >/dev/null`,
      ],
      { env, encoding: 'utf8' },
    );
    if (imp.status !== 0)
      console.log(`run-layer buildah: could not import the base (${imp.stderr.trim().split('\n').pop()})`);
    else {
      b(['from', '--name', 'w', 'pyfull']);
      const t0 = process.hrtime.bigint();
      const run = b(['run', 'w', '--', '/bin/sh', '-c', script]);
      const t1 = process.hrtime.bigint();
      const commit = b(['commit', '-q', 'w', 'out']);
      const t2 = process.hrtime.bigint();
      if (run.status !== 0 || commit.status !== 0)
        console.log(`run-layer buildah: failed (${(run.stderr || commit.stderr).trim().split('\n').pop()})`);
      else
        console.log(
          `run-layer buildah (chroot isolation): run ${(Number(t1 - t0) / 1e9).toFixed(2)} s, commit (exit → layer ready) ${(Number(t2 - t1) / 1e9).toFixed(2)} s`,
        );
    }
  }
} finally {
  spawnSync('sh', ['-c', `grep ' ${work}' /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l`]);
  rmSync(work, { recursive: true, force: true });
}
