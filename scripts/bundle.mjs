#!/usr/bin/env node
// The `kiln` executable: dist/bin/kiln.js, bundled by esbuild from tsc's output (dist/src). One
// bundle per command plus shared chunks, so a CLI call still loads only its command, from a few
// files instead of ~150 modules: start-up, part of every command's time, drops by ~60 ms.
// dist/src stays the library (package.json "main") and what the unit tests import.
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'bin');
rmSync(outdir, { recursive: true, force: true }); // no stale chunks from an earlier build
await build({
  entryPoints: [
    { in: path.join(root, 'dist/src/cli/main.js'), out: 'kiln-main' },
    // Found beside the module that starts it (analyze/inflate.ts): a chunk in the same directory.
    { in: path.join(root, 'dist/src/analyze/gunzip-worker.js'), out: 'gunzip-worker' },
  ],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: '[name]-[hash]',
  // A native addon: loaded from node_modules at run time.
  external: ['fs-xattr'],
  // Bundled CommonJS dependencies (commander, tar-stream) call require() for node's modules.
  banner: {
    js: "import { createRequire as __kilnRequire } from 'node:module'; const require = __kilnRequire(import.meta.url);",
  },
  // Read only under --debug (main.ts turns source maps on): stack traces then name dist/src files.
  sourcemap: true,
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});

// dist/bin/kiln.js, the launcher: node's module compile cache (Node 22.1+; kept in the OS's temp
// directory, keyed by file contents) has to be on before the CLI's modules are compiled, so the
// launcher turns it on, then loads the CLI. On Node 20 it starts without the cache.
writeFileSync(
  path.join(outdir, 'kiln.js'),
  `#!/usr/bin/env node
// kiln's executable (scripts/bundle.mjs): turns on the module compile cache where node has one, then runs the CLI.
import module from 'node:module';
try {
  module.enableCompileCache?.();
} catch {
  // no cache: slower start-up only
}
const { runProgram } = await import('./kiln-main.js');
process.exitCode = await runProgram(process.argv.slice(2));
`,
);
chmodSync(path.join(outdir, 'kiln.js'), 0o755);
