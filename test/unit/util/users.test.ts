import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  resolveUser,
  resolveChown,
  parsePasswd,
  parseGroup,
  readImageFile,
  findInRoot,
} from '../../../src/util/users.js';
import { needs } from '../../helpers/prereq.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as { setAttributeSync(p: string, n: string, v: Buffer | string): void };

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-users-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function rootWith(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmp, 'root-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  }
  return root;
}

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  '# a comment',
  '',
  'app:x:1000:1001:App:/home/app:/bin/sh',
  'nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin',
  'broken:x:notanumber:1:::',
  'app:x:2222:2222:second app entry:/nowhere:/bin/sh',
  'nohome:x:3000:3000::::',
].join('\n');
const GROUP = [
  'root:x:0:',
  'appgrp:x:1001:app',
  'extra:x:2000:app,other',
  'nonroot:x:65532:',
  'more:x:2001:other,app',
  'bad:x:x:app',
].join('\n');
const root = rootWith({ 'etc/passwd': PASSWD, 'etc/group': GROUP });

test('parsing passwd and group as libcontainer: comments, blank lines and bad numbers skipped', () => {
  assert.deepEqual(
    parsePasswd(PASSWD).map((p) => p.name),
    ['root', 'app', 'nonroot', 'app', 'nohome'],
  );
  assert.deepEqual(
    parseGroup(GROUP).find((g) => g.name === 'extra'),
    { name: 'extra', gid: 2000, members: ['app', 'other'] },
  );
  assert.deepEqual(parseGroup('g:x:5:').at(0)?.members, []);
});

test('USER by name: passwd uid/gid/home, first entry wins, every group listing the user (primary included)', () => {
  assert.deepEqual(resolveUser(root, 'app'), {
    uid: 1000,
    gid: 1001,
    additionalGids: [1001, 2000, 2001],
    home: '/home/app',
  });
  assert.deepEqual(resolveUser(root, 'nonroot'), { uid: 65532, gid: 65532, additionalGids: [], home: '/home/nonroot' });
  assert.throws(
    () => resolveUser(root, 'ghost'),
    /^KilnError: unable to find user ghost: no matching entries in passwd file$/m,
  );
});

test('USER by uid: its passwd entry when there is one, else gid 0 and HOME /', () => {
  assert.deepEqual(resolveUser(root, '1000'), {
    uid: 1000,
    gid: 1001,
    additionalGids: [1001, 2000, 2001],
    home: '/home/app',
  });
  assert.deepEqual(resolveUser(root, '4242'), { uid: 4242, gid: 0, additionalGids: [], home: '/' });
  assert.equal(resolveUser(root, 'nohome').home, '/', 'an empty home field means /');
});

