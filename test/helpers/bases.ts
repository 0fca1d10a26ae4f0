/**
 * Base root filesystems made from Debian packages by ../shared/fixtures/make-base-rootfs.sh,
 * cached across runs (KILN_TEST_BASES, default /var/cache/kiln-test-bases). Concurrent test files
 * asking for the same base wait for one maker (a mkdir lock).
 */
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { sharedDir } from './paths.js';

export type BaseName = 'debian-slim' | 'python-slim' | 'python-full' | 'node-slim' | 'node-full';

export const basesDir = process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases';

/** Why base images cannot be made here, or undefined when they can (for test skips). */
export function basesUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'making base images needs root (mmdebstrap)';
  if (!existsSync(path.join(sharedDir, 'fixtures', 'make-base-rootfs.sh'))) return `no ${sharedDir}/fixtures/make-base-rootfs.sh`;
  return undefined;
}

/** Path of NAME.tar, making it (~20-60 s) on first use. */
export async function ensureBaseTar(name: BaseName): Promise<string> {
  const tar = path.join(basesDir, `${name}.tar`);
  if (existsSync(tar) && statSync(tar).size > 0) return tar;
  mkdirSync(basesDir, { recursive: true });
  const lock = path.join(basesDir, `.${name}.lock`);
  for (let waited = 0; ; waited += 1) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(tar) && statSync(tar).size > 0) return tar;
      // A maker that died long ago leaves a stale lock: take it over after 10 minutes.
      if (waited > 600) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    if (existsSync(tar) && statSync(tar).size > 0) return tar;
    const r = spawnSync('bash', [path.join(sharedDir, 'fixtures', 'make-base-rootfs.sh'), basesDir, name], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`make-base-rootfs.sh ${name} failed: ${r.stderr || r.stdout}`);
    return tar;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
