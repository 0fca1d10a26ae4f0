import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveUser, resolveChown } from '../../../src/util/users.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'kiln-users-'));
mkdirSync(path.join(root, 'etc'));
writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\napp:x:1000:1001:App:/home/app:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin\n');
writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nappgrp:x:1001:\nextra:x:2000:app,other\nnonroot:x:65532:\n');

test('USER: names, ids, groups and supplementary groups from the image', () => {
  assert.deepEqual(resolveUser(root, 'app'), { uid: 1000, gid: 1001, additionalGids: [2000], home: '/home/app' });
  assert.deepEqual(resolveUser(root, '').uid, 0);
  assert.equal(resolveUser(root, '1000').gid, 1001, 'a known uid takes its primary group');
  assert.equal(resolveUser(root, '4242').gid, 0, 'an unknown uid runs with gid 0');
  assert.deepEqual(resolveUser(root, 'app:extra'), { uid: 1000, gid: 2000, additionalGids: [], home: '/home/app' });
  assert.equal(resolveUser(root, 'app:7').gid, 7);
  assert.throws(() => resolveUser(root, 'ghost'), /unable to find user ghost/);
  assert.throws(() => resolveUser(root, 'app:ghosts'), /unable to find group ghosts/);
});

test('COPY --chown: names from the destination image, numeric ids as given', () => {
  assert.deepEqual(resolveChown(root, 'nonroot:nonroot'), { uid: 65532, gid: 65532 });
  assert.deepEqual(resolveChown(root, 'app'), { uid: 1000, gid: 1001 });
  assert.deepEqual(resolveChown(root, '1234'), { uid: 1234, gid: 1234 });
  assert.deepEqual(resolveChown(root, '1234:5'), { uid: 1234, gid: 5 });
  assert.throws(() => resolveChown(root, 'ghost'), /no such user: ghost/);
  assert.throws(() => resolveChown(root, 'app:ghosts'), /no such group: ghosts/);
});
