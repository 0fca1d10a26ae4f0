import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BuildContext } from '../../../src/context/index.js';
import { FileHashCache, fileHashCachePath, hashSelection } from '../../../src/context/hash.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-hash-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A context whose files have old mtimes (ctimes stay fresh: the caches below trust them: TRUST_ALL). */
function makeContext(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  age(dir, Object.keys(files));
  return dir;
}

function age(dir: string, rels: string[]): void {
  const old = new Date(Date.now() - 3600_000);
  for (const r of rels) utimesSync(path.join(dir, r), old, old);
}

/**
 * racyMs for caches that remember even files written a moment ago: the files' ctimes are fresh
 * (ms with a fraction, from the kernel's clock) and may read as a hair after Date.now(), so 0 is
 * not enough.
 */
const TRUST_ALL = -1000;

const hash = (dir: string, sources: string[], files?: FileHashCache) =>
  hashSelection(BuildContext.open(dir), sources, { files });

test('content, names and modes count; mtimes do not', async () => {
  const dir = makeContext('a', { 'src/a.py': 'print(1)\n', 'src/b.py': 'print(2)\n', README: 'r' });
  const h0 = await hash(dir, ['src']);
  assert.equal(await hash(dir, ['src']), h0);
  utimesSync(path.join(dir, 'src/a.py'), new Date(1000), new Date(1000));
  assert.equal(await hash(dir, ['src']), h0, 'touching a file keeps the key');
  writeFileSync(path.join(dir, 'README'), 'changed');
  assert.equal(await hash(dir, ['src']), h0, 'a file outside the selection does not count');
  writeFileSync(path.join(dir, 'src/a.py'), 'print(3)\n');
  const h1 = await hash(dir, ['src']);
  assert.notEqual(h1, h0);
  chmodSync(path.join(dir, 'src/a.py'), 0o755);
  const h2 = await hash(dir, ['src']);
  assert.notEqual(h2, h1, 'mode counts');
  writeFileSync(path.join(dir, 'src/c.py'), '');
  const h3 = await hash(dir, ['src']);
  assert.notEqual(h3, h2, 'a new empty file counts');
  symlinkSync('a.py', path.join(dir, 'src/link'));
  const h4 = await hash(dir, ['src']);
  assert.notEqual(h4, h3, 'a symlink counts');
  rmSync(path.join(dir, 'src/link'));
  symlinkSync('b.py', path.join(dir, 'src/link'));
  assert.notEqual(await hash(dir, ['src']), h4, 'its target counts');
});

test('.dockerignore: ignored files never count', async () => {
  const dir = makeContext('ig', {
    '.dockerignore': '*.log\nbuild/\n',
    'app.py': 'x',
    'debug.log': '1',
    'build/out': 'o',
  });
  const h0 = await hash(dir, ['.']);
  writeFileSync(path.join(dir, 'debug.log'), '2');
  writeFileSync(path.join(dir, 'build/out'), 'changed');
  writeFileSync(path.join(dir, 'new.log'), 'n');
  assert.equal(await hash(dir, ['.']), h0);
  writeFileSync(path.join(dir, 'app.py'), 'y');
  assert.notEqual(await hash(dir, ['.']), h0);
});

test('wildcards select like COPY; a missing source throws', async () => {
  const dir = makeContext('w', { 'a.txt': 'a', 'b.txt': 'b', 'c.md': 'c' });
  const all = await hash(dir, ['*.txt']);
  writeFileSync(path.join(dir, 'c.md'), 'changed');
  assert.equal(await hash(dir, ['*.txt']), all);
  writeFileSync(path.join(dir, 'b.txt'), 'changed');
  assert.notEqual(await hash(dir, ['*.txt']), all);
  await assert.rejects(hash(dir, ['nope.txt']), /not found/);
  assert.notEqual(await hash(dir, ['a.txt', 'b.txt']), await hash(dir, ['b.txt', 'a.txt']), 'order of sources counts');
  assert.match(
    await hash(dir, ['*.txt', 'none*']),
    /^sha256:/,
    'a wildcard matching nothing selects nothing, as COPY (no error)',
  );
});

