import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, linkSync, lstatSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { LeanStats, tarChanges, type Change } from '../../../src/layer/write.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-lean-stats-'));
after(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(path.join(dir, 'd'));
writeFileSync(path.join(dir, 'd', 'f'), 'hello\n');
linkSync(path.join(dir, 'd', 'f'), path.join(dir, 'd', 'g'));
symlinkSync('f', path.join(dir, 'd', 'l'));
execFileSync('mkfifo', [path.join(dir, 'd', 'p')]);
const names = ['d', 'd/f', 'd/g', 'd/l', 'd/p'];

test('LeanStats answers the type questions as the fs.Stats it was made from', () => {
  for (const n of [...names, '/dev/null']) {
    const st = lstatSync(n.startsWith('/') ? n : path.join(dir, n));
    const lean = new LeanStats(st);
    for (const m of [
      'isFile',
      'isDirectory',
      'isSymbolicLink',
      'isCharacterDevice',
      'isBlockDevice',
      'isFIFO',
    ] as const)
      assert.equal(lean[m](), st[m](), `${n} ${m}`);
    for (const f of ['mode', 'uid', 'gid', 'size', 'mtimeMs', 'rdev', 'dev', 'ino', 'nlink'] as const)
      assert.equal(lean[f], st[f], `${n} ${f}`);
  }
});

test('a layer written from LeanStats is the layer written from fresh lstats, byte for byte', async () => {
  const read = async (changes: Change[]) => {
    const chunks: Buffer[] = [];
    for await (const c of tarChanges(dir, changes)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  const fresh = await read(names.map((n) => ({ kind: 'add', path: n })));
  const lean = await read(
    names.map((n) => ({ kind: 'add', path: n, stats: new LeanStats(lstatSync(path.join(dir, n))) })),
  );
  assert.ok(fresh.length > 1024);
  assert.ok(fresh.includes(Buffer.from('hello\n')));
  assert.deepEqual(lean, fresh);
});

test('packed into a Float64Array and back, a LeanStats keeps every field (a WalkListings keeps them so)', () => {
  const st = lstatSync(os.tmpdir());
  const lean = new LeanStats(st);
  const packed = new Float64Array(3 * LeanStats.PACKED);
  lean.pack(packed, 2);
  const back = LeanStats.unpack(packed, 2);
  for (const k of ['mode', 'uid', 'gid', 'size', 'mtimeMs', 'ctimeMs', 'rdev', 'dev', 'ino', 'nlink'] as const)
    assert.equal(back[k], st[k], k);
  assert.equal(back.isDirectory(), true);
});
