import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chainId, chainIds, type Digest } from '../../../src/util/index.js';

const digestOf = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** The OCI definition, computed afresh: ChainID(L0) = DiffID(L0), ChainID(L0|…|Ln) = sha256(ChainID(L0|…|Ln-1) + " " + DiffID(Ln)). */
function reference(diffIds: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : digestOf(`${out.at(-1)} ${d}`));
  return out;
}

test('chain ids are the OCI ones, for stacks that share a bottom and asked again (remembered steps)', () => {
  const ids = Array.from({ length: 6 }, (_, i) => digestOf(`layer ${i}`));
  assert.deepEqual(chainIds([]), []);
  assert.equal(chainId([]), '');
  assert.deepEqual(chainIds(ids.slice(0, 1)), [ids[0]]);
  for (let n = 1; n <= ids.length; n++) {
    assert.deepEqual(chainIds(ids.slice(0, n)), reference(ids.slice(0, n)));
    assert.deepEqual(chainIds(ids.slice(0, n)), reference(ids.slice(0, n)), 'the same when asked again');
  }
  // Another stack over the same bottom layers, and the same layers in another order: their own ids.
  const other = [...ids.slice(0, 3), digestOf('other top')];
  assert.deepEqual(chainIds(other), reference(other));
  const reversed = [...ids].reverse();
  assert.deepEqual(chainIds(reversed), reference(reversed));
  assert.equal(chainId(ids), reference(ids).at(-1));
});

test('chain ids stay right past the remembered steps bound (the memory is emptied, not trusted)', () => {
  const base = digestOf('base');
  for (let i = 0; i < 5000; i++) {
    const stack = [base, digestOf(`top ${i}`), digestOf(`above ${i}`)];
    const got = chainIds(stack);
    if (i % 997 === 0) assert.deepEqual(got, reference(stack));
  }
  const first = [base, digestOf('top 0'), digestOf('above 0')];
  assert.deepEqual(chainIds(first), reference(first));
});
