/**
 * Benchmark: push and pull of the python-full base (~500 MB rootfs, one gzip layer) to and from a
 * local distribution registry (Debian's docker-registry on loopback), kiln against `skopeo copy`
 * doing the same transfer. Every run gets a fresh, empty registry (and, for pulls, an empty
 * destination), so nothing is skipped as already present. skopeo reads the very same blobs: kiln's
 * store is an OCI image layout (its ref names are normalized: docker.io/library/…). Target: kiln at least 1.0× skopeo's speed (ratio = skopeo / kiln).
 * A third line pushes the image as a build leaves it in the store (a plain tar layer): both tools
 * compress it on the way (kiln's compressed copy is forgotten before each run): kiln at its default gzip
 * (libdeflate's level 2: a blob no bigger than skopeo's), skopeo at its own default (klauspost/pgzip). Each line is
 * followed by the CPU time (user + system) of both tools' process trees (the registry's own is not
 * counted for either), the fairer figure on a shared machine. Both tools run as users run them: kiln
 * by its executable, skopeo copy with the registry's TLS check off (it is plain HTTP).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureBaseTar, basesUnavailable } from '../test/helpers/bases.js';
import { cliPath } from '../test/helpers/paths.js';
import { registryUnavailable, startRegistry, type Registry } from '../test/helpers/registry.js';
import { Store } from '../src/store/store.js';
import { compressedImage } from '../src/store/compressed.js';

/** Runs of each (KILN_BENCH_RUNS: more where the machine is shared). */
const RUNS = Number(process.env.KILN_BENCH_RUNS ?? 3);
const TARGET_RATIO = 1.0;

const why =
  basesUnavailable() ??
  registryUnavailable() ??
  (spawnOk('skopeo', ['--version']) ? undefined : 'skopeo is not installed (apt-get install skopeo)') ??
  (spawnOk('/usr/bin/time', ['true']) ? undefined : 'GNU time is not installed (apt-get install time)');
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}

function spawnOk(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

const work = mkdtempSync(path.join(process.env.KILN_BENCH_DIR ?? '/var/tmp', 'kiln-bench-registry-'));
const srcRoot = path.join(work, 'src-store');

/** CPU seconds (user + system) of each run's process tree, by label: on a shared machine the fairer figure. */
const cpu: Record<string, number[]> = {};
const timeFile = path.join(work, 'time.txt');

/**
 * Run a command (async: the registry is a child process, but keep the event loop free anyway);
 * its wall seconds; its CPU (GNU time's user + system, children included) goes to cpu[label].
 */
function run(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, cmd, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    c.on('error', reject);
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err}`));
      const [user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      (cpu[label] ??= []).push(user! + sys!);
      resolve((performance.now() - t0) / 1000);
    });
  });
}
/**
 * kiln's executable, as users run it (`kiln`), not `node kiln.js`: its shell line spares node's
 * start-up the load of NODE_EXTRA_CA_CERTS (scripts/bundle.mjs; ~30 ms of CPU, more wall on a busy
 * machine, where that variable is set), as the peer benchmark does; the node running this bench
 * first on its PATH.
 */
const kiln = (label: string, args: string[], root: string) =>
  run(label, cliPath, args, {
    KILN_ROOT: root,
    KILN_NO_PROGRESS: '1',
    PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
  });

async function withRegistry<T>(f: (reg: Registry) => Promise<T>): Promise<T> {
  const reg = await startRegistry();
  try {
    return await f(reg);
  } finally {
    await reg.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

let failed = false;
try {
  const tar = await ensureBaseTar('python-full');
  // The store keeps an imported layer as a plain tar; the gzip one (as a pulled image has it) is
  // tagged python-full:bench, the plain one python-full:plain.
  await kiln('import', ['import', tar, 'python-full:plain'], srcRoot);
  {
    const store = await Store.open({ root: srcRoot });
    const gz = await compressedImage(store, await store.resolveImage('python-full:plain'), { compression: 'gzip' });
    await store.setTag('python-full:bench', gz.descriptor);
  }
  const layerBytes = statSync(tar).size;
  const times = {
    kilnPush: [] as number[],
    skopeoPush: [] as number[],
    kilnPull: [] as number[],
    skopeoPull: [] as number[],
    kilnPlain: [] as number[],
    skopeoPlain: [] as number[],
  };
  for (let i = 0; i < RUNS; i++) {
    await withRegistry(async (reg) => {
      rmSync(path.join(srcRoot, 'variants'), { recursive: true, force: true });
      times.kilnPlain.push(
        await kiln('kilnPlain', ['push', 'python-full:plain', `${reg.host}/bench/plain:kiln`], srcRoot),
      );
      times.skopeoPlain.push(
        await run('skopeoPlain', 'skopeo', [
          'copy',
          '-q',
          '--dest-tls-verify=false',
          `oci:${srcRoot}:docker.io/library/python-full:plain`,
          `docker://${reg.host}/bench/plain:skopeo`,
        ]),
      );
    });
    await withRegistry(async (reg) => {
      times.kilnPush.push(await kiln('kilnPush', ['push', 'python-full:bench', `${reg.host}/bench/py:kiln`], srcRoot));
      const pullRoot = path.join(work, `pull-${i}`);
      times.kilnPull.push(await kiln('kilnPull', ['pull', `${reg.host}/bench/py:kiln`], pullRoot));
      rmSync(pullRoot, { recursive: true, force: true });
    });
    await withRegistry(async (reg) => {
      times.skopeoPush.push(
        await run('skopeoPush', 'skopeo', [
          'copy',
          '-q',
          '--dest-tls-verify=false',
          `oci:${srcRoot}:docker.io/library/python-full:bench`,
          `docker://${reg.host}/bench/py:skopeo`,
        ]),
      );
      const dest = path.join(work, `skopeo-${i}`);
      times.skopeoPull.push(
        await run('skopeoPull', 'skopeo', [
          'copy',
          '-q',
          '--src-tls-verify=false',
          `docker://${reg.host}/bench/py:skopeo`,
          `oci:${dest}:py`,
        ]),
      );
      rmSync(dest, { recursive: true, force: true });
    });
  }
  for (const op of ['push', 'pull', 'push-plain'] as const) {
    const which = op === 'push' ? 'Push' : op === 'pull' ? 'Pull' : 'Plain';
    const k = median(times[`kiln${which}`]);
    const s = median(times[`skopeo${which}`]);
    const kc = median(cpu[`kiln${which}`]!);
    const sc = median(cpu[`skopeo${which}`]!);
    const ratio = s / k;
    const ok = ratio >= TARGET_RATIO;
    if (!ok) failed = true;
    console.log(
      `python-full ${op.padEnd(10)} kiln median ${k.toFixed(2)} s, skopeo copy ${s.toFixed(2)} s: ${ratio.toFixed(2)}× skopeo ` +
        `[${(layerBytes / 1e6).toFixed(0)} MB rootfs, ${RUNS} runs, fresh registry each]  ${ok ? 'OK' : `MISSED target ≥ ${TARGET_RATIO}×`}`,
    );
    console.log(
      `python-full ${op.padEnd(10)} CPU (user + system) kiln median ${kc.toFixed(2)} s, skopeo ${sc.toFixed(2)} s: ` +
        `${(sc / kc).toFixed(2)}× skopeo; per run kiln ${cpu[`kiln${which}`]!.map((x) => x.toFixed(2)).join(' ')}, ` +
        `skopeo ${cpu[`skopeo${which}`]!.map((x) => x.toFixed(2)).join(' ')}`,
    );
  }
  console.log(
    `load average during the runs: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} on ${os.cpus().length} CPUs`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
