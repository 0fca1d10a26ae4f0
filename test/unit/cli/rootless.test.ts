import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subIdRange } from '../../../src/cli/rootless.js';

test('subIdRange: the first range given to the user, by name or by uid; comments and bad lines skipped', () => {
  const text = '# comment\nalice:100000:65536\nbob:165536:65536\n1003:231072:65536\nalice:300000:10\ncarol:x:1\n';
  assert.deepEqual(subIdRange(text, 'alice', 1001), { start: 100000, count: 65536 });
  assert.deepEqual(subIdRange(text, 'bob', 1002), { start: 165536, count: 65536 });
  assert.deepEqual(subIdRange(text, 'dave', 1003), { start: 231072, count: 65536 }, 'a line may name the uid');
  assert.equal(subIdRange(text, 'carol', 1004), undefined, 'a malformed range is no range');
  assert.equal(subIdRange(text, 'erin', 1005), undefined);
  assert.equal(subIdRange('', 'alice', 1001), undefined);
});
