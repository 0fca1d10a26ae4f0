import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Slots } from '../../../src/util/slots.js';

test('Slots: never more than the limit at once, waiters served in arrival order, a failure frees its slot', async () => {
  const slots = new Slots(2);
  let now = 0;
  let peak = 0;
  const order: number[] = [];
  const job = (i: number, fail = false) =>
    slots.with(async () => {
      order.push(i);
      peak = Math.max(peak, ++now);
      await sleep(10);
      now--;
      if (fail) throw new Error(`job ${i}`);
      return i;
    });
  const results = await Promise.allSettled([job(0), job(1, true), job(2), job(3), job(4)]);
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
  );
  assert.equal(await job(5), 5, 'slots are all free again');
});
