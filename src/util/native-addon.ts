/**
 * kiln's native addon (native/, the `kiln-native` package, built by node-gyp at `npm ci`): found and
 * loaded once per thread, for the file-system helper (native-fs.ts) and the block deflater
 * (layer/gzip-block.ts; the gzip worker threads load the same file by its path).
 */
import { existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { KilnError } from './errors.js';

/** The addon's calls (native/src/fswalk.c, native/src/prefetch.c, native/src/deflate.c). */
export interface NativeAddon {
  readDirectory(dir: string): { names: string[]; stats: Float64Array } | null;
  readFileInto(file: string, into: Uint8Array, offset: number, length: number): number;
  /** How many readFileInto calls of this process found their file not in the page cache. */
  coldReads(): number;
  /** Paths handed to the read-ahead thread (native/src/prefetch.c): how many were queued. */
  prefetchFiles(paths: string[]): number;
  /** [files the read-ahead thread looked at, of them not in the page cache, 1 while it runs]. */
  prefetchStats(): [number, number, number];
  /** Raw deflate of `input` by libdeflate at `level` (0-12): not final, ending on a byte boundary. */
  deflateBlock(input: Uint8Array, level: number): Buffer;
}

const ADDON = path.join('build', 'Release', 'kiln_native.node');

/**
 * Where the addon was built: the `kiln-native` package in the nearest node_modules up from here
 * (npm links it to native/), else native/ of the checkout itself (a worktree sharing another's
 * node_modules).
 */
function addonCandidates(): string[] {
  const found: string[] = [];
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    for (const pkg of [path.join(dir, 'node_modules', 'kiln-native'), path.join(dir, 'native')])
      if (existsSync(path.join(pkg, ADDON))) found.push(path.join(pkg, ADDON));
    if (found.length > 0 || path.dirname(dir) === dir) return found;
  }
}

/**
 * The addon, the file it was loaded from, and that file kept open (`fd`): a gzip worker started
 * while the host-root backend has emptied `/` around a RUN cannot find the file by its path, and
 * loads it through /proc/self/fd/`fd` (deflate-pool.ts).
 */
export interface LoadedAddon {
  file: string;
  fd: number;
  addon: NativeAddon;
}

let loaded: LoadedAddon | undefined;

/** Whether the addon is loaded in this thread already (by the file-system helper or the deflater). */
export function nativeAddonLoaded(): boolean {
  return loaded !== undefined;
}

/** The addon; a KilnError naming what to install when it cannot be loaded. */
export function nativeAddon(): LoadedAddon {
  return (loaded ??= load());
}

function load(): LoadedAddon {
  const require = createRequire(import.meta.url);
  let failure = 'not built (no native/build/Release/kiln_native.node)';
  for (const file of addonCandidates()) {
    try {
      const addon = require(file) as NativeAddon;
      return { file, fd: openSync(file, 'r'), addon };
    } catch (e) {
      failure = `${file}: ${(e as Error).message}`;
    }
  }
  throw new KilnError(
    'NOT_FOUND',
    `kiln's native addon (kiln-native) could not be loaded: ${failure}. It is built by node-gyp when kiln ` +
      'is installed and links libdeflate: install python3, make, a C compiler and libdeflate ' +
      '(apt-get install python3 make g++ libdeflate-dev; at run time libdeflate0 is enough) and ' +
      "Node.js's headers, then run `npm rebuild kiln-native` (or `npm ci`) in kiln's directory",
  );
}
