import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { compareChanges, tarChanges, tarChangesInOrder, type Change } from '../../../src/layer/write.js';
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
