import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeIsolation } from '../../../src/sandbox/isolation.js';
import { overlayRefusal } from '../../../src/sandbox/rootfs.js';

test('the sandbox line says why overlay was refused when the native snapshotter stands in', () => {
  const why = 'permission denied';
  assert.match(
    describeIsolation('oci', 'native', why).description,
    /, native snapshotter \(copied root; overlay refused: permission denied\)$/,
  );
  assert.match(
    describeIsolation('bare', 'native', why).description,
    /^chroot only: .*native snapshotter \(copied root; overlay refused: permission denied\)$/,
  );
  // Chosen, not forced by a refusal: no reason.
  assert.match(describeIsolation('oci', 'native').description, /native snapshotter \(copied root\)$/);
  assert.match(describeIsolation('oci', 'overlay').description, /overlay snapshots$/);
});

test('the overlay probe gives the reason it failed', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-probe-'));
  try {
    // A scratch "directory" that is a file: nothing can be made there.
    writeFileSync(path.join(dir, 'file'), '');
    const why = await overlayRefusal(path.join(dir, 'file'));
    assert.match(why ?? '', /ENOTDIR|not a directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mount's complaint is its first line, without the target and the dmesg pointer", async () => {
  const { mountError } = await import('../../../src/sandbox/rootfs.js');
  const stderr =
    'mount: /s/run/1-overlay-probe/merged: permission denied.\n       dmesg(1) may have more information after failed mount system call.\n';
  assert.equal(mountError(stderr, '/s/run/1-overlay-probe/merged'), 'permission denied');
});

test('the sandbox line names fuse-overlayfs, and both refusals when the native snapshotter stands in', () => {
  assert.match(
    describeIsolation('oci', 'fuse-overlayfs', 'permission denied').description,
    /, fuse-overlayfs snapshots \(overlay in user space; kernel overlay refused: permission denied\)$/,
  );
  assert.match(
    describeIsolation('oci', 'fuse-overlayfs').description,
    /, fuse-overlayfs snapshots \(overlay in user space\)$/,
  );
  assert.match(
    describeIsolation('oci', 'native', 'permission denied', '/dev/fuse is absent').description,
    /native snapshotter \(copied root; overlay refused: permission denied; fuse-overlayfs refused: \/dev\/fuse is absent\)$/,
  );
});