test('hard links within a copied directory count (COPY keeps them); across sources they do not', async () => {
  const linked = makeContext('hl1', { 'd/a': 'same', 'd/z': 'other' });
  const copies = makeContext('hl2', { 'd/a': 'same', 'd/z': 'other', 'd/b': 'same' });
  linkSync(path.join(linked, 'd', 'a'), path.join(linked, 'd', 'b'));
  age(linked, ['d/a', 'd/b']);
  assert.notEqual(
    await hash(linked, ['d']),
    await hash(copies, ['d']),
    'the same bytes, linked or not: different layers',
  );
  assert.equal(
    await hash(linked, ['d/a', 'd/b']),
    await hash(copies, ['d/a', 'd/b']),
    'two sources are two files either way',
  );
});

test('ownership counts only when asked (sources whose owner reaches the layer)', async () => {
  const dir = makeContext('own', { f: 'x' });
  const ctx = BuildContext.plain(dir);
  const a = await hashSelection(ctx, ['f'], { keepOwner: false });
  const b = await hashSelection(ctx, ['f'], { keepOwner: true });
  assert.notEqual(a, b);
});

test('the file-digest cache: unchanged files are not read again, across instances', async () => {
  const dir = makeContext('inc', { a: 'A'.repeat(1000), b: 'B'.repeat(2000), 'sub/c': 'C' });
  const file = fileHashCachePath(path.join(tmp, 'files'), dir);
  const c1 = new FileHashCache(file, TRUST_ALL);
  const h1 = await hash(dir, ['.'], c1);
  assert.equal(c1.stats.misses, 3, 'a, b and sub/c are read once');
  await c1.save();
  assert.ok(existsSync(file));
  const c2 = new FileHashCache(file, TRUST_ALL);
  const h2 = await hash(dir, ['.'], c2);
  assert.equal(h2, h1);
  assert.equal(c2.stats.misses, 0);
  assert.equal(c2.stats.bytesRead, 0);
  // A changed file (same size, new content): its stat changed, so it is read again.
  writeFileSync(path.join(dir, 'a'), 'Z'.repeat(1000));
  age(dir, ['a']);
  const c3 = new FileHashCache(file, TRUST_ALL);
  const h3 = await hash(dir, ['.'], c3);
  assert.notEqual(h3, h1);
  assert.equal(c3.stats.misses, 1);
  assert.equal(c3.stats.bytesRead, 1000);
});

test('a file changed just now is not remembered (same-tick rewrites would go unseen)', async () => {
  const dir = makeContext('racy', { f: 'one' });
  writeFileSync(path.join(dir, 'f'), 'two'); // fresh mtime/ctime
  const file = path.join(tmp, 'racy.json');
  const c1 = new FileHashCache(file, 60_000);
  await hash(dir, ['f'], c1);
  await c1.save();
  const c2 = new FileHashCache(file);
  await hash(dir, ['f'], c2);
  assert.equal(c2.stats.misses, 1);
});

test('a damaged cache file is ignored', async () => {
  const dir = makeContext('dmg', { f: 'x' });
  const file = path.join(tmp, 'dmg.json');
  writeFileSync(file, '{not json');
  const c = new FileHashCache(file);
  assert.equal(await hash(dir, ['f'], c), await hash(dir, ['f']));
});

test("a selection's digest is the one kiln has always made (lines hashed in batches): keys stay as they were", async () => {
  // A tree of ~42 KB of lines (batches end mid-way), astral and accented names, a link, a hard link.
  const dir = path.join(tmp, 'golden');
  for (let i = 0; i < 600; i++) {
    const d = path.join(dir, 'out', `pkg-${i % 7}`, i % 2 ? 'lib' : 'dist \u00e9');
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o755);
    const f = path.join(d, `file-${i}${i % 5 ? '' : '-\u{1F600}'}.js`);
    writeFileSync(f, `x${i}`.repeat(i % 9));
    chmodSync(f, i % 3 ? 0o644 : 0o755);
  }
  for (const d of ['out', ...Array.from({ length: 7 }, (_, k) => `out/pkg-${k}`)]) chmodSync(path.join(dir, d), 0o755);
  symlinkSync('../pkg-1/lib', path.join(dir, 'out/pkg-0/link'));
  linkSync(path.join(dir, 'out/pkg-2/lib/file-9.js'), path.join(dir, 'out/pkg-2/lib/hard.js'));
  // Made by kiln at db18401 (one hash update per line).
  assert.equal(
    await hashSelection(BuildContext.plain(dir), ['out']),
    'sha256:13b312ffb6fc5f0b75202a71208970cfefb63344eaf46467297a428df9f8a79f',
  );
});
