/** WalkListings: a tree walked once is walked again from what was listed, not from the disk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BuildContext, WalkListings } from '../../../src/context/index.js';
import { topOf } from '../../../src/sandbox/index.js';

function tree(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-listings-'));
  for (const f of ['a/b/one', 'a/b/two', 'a/three', 'z']) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), f);
  }
  return dir;
}

const rels = (ctx: BuildContext, rel: string) => [...ctx.walk(rel)].map((e) => e.rel);

test('a second walk of the same tree (another mount of it) comes from the listing, with paths under its own root', () => {
  const first = tree();
  const second = tree();
  try {
    const listings = new WalkListings();
    const walked = rels(BuildContext.plain(first, listings), 'a');
    assert.deepEqual(walked, ['a/b', 'a/b/one', 'a/b/two', 'a/three']);
    // The second root lacks a file now: the listing, not the disk, answers (the trees are immutable).
    rmSync(path.join(second, 'a/three'));
    const again = [...BuildContext.plain(second, listings).walk('a')];
    assert.deepEqual(
      again.map((e) => e.rel),
      walked,
    );
    assert.deepEqual(
      again.map((e) => e.abs),
      walked.map((r) => path.join(second, r)),
    );
    // Without the listing, the disk.
    assert.deepEqual(rels(BuildContext.plain(second), 'a'), ['a/b', 'a/b/one', 'a/b/two']);
  } finally {
    rmSync(first, { recursive: true, force: true });
    rmSync(second, { recursive: true, force: true });
  }
});

test('a walk stopped early lists nothing of the directory it left; a tree past the cap is not kept', () => {
  const dir = tree();
  try {
    const listings = new WalkListings();
    for (const e of BuildContext.plain(dir, listings).walk('a')) if (e.rel === 'a/b/one') break;
    assert.equal(listings.get('a'), undefined);
    assert.equal(listings.get('a/b'), undefined);
    const small = new WalkListings(2);
    rels(BuildContext.plain(dir, small), '');
    assert.equal(small.get('a/b')?.length, 2);
    assert.equal(small.get('a'), undefined, 'past the cap: walked from the disk again');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('topOf: the first component, leading slashes dropped', () => {
  assert.equal(topOf('/usr/bin/x'), 'usr');
  assert.equal(topOf('app/node_modules'), 'app');
  assert.equal(topOf('///etc'), 'etc');
  assert.equal(topOf('file'), 'file');
  assert.equal(topOf('/'), '');
  assert.equal(topOf(''), '');
});
