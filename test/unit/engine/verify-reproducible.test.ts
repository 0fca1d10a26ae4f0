import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guessCause } from '../../../src/engine/verify-reproducible.js';

const b = (s: string) => Buffer.from(s);

test('a date, a time or an epoch in the changed bytes: a timestamp written by a tool', () => {
  assert.match(
    guessCause('content', 'built', b('Sat Dec  5 02:00:24 UTC 2026\n'), b('Sat Dec  5 02:00:38 UTC 2026\n'))!,
    /^a timestamp written by a tool/,
  );
  assert.match(guessCause('content', 'v.json', b('{"at": 1796436010}'), b('{"at": 1796436099}'))!, /^a timestamp/);
});

test('the same lines in another order: an unsorted listing', () => {
  assert.match(guessCause('content', 'list', b('b\na\nc\n'), b('a\nc\nb\n'))!, /^an unsorted listing/);
});

test('.pyc and gzip headers get their own explanation', () => {
  assert.match(guessCause('content', 'x/__pycache__/m.cpython-311.pyc', b('a'), b('b'))!, /Python bytecode/);
  const gz = (t: number) => Buffer.from([0x1f, 0x8b, 8, 0, t, 0, 0, 0, 0, 3, 1, 2]);
  assert.match(guessCause('content', 'doc.gz', gz(1), gz(2))!, /gzip header time/);
});

test('a name only one build has, next to one of the same shape: a random name', () => {
  assert.match(
    guessCause('missing', 'data/tmp.Ab3dE9xQ', undefined, undefined, ['data/tmp.zZ81kLmP'])!,
    /^a random name: the other build has \/data\/tmp.zZ81kLmP/,
  );
  assert.equal(guessCause('missing', 'etc/x', undefined, undefined, []), undefined);
});

test('an mtime difference is a time a tool set (newer ones are clamped)', () => {
  assert.match(guessCause('mtime', 'f', undefined, undefined)!, /older than SOURCE_DATE_EPOCH/);
});

test('no guess rather than a wrong one', () => {
  assert.equal(guessCause('content', 'bin/app', b('\x7fELF\x01'), b('\x7fELF\x02')), undefined);
});

test('a zip (a wheel) whose member times differ is named as such, not as random data', () => {
  const zip = (t: number) =>
    Buffer.concat([
      Buffer.from('PK\x03\x04\x14\x00\x00\x00\x08\x00', 'latin1'),
      Buffer.from([t, 0x5d, 0x6d, 0x12]),
      Buffer.from('fastsum/_csum.cpython'),
    ]);
  assert.match(
    guessCause('content', 'tmp/wheels/fastsum-1.2.0-cp311-cp311-linux_x86_64.whl', zip(1), zip(2))!,
    /^a zip archive/,
  );
});

test('a changed hex id in text: a random id', () => {
  assert.match(
    guessCause('content', 'etc/machine-id', b('id=3f9a0c1e77d24b0a\n'), b('id=8b21e4f09c3a5d17\n'))!,
    /^a random id/,
  );
});
