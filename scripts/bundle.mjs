#!/usr/bin/env node
// The `kiln` executable: dist/bin/kiln.js, a launcher, and dist/bin/kiln-cli.cjs, the CLI bundled
// by esbuild from tsc's output (dist/src) into one CommonJS file. One file, so the launcher can
// compile it with V8's code cache (node 20 has no module compile cache): a no-op rebuild spent
// ~30 % of its CPU compiling ~150 modules from a dozen chunks. Lazy all the same: esbuild keeps
// each dynamically imported module (the commands, cli/commands/index.ts) behind an initializer
// that runs on first import, so a CLI call still evaluates only its command's modules.
// dist/src stays the library (package.json "main") and what the unit tests import.
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'bin');
rmSync(outdir, { recursive: true, force: true }); // no stale chunks from an earlier build
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  // A native addon: loaded from node_modules at run time.
  external: ['fs-xattr'],
  // Read only under --debug (main.ts turns source maps on): stack traces then name dist/src files.
  sourcemap: true,
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
};
await build({
  ...common,
  entryPoints: [path.join(root, 'dist/src/cli/main.js')],
  outfile: path.join(outdir, 'kiln-cli.cjs'),
  format: 'cjs',
  // import.meta.url (createRequire, files found beside the module) is the bundle's own URL.
  define: { 'import.meta.url': '__kilnModuleUrl' },
  banner: { js: "var __kilnModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The no-op memo (cli/noop-memo.ts), alone: the launcher asks it before it loads the CLI bundle.
await build({
  ...common,
  entryPoints: [path.join(root, 'dist/src/cli/noop-memo.js')],
  outfile: path.join(outdir, 'kiln-memo.cjs'),
  format: 'cjs',
  // Small: of the folders' index.ts re-exports only what the memo calls is kept (our modules do
  // nothing on load that the memo needs), not the store's or util's other modules.
  plugins: [
    {
      name: 'kiln-modules-without-side-effects',
      setup(b) {
        b.onResolve({ filter: /^\.\.?\// }, (args) => ({
          path: path.resolve(args.resolveDir, args.path),
          sideEffects: false,
        }));
        // node's own modules too: one imported for what the memo does not call is not loaded.
        b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, external: true, sideEffects: false }));
      },
    },
  ],
  define: { 'import.meta.url': '__kilnModuleUrl' },
  banner: { js: "var __kilnModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// Found beside the module that starts it (analyze/inflate.ts): a file in the same directory.
await build({
  ...common,
  entryPoints: [path.join(root, 'dist/src/analyze/gunzip-worker.js')],
  outfile: path.join(outdir, 'gunzip-worker.js'),
  // CommonJS, as everything in dist/bin (its package.json below).
  format: 'cjs',
});

// ASCII only: one character beyond it (esbuild escapes strings, not regular expressions) and V8
// holds the whole bundle's source as a two-byte string, 1.8 MB instead of 0.9: ~1.5 ms more CPU to
// read and compile it on every command. Write such a character as a \u escape.
for (const file of ['kiln-cli.cjs', 'kiln-memo.cjs']) {
  const text = readFileSync(path.join(outdir, file), 'utf8');
  const at = text.search(/[^\x00-\x7f]/);
  if (at >= 0) {
    const line = text.slice(0, at).split('\n').length;
    const context = text.slice(Math.max(0, at - 40), at + 20);
    console.error(`scripts/bundle.mjs: dist/bin/${file}:${line}: a non-ASCII character in ${JSON.stringify(context)}`);
    console.error('  write it as a \\u escape in the source (a regular expression: esbuild leaves them as they are)');
    process.exit(1);
  }
}

// dist/bin is CommonJS (its own package.json): node starts a CommonJS program without its ES
// module loader, ~9 ms of CPU less for every command (more than a no-op memo hit's own work).
writeFileSync(path.join(outdir, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);

// dist/bin/kiln.js, the launcher: first asks the no-op memo (kiln-memo.cjs, cli/noop-memo.ts)
// whether it answers this `kiln build`; else compiles kiln-cli.cjs with the code V8 made for it
// the last time (cachedData, in a directory of the user's own: code cache is trusted input to V8),
// runs it, and saves the code after a run that had none or whose cache V8 rejected (another node,
// a new build: the key names both; \`kiln build\` and the other commands each have theirs). Any
// failure of the memo or of the cache only costs time.
//
// Its first two lines are a shell script as well as JavaScript: node loads the whole file named by
// NODE_EXTRA_CA_CERTS at start-up, before any JavaScript runs (~55 ms for a system bundle such as
// /etc/ssl/certs/ca-certificates.crt, on every command); the shell starts node without it and hands
// it over in KILN_EXTRA_CA_CERTS, put back at once for kiln's registry client (registry/http.ts adds
// those CAs when it first makes a TLS connection) and for the programs kiln starts. \`node kiln.js\`
// skips the shell line (a string and a comment to JavaScript) and loads them as before.
writeFileSync(
  path.join(outdir, 'kiln.js'),
  `#!/bin/sh
':' //; exec /usr/bin/env -u NODE_EXTRA_CA_CERTS \${NODE_EXTRA_CA_CERTS+"KILN_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS"} node "$0" "$@"
// kiln's executable (scripts/bundle.mjs): answers a no-op rebuild from its memo, else runs the CLI
// bundle, compiled with V8's code cache. CommonJS (dist/bin/package.json): no ES module loader.
'use strict';
if (process.env.KILN_EXTRA_CA_CERTS !== undefined) {
  process.env.NODE_EXTRA_CA_CERTS = process.env.KILN_EXTRA_CA_CERTS;
  delete process.env.KILN_EXTRA_CA_CERTS;
}
const { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } = require('node:fs');
const path = require('node:path');

const file = path.join(__dirname, 'kiln-cli.cjs');
const argv = process.argv.slice(2);
const st = statSync(file);
// This build of the CLI for this node: the key of build's no-op memos (cli/noop-memo.ts).
const identity = \`\${process.version}-\${process.arch}-\${st.size}-\${st.mtimeMs}-\${st.ino}\`;
// codeCacheDir's answer ('' : none), before the memo and the CLI ask for it.
let cacheDir;

if (argv.includes('build') && !argv.includes('--debug') && serveNoopMemo()) {
  process.exitCode = 0;
} else {
  run().then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(\`fatal: \${String(e)}\\n\`);
      process.exitCode = 1;
    },
  );
}

async function run() {
  if (argv.includes('--debug')) {
    // Stack traces name dist/src files: node's loader reads the bundle's source map (not a vm script's).
    process.setSourceMapsEnabled(true);
    return require(file).runProgram(argv, { identity });
  }
  // (\`kiln build\` has a cache of its own: see codeCache.)
  const cache = codeCache(st, argv.includes('build') ? '-build' : '');
  const cached = cache?.read();
  const script = compiled(file, cached);
  // Written again when there was none, V8 rejected it, or it was only the start-up's (below).
  const rewrite = cache !== undefined && (cached === undefined || script.cachedDataRejected || cache.early);
  const majorGcs = rewrite ? majorGcCounter() : undefined;
  let startup;
  const module = { exports: {} };
  script.runInThisContext()(module.exports, require('node:module').createRequire(file), module, file, path.dirname(file));
  // The start-up's code, unless it is what was just read.
  const takeStartup = rewrite && !(cache.early && !script.cachedDataRejected);
  const commandLoaded = takeStartup ? () => (startup = script.createCachedData()) : undefined;
  const code = await module.exports.runProgram(argv, { identity, commandLoaded });
  if (rewrite) {
    // V8 drops the bytecode of a function not run for a few full GCs (--bytecode-old-age): after
    // a long command, that of the bundle's top level and of every module's initializer, all run
    // once at start. A cache taken then made each later start compile them again (~20 ms of CPU
    // on a 900 KB bundle, paid when the script first runs). So: the code at the end of a short
    // run (the start-up's and the command's); after a long one, that of the start-up, taken once
    // the command's modules were loaded, kept as such until a short run writes the whole.
    // node reports a GC to its observers from a native immediate: one turn of the loop delivers
    // those of a command that ran to its end without one.
    await new Promise((resolve) => setImmediate(resolve));
    if (majorGcs() < 3) cache.write(script.createCachedData(), false);
    else if (startup) cache.write(startup, true);
  }
  return code;
}

/** Counts V8's full (mark-compact) GCs from now on: call the function returned. */
function majorGcCounter() {
  const { PerformanceObserver, constants } = require('node:perf_hooks');
  let n = 0;
  const count = (entries) => {
    for (const e of entries) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) n++;
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  return () => {
    count(observer.takeRecords());
    observer.disconnect();
    return n;
  };
}

/**
 * A \`kiln build\` answered by its no-op memo, without the CLI bundle; any failure: the full path.
 * The memo module is compiled with V8's code cache too (its own file): every build asks it, hit or
 * miss, and compiling its 13 KB and the functions it runs took ~2-3 ms of CPU per build.
 */
function serveNoopMemo() {
  if (process.env.KILN_NO_MEMO && process.env.KILN_NO_MEMO !== '0') return false;
  try {
    const memoFile = path.join(__dirname, 'kiln-memo.cjs');
    const memoSt = statSync(memoFile);
    const cache = codeCache(memoSt, '-memo');
    const cached = cache?.read();
    const script = compiled(memoFile, cached);
    const module = { exports: {} };
    // The memo requires node's modules only: the launcher's require resolves them as its own would.
    script.runInThisContext()(module.exports, require, module, memoFile, __dirname);
    const answered = module.exports.serveNoopMemo(identity, argv) === true;
    // Written once (none, or rejected: another node), with the code of what ran (a hit's or a miss's).
    if (cache !== undefined && (cached === undefined || script.cachedDataRejected)) cache.write(script.createCachedData(), false);
    return answered;
  } catch {
    return false;
  }
}

/** A CommonJS file as a vm script, compiled with \`cachedData\` (V8's code from an earlier run) when given. */
function compiled(file, cachedData) {
  const { Script } = require('node:vm');
  // As node wraps a CommonJS module (main.ts's #! line, kept by esbuild, is no JavaScript).
  const source = \`(function (exports, require, module, __filename, __dirname) { \${readFileSync(file, 'utf8').replace(/^#!.*/, '')}\n});\`;
  return new Script(source, { filename: file, cachedData });
}

/** The launcher's code cache directory, only this user can write (undefined: none); looked at once. */
function codeCacheDir() {
  if (cacheDir !== undefined) return cacheDir || undefined;
  cacheDir = '';
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(process.env.XDG_CACHE_HOME || require('node:os').tmpdir(), \`kiln-code-cache-\${uid}\`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const d = statSync(dir);
  if (d.uid !== uid || (d.mode & 0o022) !== 0) return undefined;
  return (cacheDir = dir);
}

/**
 * The code cache of a file of this build of kiln (\`st\`: its stat; the CLI bundle, or the memo
 * module with kind \`-memo\`) for this node, in a directory only this user can write.
 */
function codeCache(st, kind) {
  if (process.env.KILN_NO_CODE_CACHE) return undefined;
  try {
    const dir = codeCacheDir();
    if (dir === undefined) return undefined;
    // V8 keeps the code of the functions the run that wrote the cache compiled: \`build\` has its
    // own (written by the first \`kiln build\`), else a \`kiln pull\` or \`import\` run first after an
    // install made every later build compile most of the engine again (~30 ms of CPU, and as much
    // on the critical path before its first RUN, measured on node-distroless).
    const name = path.join(dir, \`\${process.version}-\${process.arch}-\${st.size}-\${Math.trunc(st.mtimeMs)}\${kind}.bin\`);
    // Only the start-up's code, written after a long run (run() above): used until the whole is.
    const earlyName = name.replace(/\\.bin$/, '.early.bin');
    let early = false;
    return {
      get early() {
        return early;
      },
      read() {
        for (const [f, isEarly] of [[name, false], [earlyName, true]]) {
          try {
            const data = readFileSync(f);
            early = isEarly;
            return data;
          } catch {
            // next, or none
          }
        }
        return undefined;
      },
      write(data, isEarly) {
        try {
          const target = isEarly ? earlyName : name;
          const tmp = \`\${target}.\${process.pid}.tmp\`;
          const fd = openSync(tmp, 'w', 0o600);
          writeSync(fd, data);
          closeSync(fd);
          renameSync(tmp, target);
          if (!isEarly) rmSync(earlyName, { force: true });
          // The code of earlier builds (or nodes) not written for a week: of no use any more. Not
          // sooner: two installs of kiln run by one user would otherwise evict each other's.
          const weekAgo = Date.now() - 7 * 24 * 3600 * 1000;
          for (const f of readdirSync(dir)) {
            const p = path.join(dir, f);
            if (f.endsWith('.bin') && p !== target && statSync(p).mtimeMs < weekAgo) rmSync(p, { force: true });
          }
        } catch {
          // no cache: slower start-up only
        }
      },
    };
  } catch {
    return undefined;
  }
}
`,
);
chmodSync(path.join(outdir, 'kiln.js'), 0o755);
