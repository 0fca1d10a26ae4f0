import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { compareChanges, comparePaths, tarChanges, tarChangesInOrder, type Change } from '../../../src/layer/write.js';
import { readTar } from '../../../src/layer/tarstream.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-changes-order-'));
after(() => rmSync(dir, { recursive: true, force: true }));
for (const d of ['a', 'a/b', 'a.b', 'é']) mkdirSync(path.join(dir, d), { recursive: true });
for (const f of ['a/b/f', 'a/z', 'a.b/f', 'é/f', 'Z']) writeFileSync(path.join(dir, f), f);

const bytes = async (r: NodeJS.ReadableStream) => {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

// The layer's order: byte order of each name (Z before a, a/… before a.b, é after z), parents before
// children, a directory's entry before its opaque marker, a whiteout where its name sorts.
const ordered: Change[] = [
  { kind: 'add', path: 'Z' },
  { kind: 'add', path: 'a' },
  { kind: 'opaque', path: 'a' },
  { kind: 'add', path: 'a/b' },
  { kind: 'add', path: 'a/b/f' },
  { kind: 'delete', path: 'a/c' },
  { kind: 'add', path: 'a/z' },
  { kind: 'add', path: 'a.b' },
  { kind: 'add', path: 'a.b/f' },
  { kind: 'delete', path: 'x' },
  { kind: 'add', path: 'é' },
  { kind: 'add', path: 'é/f' },
];

test('compareChanges is the order tarChanges sorts into; tarChangesInOrder streams that order to the same bytes', async () => {
  const shuffled = [...ordered].reverse();
  assert.deepEqual([...shuffled].sort(compareChanges), ordered);
  // A one-shot iterator, read as the tar is written.
  function* once(): Generator<Change> {
    yield* ordered;
  }
  const streamed = await bytes(tarChangesInOrder(dir, once()));
  assert.deepEqual(streamed, await bytes(tarChanges(dir, shuffled)));
  const names: string[] = [];
  for await (const e of readTar(Readable.from([streamed]))) {
    names.push(e.header.name);
    for await (const _ of e.body) void _;
  }
  assert.deepEqual(names.slice(0, 4), ['Z', 'a', 'a/.wh..wh..opq', 'a/b']);
});

test('tarChangesInOrder refuses a change out of the layer order (the layer would not be reproducible)', async () => {
  const swapped = [ordered[1]!, ordered[0]!];
  await assert.rejects(bytes(tarChangesInOrder(dir, swapped)), /out of order: add Z after a/);
});

test('comparePaths: the order of its components as UTF-8 bytes, parents first, for any pair of paths (astral characters too)', () => {
  // The definition: component by component, each compared as bytes; a path that is a prefix of the other first.
  const reference = (a: string, b: string) => {
    const as = a.split('/');
    const bs = b.split('/');
    for (let i = 0; i < Math.min(as.length, bs.length); i++)
      if (as[i] !== bs[i]) return Buffer.compare(Buffer.from(as[i]!), Buffer.from(bs[i]!));
    return as.length - bs.length;
  };
  const parts = ['a', 'b', '-', '.', ' ', 'Z', 'é', '\uFFFD', '\uE000', '\u{1F600}', '\u{10FFFF}', 'ab', 'a.b'];
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const path = () =>
    Array.from({ length: 1 + rnd(3) }, () =>
      Array.from({ length: 1 + rnd(3) }, () => parts[rnd(parts.length)]).join(''),
    ).join('/');
  for (let k = 0; k < 20_000; k++) {
    const a = path();
    const b = rnd(4) === 0 ? `${a}/${path()}` : path();
    assert.equal(
      Math.sign(comparePaths(a, b)),
      Math.sign(reference(a, b)),
      `${JSON.stringify(a)} vs ${JSON.stringify(b)}`,
    );
    assert.equal(
      Math.sign(comparePaths(b, a)),
      Math.sign(reference(b, a)),
      `${JSON.stringify(b)} vs ${JSON.stringify(a)}`,
    );
  }
  assert.equal(comparePaths('a/b', 'a/b'), 0);
});
