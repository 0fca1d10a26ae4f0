/**
 * The fuse-overlayfs snapshotter gives the layers kernel overlay and the native snapshotter give:
 * with SOURCE_DATE_EPOCH the same image id and layer digests, for a Dockerfile that deletes files,
 * deletes and makes again directories (opaque), renames a lower directory, changes only modes,
 * hard-links and writes xattrs. A user with subordinate ids builds with it too (its /dev/fuse access
 * given by a temporary ACL) and gets root's image; without access it is told why and what to do.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import {
  createTestUser,
  removeTestUser,
  rootlessPrerequisites,
  runKilnAs,
  type TestUser,
} from '../../helpers/users.js';
import { savedImage, Workspace } from '../build/util.js';

/** What these tests need, or why they cannot run (a failing test says it: never a skip). */
function prerequisites(): string | undefined {
  if (process.getuid?.() !== 0) return 'the fuse-overlayfs tests run as root (they compare with kernel overlay)';
  for (const [cmd, pkg] of [
    ['fuse-overlayfs', 'fuse-overlayfs'],
    ['fusermount3', 'fuse3'],
    ['setfacl', 'acl'],
  ] as const)
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) return `${cmd} is missing: apt-get install ${pkg}`;
  return basesUnavailable();
}
const missing = prerequisites();

