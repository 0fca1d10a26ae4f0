/**
 * kiln's addon's block deflater (native/src/deflate.c, deflate_walk.c): libdeflate's output, its
 * last block made non-final and closed by an empty stored block. Whatever the input and the level,
 * a block must inflate to its input, end on a byte boundary without ending the stream, and chain:
 * blocks deflated apart, concatenated and closed by a final block, are one deflate stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { nativeAddon } from '../../../src/util/index.js';

const deflateBlock = (b: Uint8Array, level: number) => nativeAddon().addon.deflateBlock(b, level);
/** An empty final block with fixed codes: what gzipEnd writes before the trailer. */
const FINAL = Buffer.from([0x03, 0x00]);

const text = (n: number, seed = 0) => {
  const lines: string[] = [];
  for (let i = seed, len = 0; len < n; i++) {
    const l = `${i} ${(i * 7919) % 1013} usr/share/doc/pkg${i % 89}/changelog${i % 7}.gz\n`;
    lines.push(l);
    len += l.length;
  }
  return Buffer.from(lines.join('')).subarray(0, n);
};
const noise = (n: number, seed = 0) => {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < n; i++) parts.push(createHash('sha256').update(`${seed} ${i}`).digest());
  return Buffer.concat(parts).subarray(0, n);
};

/** A block's output: the input back with a sync flush (not final: zlib would stop at a final block's end). */
function assertBlock(out: Buffer, input: Buffer, what: string): void {
  assert.deepEqual([...out.subarray(out.length - 4)], [0, 0, 0xff, 0xff], `${what}: ends with an empty stored block`);
  // A final block makes inflate report the stream's end; a non-final one leaves it waiting for more.
  const back = inflateRawSync(out, { finishFlush: constants.Z_SYNC_FLUSH });
  assert.ok(back.equals(input), `${what}: inflates to its input`);
  assert.throws(
    () => inflateRawSync(out),
    /unexpected end of file/,
    `${what}: the stream has not ended (no final block)`,
  );
}

test('deflateBlock: every level, text, noise, zeros, tiny and empty inputs: the input back, not final, byte-aligned', () => {
  const inputs: Record<string, Buffer> = {
    empty: Buffer.alloc(0),
    'one byte': Buffer.from('k'),
    'two bytes': Buffer.from([0, 255]),
    text: text(300_000),
    noise: noise(200_000),
    zeros: Buffer.alloc(524_288),
    mixed: Buffer.concat([text(100_000), noise(70_000), Buffer.alloc(90_000, 7), text(33_333, 5)]),
  };
  for (let level = 0; level <= 12; level++)
    for (const [name, input] of Object.entries(inputs)) {
      if (level >= 10 && input.length > 100_000) continue; // the slowest levels: small inputs suffice
      assertBlock(deflateBlock(input, level), input, `${name} at level ${level}`);
    }
});

test('deflateBlock: the same bytes every time, and blocks chain into one stream', () => {
  const a = text(524_288);
  const b = Buffer.concat([noise(100_000, 1), text(200_000, 9)]);
  const outA = deflateBlock(a, 2);
  assert.ok(deflateBlock(a, 2).equals(outA), 'deterministic');
  const stream = Buffer.concat([outA, deflateBlock(b, 2), deflateBlock(Buffer.from('z'), 2), FINAL]);
  assert.ok(inflateRawSync(stream).equals(Buffer.concat([a, b, Buffer.from('z')])), 'one deflate stream');
});

test('deflateBlock (property): any mix of runs, random and text: the input back, not final; chained pairs inflate', () => {
  const segment = fc.oneof(
    fc.record({ kind: fc.constant('byte' as const), n: fc.integer({ min: 0, max: 60_000 }), v: fc.nat(255) }),
    fc.record({ kind: fc.constant('noise' as const), n: fc.integer({ min: 0, max: 40_000 }), v: fc.nat(1000) }),
    fc.record({ kind: fc.constant('text' as const), n: fc.integer({ min: 0, max: 80_000 }), v: fc.nat(1000) }),
  );
  const make = (segs: { kind: 'byte' | 'noise' | 'text'; n: number; v: number }[]) =>
    Buffer.concat(
      segs.map((s) =>
        s.kind === 'byte' ? Buffer.alloc(s.n, s.v) : s.kind === 'noise' ? noise(s.n, s.v) : text(s.n, s.v),
      ),
    );
  fc.assert(
    fc.property(
      fc.array(segment, { maxLength: 8 }),
      fc.array(segment, { maxLength: 4 }),
      fc.integer({ min: 0, max: 9 }),
      (first, second, level) => {
        const a = make(first);
        const b = make(second);
        const outA = deflateBlock(a, level);
        assertBlock(outA, a, `level ${level}`);
        const stream = Buffer.concat([outA, deflateBlock(b, level), FINAL]);
        assert.ok(inflateRawSync(stream).equals(Buffer.concat([a, b])), 'two blocks chain');
      },
    ),
    { numRuns: 60 },
  );
});

test('deflateBlock: a bad argument throws', () => {
  assert.throws(() => deflateBlock(Buffer.from('x'), 13));
  assert.throws(() => deflateBlock(Buffer.from('x'), -1));
  assert.throws(() => (nativeAddon().addon.deflateBlock as (a: unknown, b: unknown) => Buffer)('x', 2));
});
