/** FileDigestTable: a RUN layer's recorded digests, packed, give back what was recorded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FileDigestTable } from '../../../src/layer/index.js';

const record = (i: number) => ({
  size: i * 7,
  mtimeMs: 1700000000123.456 + i,
  ctimeMs: 1700000000999.001 + i,
  ino: 2 ** 40 + i,
  digest: createHash('sha256').update(String(i)).digest('hex'),
});

test('each path gives back its record, past the table growing; a path not recorded gives undefined', () => {
  const t = new FileDigestTable();
  for (let i = 0; i < 3000; i++) t.set(`files/${i % 7}/f${i}`, record(i));
  assert.equal(t.size, 3000);
  for (const i of [0, 1, 255, 256, 2999]) assert.deepEqual(t.get(`files/${i % 7}/f${i}`), record(i));
  assert.equal(t.get('files/0/nothing'), undefined);
});

test('a path recorded again keeps its last record', () => {
  const t = new FileDigestTable();
  t.set('a', record(1));
  t.set('b', record(2));
  t.set('a', record(3));
  assert.equal(t.size, 2);
  assert.deepEqual(t.get('a'), record(3));
  assert.deepEqual(t.get('b'), record(2));
});
