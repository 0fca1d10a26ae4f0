/**
 * Where a run's secret-bearing files live: the OCI spec (config.json: the process's environment,
 * `RUN --mount=type=secret,env=…` values included), the runtime's state (crun keeps a copy of the
 * spec there) and the chroot backend's script. Never on disk: in a directory only its owner can
 * enter on a tmpfs (/dev/shm), named kiln-rt-<pid>-…, linked from the bundle, so the runtime finds
 * them where it looks. The spec is removed as soon as the runtime has read it; the rest when the
 * run is torn down. What a killed kiln left is removed by the next cleanup (rundir.ts) or by
 * `kiln prune` (sweepPrivateDirs).
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { processAlive } from '../util/index.js';

/** /dev/shm when it is a usable tmpfs, else the temp dir (then at least private). */
export function tmpfsBase(): string {
  try {
    if (statSync('/dev/shm').isDirectory()) {
      const probe = mkdtempSync('/dev/shm/kiln-probe-');
      rmSync(probe, { recursive: true, force: true });
      return '/dev/shm';
    }
  } catch {
    // no usable /dev/shm
  }
  return os.tmpdir();
}

/**
 * A fresh private directory for one run's secret-bearing files: `rt` for the runtime's (spec,
 * state, script), `run` for RUN mounts' secret files and agent sockets (build/run-mounts.ts).
 */
export function makePrivateDir(kind: 'rt' | 'run' = 'rt'): string {
  const d = mkdtempSync(path.join(tmpfsBase(), `kiln-${kind}-${process.pid}-`));
  chmodSync(d, 0o700);
  return d;
}

/** Write `name` (mode 0600) in the private dir and link it from `bundleDir` under the same name. */
export function writePrivateFile(privateDir: string, bundleDir: string, name: string, data: string): string {
  const file = path.join(privateDir, name);
  writeFileSync(file, data, { mode: 0o600 });
  symlinkSync(file, path.join(bundleDir, name));
  return file;
}

/** Remove the private directories of kiln processes that are gone (theirs: kiln-rt-* and run-mounts' kiln-run-*). */
export function sweepPrivateDirs(): number {
  const base = tmpfsBase();
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = /^kiln-(?:rt|run)-(\d+)-/.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    rmSync(path.join(base, name), { recursive: true, force: true });
    n++;
  }
  return n;
}
