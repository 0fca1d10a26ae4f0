/**
 * The store holds images' setuid programs as they are: nothing under it may be reachable by
 * another local user (moby CVE-2021-41091). Checked as `nobody`, through setpriv.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { craftTar } from '../../helpers/craft-tar.js';
import { Store } from '../../../src/store/store.js';

// A parent every user can search: only the store's own modes stand between `nobody` and its files.
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-perm-'));
chmodSync(work, 0o755);
after(() => rmSync(work, { recursive: true, force: true }));

function asNobody(cmd: string[]): { code: number; stderr: string } {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', ...cmd], {
    encoding: 'utf8',
  });
  if (r.error) throw new Error(`setpriv is needed for this test (apt-get install util-linux): ${r.error.message}`);
  return { code: r.status ?? -1, stderr: r.stderr };
}

test('a setuid program of an image in the store cannot be reached by another user', async () => {
  assert.equal(process.getuid?.(), 0, 'this test runs as root (it switches to nobody with setpriv)');
  const root = path.join(work, 'store');
  const tarFile = path.join(work, 'rootfs.tar');
  writeFileSync(
    tarFile,
    craftTar([
      { name: 'bin/', type: 'dir' },
      { name: 'bin/suid-id', content: '#!/bin/sh\nid -u\n', mode: 0o4755 },
    ]),
  );
  const r = await runKiln(['import', tarFile, 'suid:1'], { root });
  assert.equal(r.code, 0, r.stderr);
  const store = await Store.open({ root });
  const img = await store.resolveImage('suid:1');
  const [snap] = await store.snapshots(img.manifest.layers, img.config.rootfs.diff_ids);
  const suid = path.join(snap!, 'bin', 'suid-id');
  assert.equal(statSync(suid).mode & 0o4000, 0o4000, 'the snapshot keeps the setuid bit, as the image has it');
  // Reachable by its owner, root, and by nobody else: not the file, not a listing of the store.
  for (const target of [suid, path.join(root, 'snapshots'), path.join(root, 'blobs', 'sha256'), root]) {
    const seen = asNobody(['ls', target]);
    assert.notEqual(seen.code, 0, `nobody can list ${target}`);
    assert.match(seen.stderr, /Permission denied/);
  }
  assert.equal(statSync(root).mode & 0o777, 0o700);
  assert.equal(statSync(path.join(root, 'snapshots')).mode & 0o777, 0o700);
});

test('an existing store with open modes is repaired when opened', async () => {
  const root = path.join(work, 'old-store');
  await Store.open({ root });
  chmodSync(root, 0o755);
  chmodSync(path.join(root, 'snapshots'), 0o755);
  const r = await runKiln(['images'], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(root).mode & 0o777, 0o700);
  assert.equal(statSync(path.join(root, 'snapshots')).mode & 0o777, 0o700);
});

test('a store root kiln cannot make private is refused with a message naming it', async () => {
  const root = path.join(work, 'not-mine');
  await Store.open({ root });
  chmodSync(root, 0o755);
  spawnSync('chown', ['65534:65534', root]);
  const r = spawnSync(
    'setpriv',
    [
      '--reuid=65533',
      '--regid=65533',
      '--clear-groups',
      '--',
      process.execPath,
      '-e',
      `import('${new URL('../../../src/store/store.js', import.meta.url).href}').then(m => m.Store.open({ root: ${JSON.stringify(root)} })).then(() => console.log('opened'), e => { console.log(e.code + ': ' + e.message); })`,
    ],
    { encoding: 'utf8' },
  );
  assert.match(r.stdout, /^STORE: cannot make .*not-mine private to its owner/m);
});
