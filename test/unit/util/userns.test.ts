import { test } from 'node:test';
import assert from 'node:assert/strict';
import { idMapped, overlayXattrPrefix, parseIdMap, userNamespace } from '../../../src/util/userns.js';

test('parseIdMap: /proc/self/uid_map lines (inside, outside, count), blank lines ignored', () => {
  assert.deepEqual(parseIdMap('         0       1001          1\n         1     100000      65536\n'), [
    { inside: 0, outside: 1001, count: 1 },
    { inside: 1, outside: 100000, count: 65536 },
  ]);
  assert.deepEqual(parseIdMap('0 0 4294967295\n\n'), [{ inside: 0, outside: 0, count: 4294967295 }]);
});

test('idMapped: an id is mapped when a range covers it (the end is exclusive)', () => {
  const m = parseIdMap('0 1001 1\n1 100000 65536\n');
  assert.ok(idMapped(m, 0));
  assert.ok(idMapped(m, 65532));
  assert.ok(idMapped(m, 65536));
  assert.ok(!idMapped(m, 65537));
  assert.ok(!idMapped(parseIdMap('0 1001 1\n'), 5), 'the single-id mode maps root alone');
});

test('on the host (the initial user namespace) overlay keeps its markers in trusted.* xattrs', () => {
  // The tests run as root on the host: the identity map.
  assert.equal(userNamespace().nested, false);
  assert.equal(overlayXattrPrefix(), 'trusted.overlay.');
});
