/** BackgroundJobs: jobs run while the caller goes on, in the order their names ask; the build settles them all. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackgroundJobs } from '../../../src/engine/background.js';
import { KilnError, type Digest } from '../../../src/util/index.js';

const A = 'sha256:aa' as Digest;
const B = 'sha256:bb' as Digest;
const C = 'sha256:cc' as Digest;

test('start returns before the job ends; settle waits for it', async () => {
  const jobs = new BackgroundJobs();
  let done = false;
  jobs.start(A, async () => {
    await sleep(30);
    done = true;
  });
  assert.equal(done, false);
  await jobs.settle();
  assert.equal(done, true);
});

test('a job that reads another name waits for its writer; two writers of one name run one after the other', async () => {
  const jobs = new BackgroundJobs();
  const log: string[] = [];
  const job = (name: string, ms: number) => async () => {
    log.push(`${name} start`);
    await sleep(ms);
    log.push(`${name} end`);
  };
  jobs.start(A, job('A1', 40));
  jobs.start(B, job('B', 5), [A]); // reads A's record
  jobs.start(A, job('A2', 5)); // writes A again
  jobs.start(C, job('C', 5)); // independent: runs at once
  await jobs.settle();
  assert.ok(log.indexOf('C start') < log.indexOf('A1 end'), log.join(', '));
  assert.ok(log.indexOf('B start') > log.indexOf('A1 end'), log.join(', '));
  assert.ok(log.indexOf('A2 start') > log.indexOf('A1 end'), log.join(', '));
});

test('a failed job fails settle with its own error, after every other job ended; its readers still run', async () => {
  const jobs = new BackgroundJobs();
  const err = new KilnError('STORE', 'cannot write the provenance record: disk full');
  let laterEnded = false;
  let readerRan = false;
  jobs.start(A, async () => {
    await sleep(5);
    throw err;
  });
  jobs.start(B, async () => void (readerRan = true), [A]);
  jobs.start(C, async () => {
    await sleep(40);
    laterEnded = true;
  });
  await assert.rejects(jobs.settle(), (e) => e === err);
  assert.equal(laterEnded, true);
  assert.equal(readerRan, true);
});

test('drain waits like settle but never throws; jobs started while settling are waited for too', async () => {
  const jobs = new BackgroundJobs();
  let second = false;
  jobs.start(A, async () => {
    await sleep(10);
    jobs.start(B, async () => {
      await sleep(20);
      second = true;
    });
    throw new Error('boom');
  });
  await jobs.drain();
  assert.equal(second, true);
  await assert.rejects(jobs.settle(), /boom/);
});

test('tracked work (a run dir torn down): settle waits for it; its failure fails settle but drops no name', async () => {
  const jobs = new BackgroundJobs();
  let done = false;
  jobs.track(sleep(30).then(() => void (done = true)));
  assert.equal(done, false);
  await jobs.settle();
  assert.equal(done, true);
  const err = new KilnError('SANDBOX', 'cannot remove the run dir: busy');
  let laterEnded = false;
  jobs.track(sleep(5).then(() => Promise.reject(err)));
  jobs.start(A, async () => {
    await sleep(40);
    laterEnded = true;
  });
  await assert.rejects(jobs.settle(), (e) => e === err);
  assert.equal(laterEnded, true);
  assert.equal(jobs.failed.size, 0);
});
