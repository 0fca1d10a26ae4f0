import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { computeEfficiency, evaluateCi, DIVE_CI_DEFAULTS, type LayerEntry } from '../../../src/analyze/efficiency.js';
import { stackLayers, largestDirectories } from '../../../src/analyze/filetree.js';

const f = (path: string, size: number, extra: Partial<LayerEntry> = {}): LayerEntry => ({
  path,
  type: 'file',
  size,
  mode: 0o644,
  uid: 0,
  gid: 0,
  ...extra,
});
const d = (path: string): LayerEntry => ({ path, type: 'directory', size: 0, mode: 0o755, uid: 0, gid: 0 });

describe("dive's efficiency", () => {
  test("dive's own test case (score 0.75, one inefficiency of 7000 bytes)", () => {
    // dive/filetree/efficiency_test.go: files only, no directory entries.
    const r = computeEfficiency([
      [f('etc/nginx/nginx.conf', 2000), f('etc/nginx/public', 3000)],
      [f('etc/nginx/nginx.conf', 5000), f('etc/athing', 10000)],
      [f('etc/.wh.nginx', 0)],
    ]);
    assert.equal(r.efficiency, 0.75);
    assert.deepEqual(r.inefficiencies, [
      { path: '/etc/nginx/nginx.conf', cumulativeSize: 7000, count: 2, layers: [0, 1] },
    ]);
  });

  test('scratch image with an empty file scores 1', () => {
    const r = computeEfficiency([[f('nothing', 0)], [], []]);
    assert.equal(r.efficiency, 1);
    assert.equal(r.inefficiencies.length, 0);
  });

  const layers = [
    [d('etc'), d('usr'), f('usr/a', 1000), f('usr/b', 2000), f('etc/c', 300)],
    [d('usr'), f('usr/a', 1500), d('tmp'), f('tmp/big', 5000)],
    [d('tmp'), f('tmp/.wh.big', 0), d('usr'), f('usr/.wh.b', 0)],
  ];

  test('overwritten and deleted files: exact numbers', () => {
    const r = computeEfficiency(layers);
    // per path: /usr/a 1000+1500 (min 1000), /usr/b 2000+0 (min 0), /tmp/big 5000+0 (min 0), /etc/c 300
    assert.equal(r.efficiency, 1300 / 9800);
    assert.equal(r.wastedBytes, 9500);
    assert.deepEqual(r.layerSizes, [3300, 6500, 0]);
    assert.equal(r.sizeBytes, 9800);
    assert.equal(r.userSizeBytes, 6500);
    assert.equal(r.wastedUserPercent, 9500 / 6500);
    assert.deepEqual(
      r.inefficiencies.map((i) => [i.path, i.cumulativeSize, i.count]),
      [
        ['/tmp/big', 5000, 2],
        ['/usr/a', 2500, 2],
        ['/usr/b', 2000, 2],
      ],
    );
  });

  test('a directory whiteout counts the deleted subtree once, as dive does', () => {
    const r = computeEfficiency([...layers, [f('.wh.usr', 0)]]);
    // "/usr" is referenced once (1500 bytes: what the stacked tree had under it) → not waste.
    assert.equal(r.wastedBytes, 9500);
    assert.equal(r.efficiency, (1300 + 1500) / (9800 + 1500));
  });

  test('opaque markers are ignored, like dive', () => {
    const a = computeEfficiency(layers);
    const b = computeEfficiency([layers[0]!, layers[1]!, [...layers[2]!, f('etc/.wh..wh..opq', 0)]]);
    assert.equal(b.efficiency, a.efficiency);
    assert.equal(b.wastedBytes, a.wastedBytes);
  });

  test('single layer: user wasted percent is NaN and passes the CI rule (as in Go)', () => {
    const r = computeEfficiency([[f('a', 10)]]);
    assert.ok(Number.isNaN(r.wastedUserPercent));
    assert.equal(evaluateCi(r, DIVE_CI_DEFAULTS).pass, true);
  });

  test('CI rules: the same comparisons as dive', () => {
    const r = computeEfficiency(layers);
    const ci = evaluateCi(r, { lowestEfficiency: 0.1, highestWastedBytes: 9500, highestUserWastedPercent: 1.5 });
    assert.equal(ci.pass, true);
    const fail = evaluateCi(r, { lowestEfficiency: 0.9, highestWastedBytes: 9499, highestUserWastedPercent: 1.4 });
    assert.equal(fail.pass, false);
    assert.deepEqual(
      fail.rules.map((x) => x.status),
      ['fail', 'fail', 'fail'],
    );
    assert.deepEqual(
      evaluateCi(r, {}).rules.map((x) => x.status),
      ['skip', 'skip', 'skip'],
    );
  });
});

describe('stacked filesystem and per-layer changes', () => {
  test('added, modified, removed with bytes', () => {
    const { tree, changes } = stackLayers(layers3());
    assert.deepEqual(changes[0]!.added, { count: 3, bytes: 3300 });
    assert.deepEqual(changes[1]!.added, { count: 1, bytes: 5000 });
    assert.deepEqual(changes[1]!.modified, { count: 1, bytes: 1500 });
    assert.deepEqual(changes[2]!.removed, { count: 2, bytes: 7000 });
    assert.deepEqual(changes[2]!.removedPaths, [
      { path: 'tmp/big', bytes: 5000 },
      { path: 'usr/b', bytes: 2000 },
    ]);
    assert.deepEqual(
      [...tree.walk()].map((n) => n.path()),
      ['etc', 'etc/c', 'tmp', 'usr', 'usr/a'],
    );
  });

  test('rewriting identical content is not a modification (hashes compared)', () => {
    const { changes } = stackLayers([
      [f('x', 5, { hash: 'h1' })],
      [f('x', 5, { hash: 'h1' })],
      [f('x', 5, { hash: 'h2' })],
    ]);
    assert.equal(changes[1]!.modified.count, 0);
    assert.equal(changes[2]!.modified.count, 1);
  });

  test('an opaque directory hides what was below, keeps what the layer adds', () => {
    const { tree, changes } = stackLayers([...layers3(), [d('usr'), f('usr/.wh..wh..opq', 0), f('usr/new', 10)]]);
    assert.deepEqual(changes[3]!.removed, { count: 1, bytes: 1500 });
    assert.deepEqual(changes[3]!.added, { count: 1, bytes: 10 });
    assert.deepEqual(
      [...tree.walk()].map((n) => n.path()),
      ['etc', 'etc/c', 'tmp', 'usr', 'usr/new'],
    );
  });

  test('largest directories', () => {
    const { tree } = stackLayers(layers3());
    const top = largestDirectories(tree, { minFraction: 0 });
    assert.equal(top.bytes, 1800);
    assert.deepEqual(
      top.children!.map((c) => [c.path, c.bytes]),
      [
        ['/usr', 1500],
        ['/etc', 300],
      ],
    );
  });
});

function layers3(): LayerEntry[][] {
  return [
    [d('etc'), d('usr'), f('usr/a', 1000), f('usr/b', 2000), f('etc/c', 300)],
    [d('usr'), f('usr/a', 1500), d('tmp'), f('tmp/big', 5000)],
    [d('tmp'), f('tmp/.wh.big', 0), d('usr'), f('usr/.wh.b', 0)],
  ];
}
