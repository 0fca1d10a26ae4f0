/** Terminal text helpers: widths, truncation, cleaning step output, line splitting, sizes, times. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  displayWidth,
  firstLine,
  formatDuration,
  formatSize,
  LineSplitter,
  padEnd,
  sanitizeLine,
  truncate,
} from '../../../src/ui/text.js';

test('display width: wide CJK and emoji take two columns, combining marks none', () => {
  assert.equal(displayWidth('abc'), 3);
  assert.equal(displayWidth('日本語'), 6);
  assert.equal(displayWidth('e\u0301'), 1);
  assert.equal(displayWidth('🚀x'), 3);
  assert.equal(displayWidth(''), 0);
});

test('truncate keeps within the width, marks the cut, never splits a wide character', () => {
  assert.equal(truncate('hello world', 20), 'hello world');
  assert.equal(truncate('hello world', 6), 'hello…');
  assert.equal(truncate('日本語テキスト', 6), '日本…');
  assert.ok(displayWidth(truncate('日本語テキスト', 6)) <= 6);
  assert.equal(truncate('abc', 0), '');
  assert.equal(padEnd('日本', 6), '日本  ');
});

test('sanitizeLine removes CSI, OSC and control characters and expands tabs', () => {
  assert.equal(sanitizeLine('\x1b[1;31mred\x1b[0m'), 'red');
  assert.equal(sanitizeLine('\x1b]0;window title\x07text'), 'text');
  assert.equal(sanitizeLine('a\x00b\x07c\x7f'), 'abc');
  assert.equal(sanitizeLine('a\tb'), 'a       b');
  assert.equal(sanitizeLine('\x1b[2K\x1b[1Gdone'), 'done');
});

test('LineSplitter: lines across chunks, carriage-return progress bars, UTF-8 cut between chunks', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.from('one\ntw')), ['one']);
  assert.equal(s.partial(), 'tw');
  assert.deepEqual(s.push(Buffer.from('o\r\nthree 10%\rthree 90%')), ['two']);
  assert.equal(s.partial(), 'three 90%');
  const euro = Buffer.from('€');
  assert.deepEqual(s.push(Buffer.concat([Buffer.from('\r'), euro.subarray(0, 1)])), []);
  assert.deepEqual(s.push(Buffer.concat([euro.subarray(1), Buffer.from('\n')])), ['€']);
  assert.deepEqual(s.push(Buffer.from([0xff, 0x41])), []);
  assert.equal(s.end(), '\ufffdA');
  assert.equal(s.end(), '');
});

test('sizes and durations as docker and BuildKit print them', () => {
  assert.equal(formatSize(999), '999B');
  assert.equal(formatSize(1000), '1.00kB');
  assert.equal(formatSize(45_200_000), '45.2MB');
  assert.equal(formatSize(3_500_000_000), '3.50GB');
  assert.equal(formatDuration(0), '0.0s');
  assert.equal(formatDuration(1234), '1.2s');
  assert.equal(formatDuration(99_900), '99.9s');
  assert.equal(formatDuration(125_000), '2m05s');
  assert.equal(firstLine('RUN a \\\n  b'), 'RUN a …');
  assert.equal(firstLine('RUN a'), 'RUN a');
});
