import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseSnapshotter, needsFuseProbe } from '../../../src/sandbox/snapshotter.js';
import { fusePrerequisiteRefusal } from '../../../src/sandbox/fuse-overlay.js';
import { isKilnError } from '../../../src/util/errors.js';

const refused = 'permission denied';
const noFuse = '/dev/fuse is absent (in a container: start it with --device /dev/fuse; on a host: modprobe fuse)';

test('automatic choice: kernel overlay, else fuse-overlayfs, else native, each refusal kept', () => {
  assert.deepEqual(chooseSnapshotter({ hostRoot: false }), { kind: 'overlay' });
  assert.deepEqual(chooseSnapshotter({ hostRoot: false, overlayRefused: refused }), {
    kind: 'fuse-overlayfs',
    overlayRefused: refused,
  });
  assert.deepEqual(chooseSnapshotter({ hostRoot: false, overlayRefused: refused, fuseRefused: noFuse }), {
    kind: 'native',
    overlayRefused: refused,
    fuseRefused: noFuse,
  });
  // The host-root backend finds its changes in / itself: native, whatever works.
  assert.deepEqual(chooseSnapshotter({ hostRoot: true }), { kind: 'native' });
  assert.deepEqual(chooseSnapshotter({ hostRoot: true, overlayRefused: refused }), {
    kind: 'native',
    overlayRefused: refused,
  });
});

test('fuse-overlayfs is probed only where it could be chosen', () => {
  assert.equal(needsFuseProbe({ hostRoot: false }), false, 'kernel overlay works');
  assert.equal(needsFuseProbe({ hostRoot: false, overlayRefused: refused }), true);
  assert.equal(needsFuseProbe({ hostRoot: false, requested: 'fuse-overlayfs' }), true);
  assert.equal(needsFuseProbe({ hostRoot: false, requested: 'native', overlayRefused: refused }), false);
  assert.equal(needsFuseProbe({ hostRoot: true, overlayRefused: refused }), false);
});

test('asked for: used when it works (no refusal shown); a user error with the reason when it does not', () => {
  assert.deepEqual(chooseSnapshotter({ hostRoot: false, requested: 'fuse-overlayfs', overlayRefused: refused }), {
    kind: 'fuse-overlayfs',
  });
  assert.deepEqual(chooseSnapshotter({ hostRoot: false, requested: 'native', overlayRefused: refused }), {
    kind: 'native',
  });
  const fails = (f: Parameters<typeof chooseSnapshotter>[0], code: string, message: RegExp) =>
    assert.throws(
      () => chooseSnapshotter(f),
      (e) => isKilnError(e) && e.code === code && message.test(e.message),
    );
  fails(
    { hostRoot: false, requested: 'overlay', overlayRefused: refused },
    'SANDBOX',
    /overlay snapshotter cannot be used here: overlayfs cannot be mounted \(permission denied\)/,
  );
  fails(
    { hostRoot: false, requested: 'fuse-overlayfs', fuseRefused: noFuse },
    'SANDBOX',
    /^the fuse-overlayfs snapshotter cannot be used here: \/dev\/fuse is absent/,
  );
  fails({ hostRoot: true, requested: 'fuse-overlayfs' }, 'USAGE', /drop --snapshotter fuse-overlayfs/);
  fails({ hostRoot: true, requested: 'overlay' }, 'USAGE', /drop --snapshotter overlay/);
});

test('what stands in the way of fuse-overlayfs, said with what to do', () => {
  assert.match(
    fusePrerequisiteRefusal(undefined, { accessible: true, mode: 0o20666 }, 0) ?? '',
    /apt-get install fuse-overlayfs/,
  );
  assert.match(
    fusePrerequisiteRefusal('/usr/bin/fuse-overlayfs', { accessible: false }, 0) ?? '',
    /--device \/dev\/fuse/,
  );
  assert.equal(
    fusePrerequisiteRefusal('/usr/bin/fuse-overlayfs', { accessible: false, mode: 0o20600 }, 1001),
    "/dev/fuse is not accessible (mode 600): chmod 666 /dev/fuse (distributions' default), or setfacl -m u:1001:rw /dev/fuse",
  );
  assert.equal(
    fusePrerequisiteRefusal('/usr/bin/fuse-overlayfs', { accessible: true, mode: 0o20666 }, 1001),
    undefined,
  );
});