const ws = new Workspace('kiln-fuse-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));
const SDE = { SOURCE_DATE_EPOCH: '1700000000' };
const BASE = 'localhost:5000/python-slim:bookworm';

// The first RUN makes the tree in a lower layer; the second changes it in every way a snapshotter
// must see: deleted files and directories, a directory removed and made again (opaque), a lower
// directory renamed (a copy and a whiteout), a mode-only change, a hard link to a lower file, a new
// xattr on a lower file, a lower file with an xattr chmodded (its xattr kept by the copy-up), a file
// opened for append and left unchanged (no change).
const DOCKERFILE = [
  `FROM ${BASE}`,
  'RUN mkdir -p /t/keep /t/gone/sub /t/redo/old /t/mv/in /t/modes && echo a > /t/gone/sub/f && echo b > /t/redo/old/f' +
    ' && echo c > /t/mv/in/f && echo d > /t/del && echo e > /t/modes/f && echo h > /t/hl && echo x > /t/xa && echo y > /t/xb' +
    ` && python3 -c "import os; os.setxattr('/t/xb', 'user.kept', b'1')" && useradd -m -u 1234 app`,
  'RUN rm -rf /t/gone /t/del /usr/share/doc/apt && rm -rf /t/redo && mkdir -p /t/redo/new && echo n > /t/redo/new/f' +
    ' && mv /t/mv /t/mv2 && chmod 600 /t/modes/f && chmod 700 /t/modes && ln /t/hl /t/hl2' +
    ` && python3 -c "import os; os.setxattr('/t/xa', 'user.note', b'hi')" && chmod 640 /t/xb && : >> /etc/issue`,
  'USER app',
  'RUN touch /home/app/f && rm /home/app/.bashrc',
  '',
].join('\n');

describe('fuse-overlayfs snapshotter', () => {
  let ctx: string;
  before(async () => {
    if (missing) throw new Error(`the fuse-overlayfs tests cannot run here: ${missing}`);
    const r = await ws.kiln(['import', await ensureBaseTar('python-slim'), BASE]);
    assert.equal(r.code, 0, r.stderr);
    ctx = ws.context('app', { Dockerfile: DOCKERFILE });
  });

  test('as root, with SOURCE_DATE_EPOCH: the same image id and layers as overlay and native', async () => {
    const ids: Record<string, string> = {};
    for (const s of ['overlay', 'fuse-overlayfs', 'native'])
      ids[s] = await ws.build(ctx, `app:${s}`, ['--no-cache', '--snapshotter', s], SDE);
    const layers = async (s: string) => (await ws.inspect(`app:${s}`)).RootFS.Layers;
    assert.deepEqual(await layers('fuse-overlayfs'), await layers('overlay'), 'fuse-overlayfs and overlay');
    assert.deepEqual(await layers('native'), await layers('overlay'), 'native and overlay');
    assert.equal(ids['fuse-overlayfs'], ids.overlay);
    assert.equal(ids.native, ids.overlay);
    // The layer says what the second RUN did, in OCI's words.
    const img = await savedImage(ws, 'app:fuse-overlayfs');
    const second = img.layers[img.layers.length - 2]!.map((e) => e.path);
    for (const p of ['/t/.wh.gone', '/t/.wh.del', '/t/.wh.mv', '/t/redo/.wh..wh..opq', '/t/redo/new/f', '/t/mv2/in/f'])
      assert.ok(second.includes(p), `${p} in ${second.join(' ')}`);
    for (const p of ['/t/modes/f', '/t/hl', '/t/hl2', '/t/xa', '/t/xb']) assert.ok(second.includes(p), p);
    for (const p of ['/etc/issue', '/t/mv2/.wh..wh..opq', '/t/.wh..wh..opq'])
      assert.ok(!second.includes(p), `${p} is no change: ${second.join(' ')}`);
    const entry = (p: string) => img.layers[img.layers.length - 2]!.find((e) => e.path === p)!;
    assert.ok(
      ['/t/hl', '/t/hl2'].some((p) => entry(p).tarType === 'link'),
      'ln of a lower file stays a link',
    );
    const run = await ws.kiln([
      'run',
      '--snapshotter',
      'fuse-overlayfs',
      '--entrypoint',
      '',
      '--user',
      'root', // /t/xb is root's, 0640
      'app:fuse-overlayfs',
      'python3',
      '-c',
      "import os; print(os.getxattr('/t/xa', 'user.note'), os.getxattr('/t/xb', 'user.kept'), oct(os.stat('/t/xb').st_mode & 0o777), sorted(os.listdir('/t/redo')), os.stat('/t/hl').st_ino == os.stat('/t/hl2').st_ino, os.getuid(), os.stat('/home/app/f').st_uid)",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "b'hi' b'1' 0o640 ['new'] True 0 1234\n");
  });

  test('the sandbox line names the snapshotter; one that is not installed is refused with the reason', async () => {
    const r = await ws.kiln(
      ['build', '--progress', 'plain', '--no-cache', '--snapshotter', 'fuse-overlayfs', '-t', 'app:line', ctx],
      { env: SDE },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /#0 sandbox: root, .*, fuse-overlayfs snapshots \(overlay in user space\)/);
    const bad = await ws.kiln(['build', '--snapshotter', 'fuse', '-t', 'app:bad', ctx]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown --snapshotter "fuse": use overlay, fuse-overlayfs or native/);
    const noBinary = await ws.kiln(['build', '--no-cache', '--snapshotter', 'fuse-overlayfs', '-t', 'app:nb', ctx], {
      env: { PATH: '/usr/local/bin:/usr/sbin:/sbin' }, // runc and mount are in /usr/sbin, fuse-overlayfs in /usr/bin
    });
    assert.equal(noBinary.code, 1, noBinary.stderr);
    assert.match(
      noBinary.stderr,
      /the fuse-overlayfs snapshotter cannot be used here: fuse-overlayfs is not installed \(Debian\/Ubuntu: apt-get install fuse-overlayfs\)/,
    );
  });
});

describe('fuse-overlayfs, rootless', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-fuse-rl-'));
  chmodSync(work, 0o755);
  let user: TestUser | undefined;
  let acl = false;
  after(() => {
    if (acl && user) {
      spawnSync('setfacl', ['-x', `u:${user.uid}`, '/dev/fuse']);
      // Only the mask left (no other named entry): the node had no ACL before, it has none again.
      const rest = spawnSync('getfacl', ['-c', '-p', '/dev/fuse'], { encoding: 'utf8' }).stdout;
      if (!/^(user|group):[^:]+:/m.test(rest)) spawnSync('setfacl', ['-b', '/dev/fuse']);
    }
    if (user) removeTestUser(user);
    rmSync(work, { recursive: true, force: true });
  });

  test('a user with subordinate ids is told why /dev/fuse cannot be used; with access, builds root’s image', async () => {
    const why = missing ?? rootlessPrerequisites();
    if (why) throw new Error(`the rootless fuse-overlayfs test cannot run here: ${why}`);
    user = createTestUser(`kilnfu${process.pid % 100000}`, { subids: true });
    const archive = path.join(work, 'base.tar');
    const s = await ws.kiln(['save', '-o', archive, BASE]);
    assert.equal(s.code, 0, s.stderr);
    chmodSync(archive, 0o644);
    const l = await runKilnAs(user, ['load', '-q', '-i', archive]);
    assert.equal(l.code, 0, l.stderr);
    const ctx = path.join(work, 'ctx');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), DOCKERFILE);
    spawnSync('chmod', ['-R', 'a+rX', ctx]);
    const build = (tag: string) =>
      runKilnAs(user!, ['build', '--progress', 'plain', '--snapshotter', 'fuse-overlayfs', '-t', tag, ctx], {
        env: SDE,
      });

    const mode = spawnSync('stat', ['-c', '%a', '/dev/fuse'], { encoding: 'utf8' }).stdout.trim();
    if (mode.endsWith('6')) {
      // A distribution's /dev/fuse (0666): every user may open it, nothing to refuse.
    } else {
      const refused = await build('app:refused');
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `fuse-overlayfs snapshotter cannot be used here: /dev/fuse is not accessible \\(mode ${mode}\\): chmod 666 /dev/fuse .*setfacl -m u:${user.uid}:rw /dev/fuse`,
        ),
      );
      const set = spawnSync('setfacl', ['-m', `u:${user.uid}:rw`, '/dev/fuse'], { encoding: 'utf8' });
      assert.equal(set.status, 0, `setfacl on /dev/fuse: ${set.stderr}`);
      acl = true;
    }
    const r = await build('app:1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /#0 sandbox: rootless \(user namespace, 65537 ids mapped\), .*fuse-overlayfs snapshots/);
    const inspect = async (out: Promise<{ stdout: string }>) => {
      const [o] = JSON.parse((await out).stdout) as { Id: string; RootFS: { Layers: string[] } }[];
      return { id: o!.Id, layers: o!.RootFS.Layers };
    };
    const asUser = await inspect(runKilnAs(user, ['inspect', 'app:1']));
    await ws.build(path.join(work, 'ctx'), 'app:root-overlay', ['--no-cache', '--snapshotter', 'overlay'], SDE);
    const asRoot = await inspect(ws.kiln(['inspect', 'app:root-overlay']));
    assert.deepEqual(asUser.layers, asRoot.layers, 'the layers of a root build with kernel overlay');
    assert.equal(asUser.id, asRoot.id, 'the image id of a root build');
  });
});
