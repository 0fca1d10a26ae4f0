import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layerSkeleton, type EntrySpec } from '../../../src/layer/write.js';

const dir = (path: string, mtime = 100): EntrySpec => ({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime });
const file = (path: string): EntrySpec => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 100, size: 1 });

test('a tree copied to a directory: its root and the parents are the skeleton, the rest lies inside', () => {
  const k = layerSkeleton([
    dir('app'),
    dir('app/node_modules'),
    dir('app/node_modules/a'),
    file('app/node_modules/a/x.js'),
    file('app/node_modules/b.js'),
  ]);
  assert.equal(k?.root, 'app/node_modules');
  assert.deepEqual(
    k?.entries.map((e) => e.path),
    ['app', 'app/node_modules'],
  );
});

test('one file: the file is the root; entries with no common root have no skeleton', () => {
  assert.deepEqual(
    layerSkeleton([dir('app'), file('app/gen.py')])?.entries.map((e) => `${e.type} ${e.path}`),
    ['directory app', 'file app/gen.py'],
  );
  assert.equal(layerSkeleton([file('a/x'), file('b/y')]), undefined);
  assert.equal(layerSkeleton([file('x')])?.root, 'x');
});

test('times are clamped as in the tar; leading and trailing slashes do not matter', () => {
  const k = layerSkeleton([dir('/srv/', 2000), dir('srv/app/', 3000), file('/srv/app/f')], { sourceDateEpoch: 2500 });
  assert.deepEqual(
    k?.entries.map((e) => `${e.path} ${e.mtime}`),
    ['srv 2000', 'srv/app 2500', 'srv/app/f 100'],
  );
});
