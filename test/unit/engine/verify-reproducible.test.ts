import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copiedFrom, formatVerifyResult, guessCause } from '../../../src/engine/verify-reproducible.js';
import type { BuildResult } from '../../../src/engine/engine.js';

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

/** A timestamp-mode .pyc header (PEP 552): magic, flags 0, source mtime, source size; then code. */
function pyc(mtime: number, flags = 0, body = 'code'): Buffer {
  const h = Buffer.alloc(16);
  h.write('a70d0d0a', 0, 'hex');
  h.writeUInt32LE(flags, 4);
  h.writeUInt32LE(mtime, 8);
  h.writeUInt32LE(45, 12);
  return Buffer.concat([h, Buffer.from(body)]);
}

test('a .pyc differing only in its source mtime is named with both times and where ARG goes', () => {
  const cause = guessCause('content', 'venv/x/__pycache__/m.cpython-311.pyc', pyc(0x6b14b12f), pyc(0x6b14b14f))!;
  assert.match(cause, /timestamp mode: only bytes 8-11 differ/);
  assert.match(cause, /2026-12-06T00:49:51Z vs 2026-12-06T00:50:23Z/);
  assert.match(cause, /ARG SOURCE_DATE_EPOCH in the stage that runs them/);
  // Other bytes differing too, or a hash-based .pyc (flags 1 or 3): the generic explanation.
  const other = guessCause('content', 'm.pyc', pyc(1, 0, 'code'), pyc(2, 0, 'edoc'))!;
  assert.doesNotMatch(other, /timestamp mode/);
  assert.match(other, /^Python bytecode/);
  assert.doesNotMatch(guessCause('content', 'm.pyc', pyc(1, 3), pyc(2, 3))!, /timestamp mode/);
});

test('a layer made by COPY --from names the stage where the file was written', () => {
  assert.equal(copiedFrom('COPY --from=builder /venv /venv'), 'builder');
  assert.equal(copiedFrom('COPY --chown=1:1 --from="deps" /a /b'), 'deps');
  assert.equal(copiedFrom('COPY --from=localhost:5000/x:1 /a /b'), 'localhost:5000/x:1');
  assert.equal(copiedFrom('COPY ./ ./'), undefined);
  assert.equal(copiedFrom('RUN echo --from=x'), undefined);
  assert.equal(copiedFrom(undefined), undefined);
});

test('the report of a COPY --from layer says which stage to look in', () => {
  const built = { descriptor: { digest: 'sha256:m' }, imageId: 'sha256:i' } as unknown as BuildResult;
  const text = formatVerifyResult({
    reproducible: false,
    sourceDateEpoch: 0,
    parallel: false,
    builds: [built, built],
    ms: [1, 1],
    difference: {
      path: '/venv/m.pyc',
      kind: 'content',
      first: 'a',
      second: 'b',
      layerIndex: 2,
      layers: ['sha256:a', 'sha256:b'],
      step: { file: 'Dockerfile', line: 25, text: 'COPY --from=builder /venv /venv' },
    },
  });
  assert.match(text, /copied it \(--from=builder\): the step that wrote the file is in builder/);
});
