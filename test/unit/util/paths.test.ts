import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { joinPath, normalizePath } from '../../../src/util/paths.js';

// joinPath must be path.join exactly: every combination of awkward parts (empty, `.`, `..`, `/`,
// doubled and trailing slashes, dots inside names) gives what path.join gives.
test('joinPath is path.join, for every combination of awkward parts', () => {
  const pieces = [
    '',
    '.',
    '..',
    '...',
    '/',
    '//',
    'a',
    '/a',
    'a/',
    './a',
    '../a',
    'a/./b',
    'a/../b',
    'a//b',
    '.a',
    'a.',
    'b..c',
    '/var/tmp/store',
    'sha256',
  ];
  let n = 0;
  let fast = 0;
  for (const a of pieces)
    for (const b of pieces) {
      assert.equal(joinPath(a), path.join(a), JSON.stringify([a]));
      assert.equal(joinPath(a, b), path.join(a, b), JSON.stringify([a, b]));
      for (const c of pieces) {
        assert.equal(joinPath(a, b, c), path.join(a, b, c), JSON.stringify([a, b, c]));
        if (joinPath(a, b, c) === `${a}/${b}/${c}`) fast++;
        n++;
      }
    }
  assert.equal(joinPath(), path.join());
  // The common case (a clean root and clean names) is joined without path.join.
  assert.ok(fast > 100 && fast < n, `${fast} of ${n} joined as they are`);
  assert.equal(joinPath('/var/lib/kiln', 'blobs', 'sha256', 'ab'), '/var/lib/kiln/blobs/sha256/ab');
});

test('normalizePath is path.normalize, for every combination of awkward parts', () => {
  const pieces = ['', '.', '..', '...', '/', 'a', '.a', 'a.', 'b..c', 'sha256'];
  let fast = 0;
  let n = 0;
  for (const a of pieces)
    for (const b of pieces)
      for (const c of pieces)
        for (const sep of ['/', '//', '']) {
          const p = `${a}${sep}${b}/${c}`;
          assert.equal(normalizePath(p), path.normalize(p), JSON.stringify(p));
          if (normalizePath(p) === p) fast++;
          n++;
        }
  assert.ok(fast > 100 && fast < n, `${fast} of ${n} already normal`);
  assert.equal(normalizePath('usr/lib/python3/dist-packages/../../../bin/pip'), 'usr/bin/pip');
});
