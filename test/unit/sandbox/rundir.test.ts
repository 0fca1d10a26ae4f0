import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanupStaleRuns, runRoot } from '../../../src/sandbox/rundir.js';

// A stage's run starts with a cleanup of dead kilns' run dirs while another stage may be probing
// overlayfs in `<pid>-overlay-probe` (no owner file): the probe's dir must survive it, or its mount
// fails with "mount point does not exist" (seen in build --verify-reproducible's second build).
test("this process's probe dirs survive its own stale-run cleanup; a dead process's do not", async () => {
  const store = mkdtempSync(path.join(os.tmpdir(), 'kiln-rundir-'));
  try {
    const root = runRoot(store);
    const mine = path.join(root, `${process.pid}-overlay-probe`, 'merged');
    // A pid no process has (above the kernel's pid_max default of 4194304).
    const dead = path.join(root, '99999999-overlay-probe', 'merged');
    for (const d of [mine, dead]) mkdirSync(d, { recursive: true });
    assert.equal(await cleanupStaleRuns(store), 1);
    assert.ok(existsSync(mine), 'the probe of this process is left alone');
    assert.ok(!existsSync(path.dirname(dead)), "a dead process's is removed");
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
});
