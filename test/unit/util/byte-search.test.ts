import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MultiSearch } from '../../../src/util/byte-search.js';

const b = (s: string) => Buffer.from(s);

test('finds every pattern, overlapping ones and those that are suffixes of others', () => {
  const m = new MultiSearch([b('he'), b('she'), b('his'), b('hers')]);
  const found = m.findAll(b('ushers')).map((x) => `${x.pattern}@${x.end}`);
  assert.deepEqual(found.sort(), ['0@4', '1@4', '3@6'].sort());
});

test('a match split across chunks of any size is found at its stream offset', () => {
  const needle = randomBytes(40);
  const hay = Buffer.concat([randomBytes(1000), needle, randomBytes(777)]);
  for (const size of [1, 3, 7, 39, 40, 41, 512, 4096]) {
    const m = new MultiSearch([needle]);
    const ends: number[] = [];
    for (let i = 0; i < hay.length; i += size) m.feed(hay.subarray(i, i + size), (x) => ends.push(x.end));
    assert.deepEqual(ends, [1040], `chunk size ${size}`);
  }
});

test('reset() forgets a partial match', () => {
  const m = new MultiSearch([b('abcdef')]);
  const ends: number[] = [];
  m.feed(b('xxabc'), (x) => ends.push(x.end));
  m.reset();
  m.feed(b('def'), (x) => ends.push(x.end));
  assert.equal(ends.length, 0);
  m.feed(b('abcdef'), (x) => ends.push(x.end));
  assert.deepEqual(ends, [9]);
});

test('agrees with indexOf on random input (binary patterns, all 256 byte values)', () => {
  for (let round = 0; round < 20; round++) {
    const hay = randomBytes(5000);
    const pats = [hay.subarray(100, 110), hay.subarray(4990, 5000), randomBytes(9), hay.subarray(2500, 2503)];
    const m = new MultiSearch(pats);
    const got = m.findAll(hay);
    pats.forEach((p, i) => {
      const want: number[] = [];
      for (let at = hay.indexOf(p); at >= 0; at = hay.indexOf(p, at + 1)) want.push(at + p.length);
      assert.deepEqual(
        got.filter((x) => x.pattern === i).map((x) => x.end),
        want,
      );
    });
  }
});

test('an empty pattern is refused', () => {
  assert.throws(() => new MultiSearch([b('')]));
});