test("USER empty or root: uid 0 with root's entry", () => {
  assert.deepEqual(resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
  assert.deepEqual(resolveUser(root, 'root'), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
  assert.deepEqual(resolveUser(rootWith({}), ''), { uid: 0, gid: 0, additionalGids: [], home: '/' });
});

test('USER with a group: the group replaces the primary one and there are no supplementary groups', () => {
  assert.deepEqual(resolveUser(root, 'app:extra'), { uid: 1000, gid: 2000, additionalGids: [], home: '/home/app' });
  assert.deepEqual(resolveUser(root, 'app:2001'), { uid: 1000, gid: 2001, additionalGids: [], home: '/home/app' });
  assert.deepEqual(
    resolveUser(root, 'app:7'),
    { uid: 1000, gid: 7, additionalGids: [], home: '/home/app' },
    'a numeric gid need not exist',
  );
  assert.deepEqual(resolveUser(root, 'app:'), resolveUser(root, 'app'), 'an empty group is no group');
  assert.deepEqual(resolveUser(root, ':extra'), { uid: 0, gid: 2000, additionalGids: [], home: '/root' });
  assert.throws(
    () => resolveUser(root, 'app:ghosts'),
    /unable to find group ghosts: no matching entries in group file/,
  );
  assert.equal(resolveUser(root, 'app:extra:ignored').gid, 2000, 'fields after the second are ignored');
});

test('USER uid:gid both numeric (or root): exactly those, without reading the files (BuildKit fast path)', () => {
  const empty = rootWith({});
  assert.deepEqual(resolveUser(empty, '1234:5678'), { uid: 1234, gid: 5678, additionalGids: [], home: '/' });
  assert.deepEqual(resolveUser(empty, 'root:root'), { uid: 0, gid: 0, additionalGids: [], home: '/' });
  assert.deepEqual(resolveUser(root, '1000:1000'), { uid: 1000, gid: 1000, additionalGids: [], home: '/home/app' });
  assert.throws(() => resolveUser(empty, 'root'), /unable to find user root/, 'a lone name always needs passwd');
  assert.equal(resolveUser(empty, '77').gid, 0);
});

test('USER ids outside 0..2^31-1 are refused', () => {
  assert.throws(() => resolveUser(root, '-1'), /must be in range 0-2147483647/);
  assert.throws(() => resolveUser(root, '2147483648'), /must be in range/);
  assert.throws(() => resolveUser(root, 'app:-5'), /must be in range/);
});

test('COPY --chown: numeric user means uid:uid, names from the image, "user:" means group 0', () => {
  assert.deepEqual(resolveChown(root, 'nonroot:nonroot'), { uid: 65532, gid: 65532 });
  assert.deepEqual(resolveChown(root, 'app'), { uid: 1000, gid: 1001 });
  assert.deepEqual(resolveChown(root, 'app:extra'), { uid: 1000, gid: 2000 });
  assert.deepEqual(resolveChown(root, '1234'), { uid: 1234, gid: 1234 });
  assert.deepEqual(resolveChown(root, '1234:5'), { uid: 1234, gid: 5 });
  assert.deepEqual(resolveChown(root, '1234:extra'), { uid: 1234, gid: 2000 });
  assert.deepEqual(resolveChown(root, 'app:'), { uid: 1000, gid: 0 });
  assert.throws(() => resolveChown(root, 'ghost'), /can't find uid for user ghost: no such user: ghost/);
  assert.throws(() => resolveChown(root, 'app:ghosts'), /can't find gid for group ghosts: no such group: ghosts/);
  assert.throws(() => resolveChown(rootWith({}), 'app'), /no such user: app/);
  assert.throws(() => resolveChown(root, ':5'), /a user is required/);
});

test('symlinks are followed inside the root, never out of it', () => {
  const outside = rootWith({ 'secret/passwd': 'evil:x:0:0::/:/bin/sh\n' });
  const r = rootWith({ 'real/passwd': 'linked:x:42:43::/l:/bin/sh\n', 'etc/.keep': '' });
  symlinkSync('../real/passwd', path.join(r, 'etc/passwd'));
  assert.equal(resolveUser(r, 'linked').uid, 42);
  const abs = rootWith({ 'etc/.keep': '' });
  symlinkSync(path.join(outside, 'secret/passwd'), path.join(abs, 'etc/passwd'));
  assert.throws(
    () => resolveUser(abs, 'evil'),
    /unable to find user evil/,
    'an absolute link resolves inside the root',
  );
  const dotdot = rootWith({ 'etc/.keep': '' });
  symlinkSync('../../../../../../../../' + path.join(outside, 'secret/passwd'), path.join(dotdot, 'etc/passwd'));
  assert.throws(() => resolveUser(dotdot, 'evil'), /unable to find user evil/, '.. stops at the root');
  const loop = rootWith({ 'etc/.keep': '' });
  symlinkSync('passwd', path.join(loop, 'etc/passwd'));
  assert.equal(readImageFile(loop, '/etc/passwd'), undefined);
});

test(
  'a stack of layer directories: the topmost file wins, whiteouts and opaque directories hide lower ones',
  {
    skip: needs(
      process.getuid?.() !== 0 ? 'overlay markers need root (mknod, trusted xattrs): run the tests as root' : undefined,
    ),
  },
  () => {
    const l1 = rootWith({
      'etc/passwd': 'base:x:1:1::/b:/bin/sh\n',
      'etc/group': 'g1:x:10:base\n',
      'opt/conf/passwd': 'x',
    });
    const l2 = rootWith({ 'etc/passwd': 'base:x:1:1::/b:/bin/sh\nadded:x:2:2::/a:/bin/sh\n' });
    assert.equal(resolveUser([l1, l2], 'added').uid, 2);
    assert.deepEqual(resolveUser([l1, l2], 'base').additionalGids, [10], 'group from the lower layer');
    // A whiteout of /etc/group in a higher layer hides the lower one.
    const l3 = rootWith({ 'etc/.keep': '' });
    execFileSync('mknod', [path.join(l3, 'etc/group'), 'c', '0', '0']);
    assert.deepEqual(resolveUser([l1, l2, l3], 'base').additionalGids, []);
    assert.equal(readImageFile([l1, l2, l3], '/etc/group'), undefined);
    // An opaque /etc in a higher layer hides everything below it.
    const l4 = rootWith({ 'etc/hostname': 'x' });
    xattr.setAttributeSync(path.join(l4, 'etc'), 'trusted.overlay.opaque', 'y');
    assert.throws(() => resolveUser([l1, l2, l4], 'added'), /unable to find user added/);
    assert.equal(findInRoot([l1, l2, l4], '/etc/hostname'), path.join(l4, 'etc/hostname'));
    // A file replacing a directory hides what the directory had below.
    const l5 = rootWith({ opt: 'now a file' });
    assert.equal(findInRoot([l1, l5], '/opt/conf/passwd'), undefined);
    assert.equal(findInRoot([l1], '/opt/conf/passwd'), path.join(l1, 'opt/conf/passwd'));
    // A symlink in an upper layer pointing into a lower one.
    const l6 = rootWith({ 'etc/.keep': '' });
    symlinkSync('/opt/conf/passwd', path.join(l6, 'etc/shadow'));
    assert.equal(findInRoot([l1, l6], '/etc/shadow'), path.join(l1, 'opt/conf/passwd'));
  },
);
