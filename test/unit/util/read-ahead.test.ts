/**
 * The read-ahead switch of the tar writer and the context hash (util/read-ahead.ts) on a scripted addon: off while reads
 * find their files cached, on once they wait on the disk, off again once the thread finds every
 * file cached; the window handed is what the caller gives (a batch), nothing when off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHECK_EVERY, COLD_TO_START, ReadAhead, WARM_TO_STOP, type ReadAheadFs } from '../../../src/util/read-ahead.js';

/** An addon whose counts the test sets; it records what it was handed. */
class ScriptedFs implements ReadAheadFs {
  cold = 0;
  probed = 0;
  probedCold = 0;
  handed: string[][] = [];
  statsCalls = 0;
  coldCalls = 0;
  coldReads(): number {
    this.coldCalls++;
    return this.cold;
  }
  prefetch(paths: string[]): number {
    this.handed.push([...paths]);
    return paths.length;
  }
  prefetchStats(): { probed: number; cold: number } {
    this.statsCalls++;
    return { probed: this.probed, cold: this.probedCold };
  }
}

const paths = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `/root/f${from + i}`);

test('cached files: never on, nothing handed, the addon asked once per CHECK_EVERY reads', () => {
  const fs = new ScriptedFs();
  const ra = new ReadAhead(fs);
  for (let i = 0; i < 10 * CHECK_EVERY; i++) {
    assert.equal(ra.read(), false);
    ra.ahead(paths(4, i));
  }
  assert.equal(ra.active, false);
  assert.deepEqual(fs.handed, []);
  assert.equal(fs.statsCalls, 0);
  assert.equal(fs.coldCalls, 1 + 10); // the constructor's, then one per CHECK_EVERY reads
});

test('reads that wait on the disk turn it on at the next check; fewer than COLD_TO_START do not', () => {
  const fs = new ScriptedFs();
  fs.cold = 5; // cold reads of the process before this tar: not this tar's
  const ra = new ReadAhead(fs);
  for (let i = 0; i < CHECK_EVERY; i++) {
    if (i === 3) fs.cold += COLD_TO_START - 1;
    assert.equal(ra.read(), false);
  }
  assert.equal(ra.active, false);
  for (let i = 0; i < CHECK_EVERY - 1; i++) {
    if (i === 2) fs.cold += COLD_TO_START;
    assert.equal(ra.read(), false, 'only every CHECK_EVERY reads');
  }
  assert.equal(ra.read(), true);
  assert.equal(ra.active, true);
  assert.equal(ra.read(), false, 'turned on once');
  ra.ahead(paths(3));
  ra.ahead([]);
  assert.deepEqual(fs.handed, [paths(3)]);
});

test('on: off again once the thread has looked at WARM_TO_STOP files since it last found one not cached', () => {
  const fs = new ScriptedFs();
  const ra = new ReadAhead(fs);
  fs.cold = COLD_TO_START;
  for (let i = 0; i < CHECK_EVERY; i++) ra.read();
  assert.equal(ra.active, true);
  // The thread finds cold files: stays on, whatever it looked at.
  fs.probed += WARM_TO_STOP * 2;
  fs.probedCold += 1;
  ra.ahead(paths(2));
  assert.equal(ra.active, true);
  // Then only cached ones, fewer than WARM_TO_STOP: still on.
  fs.probed += WARM_TO_STOP - 1;
  ra.ahead(paths(2, 2));
  assert.equal(ra.active, true);
  fs.probed += 1;
  ra.ahead(paths(2, 4));
  assert.equal(ra.active, false);
  assert.deepEqual(fs.handed, [paths(2), paths(2, 2)], 'nothing handed once off');
  // Off: the writer's reads turn it on again (counted from when it went off).
  for (let i = 0; i < CHECK_EVERY; i++) assert.equal(ra.read(), false);
  fs.cold += COLD_TO_START;
  for (let i = 0; i < CHECK_EVERY - 1; i++) ra.read();
  assert.equal(ra.read(), true);
  ra.ahead(paths(1, 9));
  assert.deepEqual(fs.handed.at(-1), paths(1, 9));
});
