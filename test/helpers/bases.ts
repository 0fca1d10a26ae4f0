/**
 * Base root filesystems made from Debian packages by scripts/make-base.sh, cached across runs
 * (KILN_TEST_BASES, default /var/cache/kiln-test-bases). Concurrent test files asking for the same
 * base take turns: the script holds a mkdir lock per base while it makes one.
 */
import { existsSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from './paths.js';

export type BaseName = 'debian-slim' | 'python-slim' | 'python-full' | 'node-slim' | 'node-full';

export const basesDir = process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases';
/** The script that makes them (also used by the demo, the first build and the benchmark). */
export const makeBaseScript = path.join(repoRoot, 'scripts', 'make-base.sh');

/**
 * What is missing to make base images here (a sentence saying what to do), or undefined when
 * they can be made. Pass it to `needs()` (helpers/prereq.ts), never straight to `skip`.
 */
export function basesUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'making base images needs root (mmdebstrap): run the tests as root';
  return undefined;
}

/** Path of NAME.tar, making it (~20-60 s, once) on first use. */
export async function ensureBaseTar(name: BaseName): Promise<string> {
  const tar = path.join(basesDir, `${name}.tar`);
  if (existsSync(tar) && statSync(tar).size > 0) return tar;
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const p = spawn('bash', [makeBaseScript, basesDir, name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    p.on('close', (c) => resolve({ code: c, output }));
  });
  if (code !== 0 || !existsSync(tar))
    throw new Error(`scripts/make-base.sh ${basesDir} ${name} failed (exit ${code}): ${output.trim()}`);
  return tar;
}
