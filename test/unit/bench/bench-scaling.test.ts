/**
 * scripts/bench-scaling.mjs: where kiln's bench store lies, and how long a many-file measurement
 * waits after the bench's own clean-up (ext4 without a journal skips inodes freed < 60 s ago).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../../helpers/paths.js';

interface BenchScaling {
  settleWait(removedAt: number | undefined, settleSecs: number, now?: number): number;
  kilnStoreBeside(dockerRoot: string | undefined, benchDir: string): string;
  buildkitRunSecs(progress: string): number | undefined;
  kilnRunSecs(record: unknown): number | undefined;
}
const load = async (): Promise<BenchScaling> =>
  (await import(pathToFileURL(path.join(repoRoot, 'scripts', 'bench-scaling.mjs')).href)) as BenchScaling;

describe('bench-scaling', () => {
  test('waits until settleSecs after the last removal, and no longer', async () => {
    const { settleWait } = await load();
    assert.equal(settleWait(undefined, 61, 5_000), 0, 'nothing removed yet: no wait');
    assert.equal(settleWait(1_000, 61, 1_000), 61_000);
    assert.equal(settleWait(1_000, 61, 31_000), 31_000);
    assert.equal(settleWait(1_000, 61, 62_000), 0);
    assert.equal(settleWait(1_000, 61, 100_000), 0, 'long past: no wait');
    assert.equal(settleWait(1_000, 0, 1_000), 0, '--settle 0: never waits');
  });

  test("puts kiln's store beside dockerd's data root, else in the bench dir", async () => {
    const { kilnStoreBeside } = await load();
    assert.equal(kilnStoreBeside('/tmp/docker-data', '/var/tmp/kiln-bench'), '/tmp/kiln-scaling-store');
    assert.equal(kilnStoreBeside('/var/lib/docker', '/x'), '/var/lib/kiln-scaling-store');
    assert.equal(kilnStoreBeside(undefined, '/var/tmp/kiln-bench'), '/var/tmp/kiln-bench/store');
  });

  test("reads a RUN step's time from BuildKit's plain progress (docker 20.10's output)", async () => {
    const { buildkitRunSecs } = await load();
    const progress = [
      '#4 [1/3] FROM localhost:5000/debian-slim:bookworm',
      '#4 DONE 0.0s',
      '#5 [2/3] RUN mkdir /files && cd /files && for d in $(seq 100); do mkdir $d; done',
      '#6 [internal] load build context',
      '#6 DONE 0.0s',
      '#5 DONE 7.1s',
      '#7 [3/3] COPY m /m',
      '#7 DONE 0.0s',
      '#8 exporting to image',
      '#8 exporting layers 3.4s done',
      '#8 DONE 3.4s',
    ].join('\n');
    assert.equal(buildkitRunSecs(progress), 7.1, 'the RUN step only, not the export nor the other steps');
    assert.equal(
      buildkitRunSecs(progress.replace('#5 DONE 7.1s', '#5 DONE 7.1s\n#9 [x 1/1] RUN true\n#9 DONE 0.4s')),
      7.5,
    );
    assert.equal(buildkitRunSecs('#7 [3/3] COPY m /m\n#7 DONE 0.0s'), undefined, 'no RUN: unknown, not 0');
    assert.equal(buildkitRunSecs('#5 [2/3] RUN sleep 9\n#5 ERROR: exit code 1'), undefined);
  });

  test("reads the RUN processes' time from kiln's profile record", async () => {
    const { kilnRunSecs } = await load();
    const byName = {
      'RUN process (oci: runtime start, process, runtime delete)': { count: 2, ms: 10581.9 },
      'RUN start (runtime up)': { count: 2, ms: 31.9 },
      'diff + tar + hash + blob stored': { count: 1, ms: 1807.7 },
    };
    assert.equal(kilnRunSecs({ byName }), 10.5819);
    assert.equal(kilnRunSecs({ byName: { 'RUN process (chroot: process)': { count: 1, ms: 500 } } }), 0.5);
    assert.equal(kilnRunSecs({ byName: { 'COPY step': { count: 1, ms: 5 } } }), undefined);
    assert.equal(kilnRunSecs(undefined), undefined);
  });
});
