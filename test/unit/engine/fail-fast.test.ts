import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settleAll, withStop } from '../../../src/engine/fail-fast.js';

/** A part that ends when `signal` aborts (with an "interrupted" error) or after `ms` with `value`. */
function part<T>(signal: AbortSignal, ms: number, value: T, ended: string[], name: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ended.push(name);
      resolve(value);
    }, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      ended.push(`${name} stopped`);
      reject(new Error(`${name} interrupted`));
    });
  });
}

test('settleAll: the results in order when every part succeeds', async () => {
  const stop = new AbortController();
  const ended: string[] = [];
  const r = await settleAll([part(stop.signal, 20, 'a', ended, 'a'), part(stop.signal, 5, 'b', ended, 'b')], stop);
  assert.deepEqual(r, ['a', 'b']);
  assert.equal(stop.signal.aborted, false);
});

test('settleAll: the first failure stops the others, waits for them, and is the error thrown', async () => {
  const stop = new AbortController();
  const ended: string[] = [];
  const failing = new Promise<string>((_, reject) => setTimeout(() => reject(new Error('stage b failed')), 5));
  const started = Date.now();
  await assert.rejects(
    settleAll([part(stop.signal, 10_000, 'a', ended, 'a'), failing, part(stop.signal, 10_000, 'c', ended, 'c')], stop),
    /stage b failed/,
  );
  assert.ok(Date.now() - started < 5_000);
  assert.equal(stop.signal.aborted, true);
  // Both others were stopped before settleAll returned.
  assert.deepEqual(ended.sort(), ['a stopped', 'c stopped']);
});

test('withStop: aborted by either the given signal or the stop', () => {
  const user = new AbortController();
  const stop = new AbortController();
  const s = withStop(user.signal, stop);
  assert.equal(s.aborted, false);
  user.abort();
  assert.equal(s.aborted, true);
  const alone = new AbortController();
  assert.equal(withStop(undefined, alone), alone.signal);
});
