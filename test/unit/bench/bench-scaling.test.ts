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
});
