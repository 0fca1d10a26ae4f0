/**
 * The real-world corpus' toolchain base (gcc, autotools, Go, Rust, busybox, tini, dumb-init on
 * Debian bookworm), made by test/fixtures/realworld/make-toolchain-base.sh and cached beside the
 * other test bases. Concurrent test files wait for one maker (a mkdir lock, as helpers/bases.ts).
 */
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { basesDir } from './bases.js';
import { fixturesDir } from './paths.js';

export const toolchainScript = path.join(fixturesDir, 'realworld', 'make-toolchain-base.sh');

/** Path of toolchain.tar, making it (~2-3 min, ~1.2 GB) on first use. */
export async function ensureToolchainTar(): Promise<string> {
  const tar = path.join(basesDir, 'toolchain.tar');
  const ready = () => existsSync(tar) && statSync(tar).size > 0;
  if (ready()) return tar;
  mkdirSync(basesDir, { recursive: true });
  const lock = path.join(basesDir, '.toolchain.lock');
  for (let waited = 0; ; waited += 1) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (ready()) return tar;
      if (waited > 900) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    if (ready()) return tar;
    const r = spawnSync('bash', [toolchainScript, tar], { encoding: 'utf8' });
    if (r.status !== 0)
      throw new Error(
        `make-toolchain-base.sh failed (it needs root, mmdebstrap and Debian's mirror): ${r.stderr || r.stdout}`,
      );
    return tar;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
