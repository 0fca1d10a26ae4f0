/** WalkListings: a tree walked once is walked again from what was listed, not from the disk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BuildContext, WalkListings, type ContextEntry } from '../../../src/context/index.js';
import { topOf } from '../../../src/sandbox/index.js';
import { LeanStats } from '../../../src/util/lean-stats.js';

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

test("a listing handed on (a RUN's differ's) serves the walk as its own would; within the cap, and never over one a walk made", () => {
  const dir = tree();
  try {
    const listed = (rel: string) => {
      const names = readdirSync(path.join(dir, rel)).sort();
      const stats = new Float64Array(names.length * LeanStats.PACKED);
      names.forEach((n, i) => new LeanStats(lstatSync(path.join(dir, rel, n))).pack(stats, i));
      return { names, stats };
    };
    const fields = (e: ContextEntry) => [e.rel, { ...new LeanStats(e.stat) }];
    const fresh = [...BuildContext.plain(dir).walk('a')].map(fields);
    const listings = new WalkListings();
    listings.adopt('a', listed('a'));
    listings.adopt('a/b', listed('a/b'));
    // The disk changes under it: the walk reads the listings, and finds what the walk found before.
    rmSync(path.join(dir, 'a/three'));
    rmSync(path.join(dir, 'a/b/two'));
    const walked = [...BuildContext.plain(dir, listings).walk('a')].map(fields);
    assert.deepEqual(walked, fresh);
    const small = new WalkListings(2);
    small.adopt('a/b', { names: ['x', 'y', 'z'], stats: new Float64Array(3 * LeanStats.PACKED) });
    assert.equal(small.get('a/b'), undefined, 'past the cap');
    const kept = new WalkListings();
    kept.adopt('a', listed('a'));
    kept.adopt('a', { names: [], stats: new Float64Array(0) });
    assert.deepEqual(
      kept.get('a')?.map(([n]) => n),
      ['b'],
      'the first listing stays',
    );
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
