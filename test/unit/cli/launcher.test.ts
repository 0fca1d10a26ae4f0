import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { cliPath } from '../../helpers/paths.js';

const kiln = (cacheHome: string, ...args: string[]) =>
  spawnSync(process.execPath, [cliPath, ...args], {
    env: { ...process.env, XDG_CACHE_HOME: cacheHome, KILN_NO_CODE_CACHE: '' },
    encoding: 'utf8',
  });

test('the launcher keeps V8 code for the bundle in a private directory, reuses it, and rewrites a damaged one', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'kiln-launcher-'));
  try {
    const first = kiln(home, '--version');
    assert.equal(first.status, 0, first.stderr);
    const dir = path.join(home, `kiln-code-cache-${process.getuid?.() ?? 0}`);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const files = readdirSync(dir).filter((f) => f.endsWith('.bin'));
    assert.equal(files.length, 1, 'one cache file, for this node and this build of the bundle');
    const file = path.join(dir, files[0]!);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(statSync(file).size > 10_000, 'code was written');
    const again = kiln(home, '--version');
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);
    // Damaged (or from another V8): rejected by V8, the command still runs, and the file is rewritten.
    writeFileSync(file, 'not v8 code');
    const damaged = kiln(home, '--version');
    assert.equal(damaged.status, 0, damaged.stderr);
    assert.equal(damaged.stdout, first.stdout);
    assert.ok(statSync(file).size > 10_000, 'the cache was rewritten');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('kiln build has its own code cache: a lighter command run first after an install does not leave builds without theirs', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'kiln-launcher-'));
  try {
    const dir = path.join(home, `kiln-code-cache-${process.getuid?.() ?? 0}`);
    assert.equal(kiln(home, '--version').status, 0);
    const [other] = readdirSync(dir);
    assert.ok(other && !other.endsWith('-build.bin'), `${other}: the other commands' cache`);
    const before = statSync(path.join(dir, other));
    const r = kiln(home, 'build', '--help');
    assert.equal(r.status, 0, r.stderr);
    const files = readdirSync(dir).sort();
    const build = files.find((f) => f.endsWith('-build.bin'));
    assert.ok(build, `a cache of its own written by the first build: ${files.join(' ')}`);
    assert.equal(build, other.replace(/\.bin$/, '-build.bin'), 'the same node and bundle');
    assert.ok(statSync(path.join(dir, build)).size > 10_000);
    assert.equal(statSync(path.join(dir, other)).mtimeMs, before.mtimeMs, "the other commands' cache left alone");
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test("a build's no-op memo check is compiled with a code cache of its own: written once, reused, rewritten when rejected", () => {
  const home = mkdtempSync(path.join(tmpdir(), 'kiln-launcher-'));
  try {
    const dir = path.join(home, `kiln-code-cache-${process.getuid?.() ?? 0}`);
    // Any `kiln build` asks the memo first (here it has none to answer from: the CLI runs).
    const first = kiln(home, '--root', path.join(home, 'store'), 'build', '--help');
    assert.equal(first.status, 0, first.stderr);
    const memo = readdirSync(dir).filter((f) => f.endsWith('-memo.bin'));
    assert.equal(memo.length, 1, readdirSync(dir).join(' '));
    const file = path.join(dir, memo[0]!);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(statSync(file).size > 1_000, 'code was written');
    const written = statSync(file).mtimeMs;
    const again = kiln(home, '--root', path.join(home, 'store'), 'build', '--help');
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);
    assert.equal(statSync(file).mtimeMs, written, 'read, not written again');
    writeFileSync(file, 'not v8 code');
    const damaged = kiln(home, '--root', path.join(home, 'store'), 'build', '--help');
    assert.equal(damaged.status, 0, damaged.stderr);
    assert.equal(damaged.stdout, first.stdout);
    assert.ok(statSync(file).size > 1_000, 'rejected by V8, so written again');
    // Other commands do not ask the memo: no such cache from them.
    const other = mkdtempSync(path.join(tmpdir(), 'kiln-launcher-'));
    try {
      assert.equal(kiln(other, '--version').status, 0);
      const otherDir = path.join(other, `kiln-code-cache-${process.getuid?.() ?? 0}`);
      assert.deepEqual(
        readdirSync(otherDir).filter((f) => f.endsWith('-memo.bin')),
        [],
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('after a long run, only the start-up code is kept (V8 had dropped it), until a short run writes the whole', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'kiln-launcher-'));
  try {
    const root = path.join(home, 'store');
    const dir = path.join(home, `kiln-code-cache-${process.getuid?.() ?? 0}`);
    // A "long" run: full GCs while the command runs (the same V8 flags in every run: V8's code
    // cache is only valid for the flags it was made with).
    const gcs = path.join(home, 'gcs.cjs');
    // The GCs at the command's first output: inside the command however fast it runs (a timer could
    // fire after a quick command had finished).
    writeFileSync(
      gcs,
      'const w = process.stdout.write.bind(process.stdout);\n' +
        'let done = false;\n' +
        'process.stdout.write = (...a) => {\n' +
        '  if (!done) { done = true; for (let i = 0; i < 8; i++) gc(); }\n' +
        '  return w(...a);\n' +
        '};\n',
    );
    const run = (long: boolean) =>
      spawnSync(process.execPath, ['--expose-gc', ...(long ? ['-r', gcs] : []), cliPath, '--root', root, 'images'], {
        env: { ...process.env, XDG_CACHE_HOME: home, KILN_NO_CODE_CACHE: '' },
        encoding: 'utf8',
      });
    const long = run(true);
    assert.equal(long.status, 0, long.stderr);
    const files = readdirSync(dir);
    assert.equal(files.length, 1, files.join(' '));
    assert.match(files[0]!, /\.early\.bin$/, 'the start-up code only');
    const early = path.join(dir, files[0]!);
    assert.ok(statSync(early).size > 10_000);
    const mtime = statSync(early).mtimeMs;
    const again = run(true);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, long.stdout);
    assert.equal(statSync(early).mtimeMs, mtime, 'used, not written again by another long run');
    const short = run(false);
    assert.equal(short.status, 0, short.stderr);
    assert.equal(short.stdout, long.stdout);
    assert.deepEqual(
      readdirSync(dir),
      [files[0]!.replace(/\.early\.bin$/, '.bin')],
      'the whole, and no start-up code left',
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('the launcher uses no cache directory another user could write', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'kiln-launcher-'));
  try {
    const dir = path.join(home, `kiln-code-cache-${process.getuid?.() ?? 0}`);
    spawnSync('mkdir', ['-m', '777', dir]);
    const r = kiln(home, '--version');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(dir), [], 'nothing read from or written to a world-writable directory');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
