/**
 * Base root filesystems made from Debian packages by scripts/make-base.sh, cached across runs
 * (KILN_TEST_BASES, default /var/cache/kiln-test-bases). Concurrent test files asking for the same
 * base take turns: the script holds a mkdir lock per base while it makes one.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from './paths.js';
import { runKiln } from './kiln.js';

/** A base for this machine's architecture. */
export type HostBaseName = 'debian-slim' | 'python-slim' | 'python-full' | 'node-slim' | 'node-full' | 'cross-gcc';
/** The Debian architectures the multi-platform tests use (`NAME-ARCH` asks make-base.sh for another one). */
export type DebianArch = 'amd64' | 'arm64';
export type BaseName = HostBaseName | `${HostBaseName}-${DebianArch}`;

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

/** This machine's Debian architecture (the one a base NAME without -ARCH is made for). */
export const hostArch: DebianArch = process.arch === 'arm64' ? 'arm64' : 'amd64';

/** NAME made for ARCH: NAME itself for this machine's architecture, NAME-ARCH for another. */
export function baseFor(name: HostBaseName, arch: DebianArch): BaseName {
  return arch === hostArch ? name : `${name}-${arch}`;
}

/**
 * What is missing to run arm64 (or, on an arm64 machine, amd64) programs here: QEMU registered in
 * binfmt_misc with the F flag (the kernel opens the interpreter at registration, so it works inside
 * a sandbox's root). Undefined when it is there. scripts/setup.sh registers it.
 */
export function emulationUnavailable(arch: DebianArch = hostArch === 'amd64' ? 'arm64' : 'amd64'): string | undefined {
  const q = arch === 'arm64' ? 'qemu-aarch64' : 'qemu-x86_64';
  const entry = `/proc/sys/fs/binfmt_misc/${q}`;
  if (!existsSync(entry))
    return `running ${arch} programs needs QEMU in binfmt_misc: apt-get install qemu-user-static binfmt-support arch-test && update-binfmts --enable ${q}`;
  const text = readFileSync(entry, 'utf8');
  if (!/^enabled/m.test(text)) return `binfmt_misc has ${q} disabled: update-binfmts --enable ${q}`;
  if (!/^flags:.*F/m.test(text))
    return `binfmt_misc has ${q} without the F flag (it must work inside a sandbox's root): update-binfmts --disable ${q} && update-binfmts --enable ${q}`;
  return undefined;
}

/**
 * A two-platform base in the store at `root`: NAME for linux/amd64 and linux/arm64 imported (with
 * `kiln import --platform`) and tagged as one OCI index under `ref`; each image is also tagged
 * `ref-amd64` / `ref-arm64`. Returns the index's digest.
 */
export async function ensureMultiPlatformBase(root: string, name: HostBaseName, ref: string): Promise<string> {
  const perArch: string[] = [];
  for (const arch of ['amd64', 'arm64'] as const) {
    const tag = `${ref}-${arch}`;
    const r = await runKiln(['import', '--platform', `linux/${arch}`, await ensureBaseTar(baseFor(name, arch)), tag], {
      root,
    });
    if (r.code !== 0) throw new Error(`kiln import ${name} for ${arch}: ${r.stderr}`);
    perArch.push(tag);
  }
  return writeIndexOf(root, ref, perArch);
}

/** An OCI index under `ref` in the store at `root` of the images tagged `images` (one per platform). */
async function writeIndexOf(root: string, ref: string, images: string[]): Promise<string> {
  const { Store, writeIndex } = (await import(path.join(repoRoot, 'dist', 'src', 'store', 'index.js'))) as {
    Store: typeof import('../../src/store/index.js').Store;
    writeIndex: typeof import('../../src/store/index.js').writeIndex;
  };
  const store = await Store.open({ root });
  const entries = [];
  for (const tag of images) {
    const img = await store.resolveImage(tag);
    entries.push({
      descriptor: img.descriptor,
      platform: { os: img.config.os, architecture: img.config.architecture },
    });
  }
  const index = await writeIndex(store, entries);
  await store.setTag(ref, index);
  return index.digest;
}

/**
 * Copy every image the store at `root` tags `ref` (an index with all its images) to a registry with
 * skopeo, which reads the store as the OCI image layout it is; returns what skopeo said.
 */
export function pushWithSkopeo(root: string, ref: string, dest: string): void {
  const r = spawnSync(
    'skopeo',
    ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${root}:${ref}`, `docker://${dest}`],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`skopeo copy oci:${root}:${ref} docker://${dest}: ${r.stderr}`);
}
