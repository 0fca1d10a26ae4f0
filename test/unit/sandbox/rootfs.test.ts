import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdtempSync,
  mkdirSync,
  writeFileSync,
  rmSync,
  chmodSync,
  chownSync,
  utimesSync,
  symlinkSync,
  lstatSync,
  readFileSync,
  readdirSync,
  existsSync,
  linkSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  snapshotTree,
  diffTrees,
  diffUpper,
  upperChanges,
  makeStubs,
  flattenLowerDirs,
  separateHardLinks,
  mountWithFallback,
  overlayVolatile,
  forgetVolatileRefusal,
  unmount,
} from '../../../src/sandbox/rootfs.js';
import { compareChanges, type Change } from '../../../src/layer/write.js';
import { LeanStats, type PackedListing } from '../../../src/util/lean-stats.js';
import { nativeFs, nativeFsLoaded, useNativeFs } from '../../../src/util/native-fs.js';
import { needs } from '../../helpers/prereq.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as {
  setAttributeSync(p: string, n: string, v: string): void;
  getAttributeSync(p: string, n: string): Buffer;
};
const isRoot = process.getuid?.() === 0;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-rootfs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function tree(files: Record<string, string | null>): string {
  const root = mkdtempSync(path.join(tmp, 't-'));
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(root, rel);
    if (text === null) mkdirSync(p, { recursive: true });
    else {
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, text);
    }
  }
  return root;
}

const fmt = (cs: Change[]) => cs.map((c) => `${c.kind} ${c.path}`).sort();

// First in this file: nothing before it has loaded the native helper.
test('upper dir diff of a few changed files does not load the native helper (its dlopen costs more than their lstats); a large directory does', () => {
  assert.equal(nativeFsLoaded(), false, 'not loaded by importing the modules');
  const upper = tree({ 'etc/a': 'a', 'etc/b': 'b', 'new/c': 'c' });
  assert.deepEqual(fmt(diffUpper(upper)), ['add etc', 'add etc/a', 'add etc/b', 'add new', 'add new/c']);
  assert.equal(nativeFsLoaded(), false);
  const big = tree(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`many/f${i}`, `${i}`])));
  assert.equal(diffUpper(big).length, 41);
  assert.equal(nativeFsLoaded(), true);
});

test('native diff: adds, edits, metadata-only changes, deletions, replaced directories, parents included', () => {
  const root = tree({
    'a/keep': '1',
    'a/edit': '1',
    'a/chmod': '1',
    'a/gone': '1',
    'tree/x/y': '1',
    'tree/z': '1',
    'repl/old': '1',
    f2d: 'file',
    'untouched/u': '1',
    'emptied/e1': '1',
    'emptied/e2': '1',
    'tmpdir/t': '1',
  });
  const before = snapshotTree(root);
  writeFileSync(path.join(root, 'a/new'), 'n');
  writeFileSync(path.join(root, 'a/edit'), '2');
  chmodSync(path.join(root, 'a/chmod'), 0o600);
  rmSync(path.join(root, 'a/gone'));
  rmSync(path.join(root, 'tree'), { recursive: true });
  // removed and made again: the file system may well reuse the inode number, not the birth time
  rmSync(path.join(root, 'repl'), { recursive: true });
  mkdirSync(path.join(root, 'repl'));
  writeFileSync(path.join(root, 'repl/new'), 'n');
  rmSync(path.join(root, 'f2d'));
  mkdirSync(path.join(root, 'f2d'));
  rmSync(path.join(root, 'emptied/e1'));
  rmSync(path.join(root, 'emptied/e2'));
  writeFileSync(path.join(root, 'tmpdir/scratch'), 'x');
  rmSync(path.join(root, 'tmpdir/scratch'));
  assert.deepEqual(fmt(diffTrees(root, before).changes), [
    'add a',
    'add a/chmod',
    'add a/edit',
    'add a/new',
    'add emptied',
    'add f2d',
    'add repl',
    'add repl/new',
    'add tmpdir',
    'delete a/gone',
    'delete emptied/e1',
    'delete emptied/e2',
    'delete tree',
    'opaque f2d',
    'opaque repl',
  ]);
});

test('native diff: nothing changed, nothing reported; a touched directory is reported', () => {
  const root = tree({ 'd/f': '1' });
  const before = snapshotTree(root);
  assert.deepEqual(diffTrees(root, before).changes, []);
  utimesSync(path.join(root, 'd'), new Date(1000), new Date(1000));
  assert.deepEqual(fmt(diffTrees(root, before).changes), ['add d']);
});

test('native diff: a directory replaced by a file is the file alone (no whiteout under a file)', () => {
  const root = tree({ 'bd/x': 'x', 'bd/sub/y': 'y' });
  const before = snapshotTree(root);
  rmSync(path.join(root, 'bd'), { recursive: true });
  writeFileSync(path.join(root, 'bd'), 'now a file');
  assert.deepEqual(fmt(diffTrees(root, before).changes), ['add bd']);
});

test('native diff: a new hard link reports both names (the inode changed)', () => {
  const root = tree({ 'bin/a': 'x' });
  const before = snapshotTree(root);
  linkSync(path.join(root, 'bin/a'), path.join(root, 'bin/b'));
  assert.deepEqual(fmt(diffTrees(root, before).changes), ['add bin', 'add bin/a', 'add bin/b']);
});

test('native root: a file linked from an earlier layer changes through one name only, as overlay copies it up', async () => {
  const root = tree({ 'e/k': 'keep\n', 'e/other': 'o' });
  const [k, hard] = [path.join(root, 'e/k'), path.join(root, 'e/hard')];
  linkSync(k, hard);
  chmodSync(k, 0o700);
  utimesSync(k, 1600000000, 1600000000);
  utimesSync(path.join(root, 'e'), 1500000000.25, 1500000000.25);
  const dirTime = lstatSync(path.join(root, 'e'), { bigint: true }).mtimeNs;
  const state = snapshotTree(root);
  assert.deepEqual((await separateHardLinks(root, state)).sort(), ['e', 'e/hard', 'e/k']);
  assert.deepEqual(state, snapshotTree(root), 'the state brought up to date');
  for (const p of [k, hard]) {
    const st = lstatSync(p);
    assert.deepEqual(
      [st.nlink, st.mode & 0o7777, st.mtimeMs, readFileSync(p, 'utf8')],
      [1, 0o700, 1600000000000, 'keep\n'],
    );
  }
  assert.notEqual(lstatSync(k).ino, lstatSync(hard).ino);
  assert.equal(lstatSync(path.join(root, 'e'), { bigint: true }).mtimeNs, dirTime, "the directory's time is kept");
  assert.deepEqual(readdirSync(path.join(root, 'e')).sort(), ['hard', 'k', 'other'], 'no temporary left');
  // The RUN's chmod through one name: the layer carries that name alone, the other keeps its mode.
  chmodSync(hard, 0o600);
  assert.deepEqual(fmt(diffTrees(root, state).changes), ['add e', 'add e/hard']);
  assert.equal(lstatSync(k).mode & 0o7777, 0o700);
  assert.deepEqual(await separateHardLinks(root, snapshotTree(root)), [], 'nothing linked: nothing copied');
});

test(
  'upper dir diff: overlay whiteouts and opaque directories',
  { skip: needs(isRoot ? undefined : 'overlay markers need root (mknod, trusted xattrs): run the tests as root') },
  () => {
    const upper = tree({ 'etc/new': 'n', 'opq/inside': 'i', 'plain/x': 'x' });
    execFileSync('mknod', [path.join(upper, 'etc/gone'), 'c', '0', '0']);
    execFileSync('mknod', [path.join(upper, 'gonedir'), 'c', '0', '0']);
    execFileSync('mknod', [path.join(upper, 'etc/null'), 'c', '1', '3']); // a real device stays a device
    xattr.setAttributeSync(path.join(upper, 'opq'), 'trusted.overlay.opaque', 'y');
    xattr.setAttributeSync(path.join(upper, 'plain'), 'trusted.overlay.opaque', 'x'); // "has xattr whiteouts", not opaque
    writeFileSync(path.join(upper, 'etc/xwh'), '');
    xattr.setAttributeSync(path.join(upper, 'etc/xwh'), 'trusted.overlay.whiteout', 'y');
    assert.deepEqual(fmt(diffUpper(upper)), [
      'add etc',
      'add etc/new',
      'add etc/null',
      'add opq',
      'add opq/inside',
      'add plain',
      'add plain/x',
      'delete etc/gone',
      'delete etc/xwh',
      'delete gonedir',
      'opaque opq',
    ]);
  },
);

test(
  "stubs: missing mount points made in a separate dir, parents copying the image's metadata, symlinks resolved",
  { skip: needs(isRoot ? undefined : 'stubs need root (chown): run the tests as root') },
  () => {
    const l1 = tree({ 'etc/passwd': 'x', 'var/run/.keep': '', proc: null });
    chmodSync(path.join(l1, 'etc'), 0o710);
    chownSync(path.join(l1, 'etc'), 7, 8);
    utimesSync(path.join(l1, 'etc'), new Date(1_000_000), new Date(2_000_000));
    symlinkSync('var/run', path.join(l1, 'run'));
    const stubs = tree({});
    const real = makeStubs(
      stubs,
      [l1],
      [
        { path: '/proc', kind: 'dir' },
        { path: '/etc/hosts', kind: 'file' },
        { path: '/run/secrets/token', kind: 'file' },
        { path: '/mnt/cache', kind: 'dir' },
      ],
    );
    assert.equal(real.get('/proc'), 'proc');
    assert.equal(real.get('/run/secrets/token'), 'var/run/secrets/token');
    assert.ok(!existsSync(path.join(stubs, 'proc')), 'the image has /proc: no stub');
    const etc = lstatSync(path.join(stubs, 'etc'));
    assert.equal(etc.mode & 0o7777, 0o710);
    assert.equal(etc.uid, 7);
    assert.equal(etc.gid, 8);
    assert.equal(etc.mtimeMs, 2_000_000, 'times set after the children were made');
    assert.ok(lstatSync(path.join(stubs, 'etc/hosts')).isFile());
    assert.ok(lstatSync(path.join(stubs, 'var/run/secrets/token')).isFile());
    assert.ok(lstatSync(path.join(stubs, 'mnt/cache')).isDirectory());
    assert.deepEqual(readdirSync(stubs).sort(), ['etc', 'mnt', 'var']);
  },
);

test(
  'flattening layer dirs: later layers win, whiteouts delete, opaque directories drop what was below',
  { skip: needs(isRoot ? undefined : 'overlay markers need root (mknod, trusted xattrs): run the tests as root') },
  () => {
    const l1 = tree({ 'a/1': 'one', 'a/2': 'two', 'b/old': 'old', 'c/deep/x': 'x', keep: 'k' });
    const l2 = tree({ 'a/1': 'ONE', 'b/new': 'new', 'd/n': 'n' });
    execFileSync('mknod', [path.join(l2, 'a/2'), 'c', '0', '0']);
    execFileSync('mknod', [path.join(l2, 'c'), 'c', '0', '0']);
    xattr.setAttributeSync(path.join(l2, 'b'), 'trusted.overlay.opaque', 'y');
    chmodSync(path.join(l2, 'd'), 0o700);
    const dest = path.join(tmp, 'flat');
    return flattenLowerDirs([l1, l2], dest).then(() => {
      const list = (d: string, rel = ''): string[] =>
        readdirSync(path.join(d, rel)).flatMap((n) => {
          const r = rel ? `${rel}/${n}` : n;
          return lstatSync(path.join(d, r)).isDirectory() ? [`${r}/`, ...list(d, r)] : [r];
        });
      assert.deepEqual(list(dest).sort(), ['a/', 'a/1', 'b/', 'b/new', 'd/', 'd/n', 'keep']);
      assert.equal(readFileSync(path.join(dest, 'a/1'), 'utf8'), 'ONE');
      assert.equal(lstatSync(path.join(dest, 'd')).mode & 0o777, 0o700);
      assert.throws(
        () => xattr.getAttributeSync(path.join(dest, 'b'), 'trusted.overlay.opaque'),
        'no overlay marker in the flattened tree',
      );
    });
  },
);

test('upper dir diff against the lower layers: unchanged copy-ups are no change (BuildKit sameDirent)', () => {
  const lower = tree({
    'etc/.pwd.lock': '',
    'etc/passwd': 'root\n',
    'etc/group': 'g\n',
    'etc/cap': 'c',
    'var/log/x': 'x',
  });
  const whole = new Date(1_700_000_000_000); // whole seconds, as a layer's tar leaves mtimes
  for (const f of ['etc/.pwd.lock', 'etc/passwd', 'etc/group', 'etc/cap', 'var/log/x', 'etc', 'var/log', 'var'])
    utimesSync(path.join(lower, f), whole, whole);
  // What overlay's copy-up makes: the same entries, metadata and times kept.
  const upper = mkdtempSync(path.join(tmp, 'u-'));
  for (const d of ['etc', 'var']) execFileSync('cp', ['-a', path.join(lower, d), upper]);
  // Changed: the content in the same (whole) second, an xattr, a new file in var/log (its mtime moves).
  writeFileSync(path.join(upper, 'etc/group'), 'h\n');
  utimesSync(path.join(upper, 'etc/group'), whole, whole);
  xattr.setAttributeSync(path.join(upper, 'etc/cap'), 'user.kiln', '1');
  writeFileSync(path.join(upper, 'var/log/new'), 'n');
  assert.deepEqual(fmt(diffUpper(upper, [lower])), [
    'add etc',
    'add etc/cap',
    'add etc/group',
    'add var',
    'add var/log',
    'add var/log/new',
  ]);
  // Nothing changed at all: no change.
  const same = mkdtempSync(path.join(tmp, 'u-'));
  execFileSync('cp', ['-a', path.join(lower, 'etc'), same]);
  assert.deepEqual(fmt(diffUpper(same, [lower])), []);
  // A sub-second mtime that differs, or a mode: a change; without lowers every entry is one.
  utimesSync(path.join(same, 'etc/passwd'), whole, new Date(1_700_000_000_500));
  chmodSync(path.join(same, 'etc/.pwd.lock'), 0o600);
  assert.deepEqual(fmt(diffUpper(same, [lower])), ['add etc', 'add etc/.pwd.lock', 'add etc/passwd']);
  assert.equal(diffUpper(same).length, 5);
});

test(
  'upper dir diff against the lower layers: what a higher layer hides is not compared with',
  { skip: needs(isRoot ? undefined : 'overlay markers need root (trusted xattrs): run the tests as root') },
  () => {
    const bottom = tree({ 'etc/passwd': 'root\n' });
    const whole = new Date(1_700_000_000_000);
    utimesSync(path.join(bottom, 'etc/passwd'), whole, whole);
    utimesSync(path.join(bottom, 'etc'), whole, whole);
    const middle = tree({ etc: null });
    xattr.setAttributeSync(path.join(middle, 'etc'), 'trusted.overlay.opaque', 'y');
    utimesSync(path.join(middle, 'etc'), whole, whole);
    const upper = mkdtempSync(path.join(tmp, 'u-'));
    execFileSync('cp', ['-a', path.join(bottom, 'etc'), upper]);
    // Under the opaque etc/ of the middle layer, passwd is new: the same bytes as the bottom's count.
    assert.deepEqual(fmt(diffUpper(upper, [bottom, middle])), ['add etc', 'add etc/passwd']);
    assert.deepEqual(fmt(diffUpper(upper, [bottom])), []);
  },
);

test("upper dir diff, fuse-overlayfs' form: .wh. files, opaque markers, no-op whiteouts, copy-up mtimes of directories", () => {
  const whole = new Date(1_700_000_000_000);
  const lower = tree({ 't/gone/f': '1', 't/del': '1', 't/redo/old': '1', 't/keep/k': '1', 'etc/x': 'x' });
  for (const f of ['t/gone/f', 't/del', 't/redo/old', 't/keep/k', 'etc/x', 't/gone', 't/redo', 't/keep', 't', 'etc'])
    utimesSync(path.join(lower, f), whole, whole);
  const upper = mkdtempSync(path.join(tmp, 'u-'));
  // etc/x copied up unchanged (opened for append): fuse-overlayfs moved it into etc/, whose mtime moved.
  execFileSync('cp', ['-a', path.join(lower, 'etc'), upper]);
  utimesSync(path.join(upper, 'etc'), new Date(), new Date());
  xattr.setAttributeSync(path.join(upper, 'etc/x'), 'user.fuseoverlayfs.origin', 'etc/x');
  mkdirSync(path.join(upper, 't'));
  // Deleted without mknod: empty .wh.NAME files; one for a name no lower has (made and removed).
  for (const w of ['.wh.del', '.wh.gone', '.wh.never']) writeFileSync(path.join(upper, 't', w), '');
  // Removed and made again: opaque (the unprivileged xattr and the marker file); a new directory is
  // marked too, but hides nothing.
  for (const d of ['t/redo', 't/new']) {
    mkdirSync(path.join(upper, d));
    writeFileSync(path.join(upper, d, '.wh..wh..opq'), '');
    xattr.setAttributeSync(path.join(upper, d), 'user.fuseoverlayfs.opaque', 'y');
    writeFileSync(path.join(upper, d, 'n'), 'n');
  }
  assert.deepEqual(fmt(diffUpper(upper, [lower], 'fuse-overlayfs')), [
    'add t',
    'add t/new',
    'add t/new/n',
    'add t/redo',
    'add t/redo/n',
    'delete t/del',
    'delete t/gone',
    'opaque t/redo',
  ]);
  // The marker file alone says opaque too (where xattrs are not supported).
  xattr.setAttributeSync(path.join(upper, 't/redo'), 'user.fuseoverlayfs.opaque', 'n');
  assert.ok(fmt(diffUpper(upper, [lower], 'fuse-overlayfs')).includes('opaque t/redo'));
  // In the kernel's form the same names are plain files, and a moved directory mtime is a change.
  assert.ok(fmt(diffUpper(upper, [lower])).includes('add t/.wh.del'));
  assert.ok(fmt(diffUpper(upper, [lower])).includes('add etc'));
});

test(
  "upper dir diff, fuse-overlayfs' form: 0/0 device whiteouts count only for what a lower layer has; its own .wh. devices never",
  { skip: needs(isRoot ? undefined : 'whiteout devices need root (mknod): run the tests as root') },
  () => {
    const lower = tree({ 'etc/passwd': 'p', d: null });
    const upper = mkdtempSync(path.join(tmp, 'u-'));
    mkdirSync(path.join(upper, 'etc'));
    mkdirSync(path.join(upper, 'd'));
    writeFileSync(path.join(upper, 'd/.wh..wh..opq'), '');
    xattr.setAttributeSync(path.join(upper, 'd'), 'trusted.overlay.opaque', 'y');
    for (const p of ['etc/passwd', 'etc/passwd.lock', 'd/.wh..opq'])
      execFileSync('mknod', ['-m', '000', path.join(upper, p), 'c', '0', '0']);
    assert.deepEqual(fmt(diffUpper(upper, [lower], 'fuse-overlayfs')), [
      'add d',
      'add etc',
      'delete etc/passwd',
      'opaque d',
    ]);
  },
);

test('upper dir diff, streamed: the changes come in the layer order as the walk finds them; a lower directory is held back until a change below it', () => {
  const whole = new Date(1_700_000_000_000);
  const lower = tree({ 'usr/lib/x': 'x', 'usr/share/doc/y': 'y', 'a.b/k': 'k' });
  for (const f of ['usr/lib/x', 'usr/share/doc/y', 'a.b/k', 'usr/share/doc', 'usr/share', 'usr/lib', 'usr', 'a.b'])
    utimesSync(path.join(lower, f), whole, whole);
  const upper = mkdtempSync(path.join(tmp, 'u-'));
  execFileSync('cp', ['-a', path.join(lower, 'usr'), path.join(lower, 'a.b'), upper]);
  // Deep in copied-up, unchanged directories: one new file; beside it names whose byte order is
  // not their locale order, and a fuse-overlayfs whiteout file sorted by the name it deletes.
  writeFileSync(path.join(upper, 'usr/share/doc/new'), 'n');
  for (const n of ['Zz', 'a', 'a-', 'é']) writeFileSync(path.join(upper, 'usr', n), n);
  writeFileSync(path.join(upper, 'usr/.wh.lib'), '');
  mkdirSync(path.join(upper, 'usr/lib.d'));
  const seen: string[] = [];
  for (const c of upperChanges(upper, [lower], 'fuse-overlayfs')) seen.push(`${c.kind} ${c.path}`);
  assert.deepEqual(seen, [
    'add usr',
    'add usr/Zz',
    'add usr/a',
    'add usr/a-',
    'delete usr/lib',
    'add usr/lib.d',
    'add usr/share',
    'add usr/share/doc',
    'add usr/share/doc/new',
    'add usr/é',
  ]);
  const listed = diffUpper(upper, [lower], 'fuse-overlayfs');
  assert.deepEqual([...listed].sort(compareChanges), listed, 'in the order the tar writer sorts into');
  // Nothing changed below a copied-up directory: nothing emitted for it (a.b, usr/lib's copy-up).
  assert.ok(!seen.some((s) => s.startsWith('add a.b')));
});

/** What a fresh walk of `dir` (BuildContext.walk's way: names sorted as strings, each lstat'ed) reads, packed. */
function walkedListing(dir: string): PackedListing {
  const names = readdirSync(dir).sort();
  const stats = new Float64Array(names.length * LeanStats.PACKED);
  names.forEach((n, i) => new LeanStats(lstatSync(path.join(dir, n))).pack(stats, i));
  return { names, stats };
}

test(
  "upper dir diff hands on the listings of the directories the step made whole, each as a fresh walk reads it; none with a marker, a hard link, a name above U+FFFF, or anything of a lower layer's",
  { skip: needs(isRoot ? undefined : 'overlay markers need root (mknod, trusted xattrs): run the tests as root') },
  () => {
    const lower = tree({ 'etc/passwd': 'p', 'usr/lib/x': 'x', 'gone/old': 'o', 'opq/old': 'o' });
    const upper = tree({
      'out/pkg-1/lib/a.js': 'a',
      'out/pkg-1/lib/b.js': 'bb',
      'out/pkg-1/dist/c.js': 'c',
      'out/pkg-2/d.js': 'd',
      'out/empty': null,
      'out/xattrs/f': 'f',
      'out/wh/kept': 'k',
      'out/linked/one': '1',
      'out/wide/\u{1F600}': 'smile',
      'etc/new/made': 'm',
      'usr/lib/y': 'y',
      'opq/fresh/z': 'z',
    });
    symlinkSync('a.js', path.join(upper, 'out/pkg-1/lib/link'));
    // A user xattr on an entry (the tar carries it): the listing does not carry xattrs, a walk does not read them.
    xattr.setAttributeSync(path.join(upper, 'out/xattrs/f'), 'user.kiln', 'v');
    execFileSync('mknod', [path.join(upper, 'out/wh/gone'), 'c', '0', '0']);
    execFileSync('mknod', [path.join(upper, 'gone'), 'c', '0', '0']);
    linkSync(path.join(upper, 'out/linked/one'), path.join(upper, 'out/linked/two'));
    xattr.setAttributeSync(path.join(upper, 'opq'), 'trusted.overlay.opaque', 'y');
    nativeFs(); // loaded, as a RUN of many files has it: its small directories are read with it too
    const handed = new Map<string, PackedListing>();
    const changes = [...upperChanges(upper, [lower], 'overlay', { onListing: (rel, l) => void handed.set(rel, l) })];
    assert.deepEqual([...handed.keys()].sort(), [
      'etc/new',
      'out',
      'out/empty',
      'out/pkg-1',
      'out/pkg-1/dist',
      'out/pkg-1/lib',
      'out/pkg-2',
      'out/xattrs',
    ]);
    for (const [rel, l] of handed) {
      const walked = walkedListing(path.join(upper, rel));
      assert.deepEqual(l.names, walked.names, rel);
      assert.deepEqual([...l.stats], [...walked.stats], rel);
    }
    // The changes are the same as without the native helper's listings (and no xattrs are read
    // again where it found none).
    const noXattrs = changes.filter((c) => c.noXattrs).map((c) => c.path);
    assert.ok(noXattrs.includes('out/pkg-1/lib/a.js'));
    assert.ok(!noXattrs.includes('out/xattrs/f'));
    assert.ok(!noXattrs.includes('opq'));
    useNativeFs(false);
    try {
      const slow: Change[] = [];
      const none = new Map<string, PackedListing>();
      for (const c of upperChanges(upper, [lower], 'overlay', { onListing: (rel, l) => void none.set(rel, l) }))
        slow.push(c);
      assert.deepEqual(
        slow.map((c) => `${c.kind} ${c.path}`),
        changes.map((c) => `${c.kind} ${c.path}`),
      );
      const fields = (c: Change) => c.stats && { ...c.stats };
      assert.deepEqual(slow.map(fields), changes.map(fields));
      assert.equal(none.size, 0, 'only what the native helper read in one call is handed on');
    } finally {
      useNativeFs(true);
    }
  },
);

test(
  'a RUN overlay mounts volatile where the kernel takes it; a kernel that refuses it gets the mount without it, and is not asked again in this process',
  { skip: needs(isRoot ? undefined : 'overlay mounts need root: run the tests as root') },
  async () => {
    const d = mkdtempSync(path.join(tmp, 'volatile-'));
    for (const s of ['lower', 'upper', 'work', 'merged', 'work2', 'upper2']) mkdirSync(path.join(d, s));
    writeFileSync(path.join(d, 'lower', 'f'), 'lower');
    const mountinfo = () =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === path.join(d, 'merged'))
        ?.split(' - ')[1];
    // The real mount(8) of a real overlay; `refuse` makes the kernel refuse `volatile` as a kernel
    // before 5.10 does (an unknown option: EINVAL, mount's "wrong fs type, bad option…").
    const tried: string[] = [];
    const attempt = (upper: string, work: string, refuse: boolean) => async (opts: string) => {
      tried.push(opts);
      const o = refuse ? opts.replace(',volatile', ',volatile_refused_here') : opts;
      return execMount([
        '-t',
        'overlay',
        'overlay',
        '-o',
        `lowerdir=${d}/lower,upperdir=${upper},workdir=${work}${o}`,
        `${d}/merged`,
      ]);
    };
    forgetVolatileRefusal();
    try {
      let r = await mountWithFallback(attempt(`${d}/upper`, `${d}/work`, false), true);
      assert.equal(r.code, 0, r.stderr);
      assert.match(mountinfo() ?? '', VOLATILE, 'mounted volatile');
      assert.equal(tried.length, 1);
      await unmount(`${d}/merged`);
      // overlayfs' rule: the volatile work dir marks its pair (work/incompat/volatile).
      assert.ok(
        existsSync(path.join(d, 'work', 'work', 'incompat', 'volatile')) ||
          existsSync(path.join(d, 'work', 'incompat', 'volatile')),
      );

      tried.length = 0;
      r = await mountWithFallback(attempt(`${d}/upper2`, `${d}/work2`, true), true);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(mountinfo() ?? '', VOLATILE);
      assert.equal(readFileSync(path.join(d, 'merged', 'f'), 'utf8'), 'lower');
      assert.deepEqual(
        tried.map((o) => o.includes('volatile')),
        [true, false],
        'refused with volatile, mounted without',
      );
      assert.equal(overlayVolatile(), false, 'the refusal is remembered');
      await unmount(`${d}/merged`);
      tried.length = 0;
      rmSync(path.join(d, 'work2'), { recursive: true, force: true });
      mkdirSync(path.join(d, 'work2'));
      r = await mountWithFallback(attempt(`${d}/upper2`, `${d}/work2`, true), true);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        tried.map((o) => o.includes('volatile')),
        [false],
        'not asked again',
      );
      await unmount(`${d}/merged`);
      // A read-only view (no upper) never asks for it.
      forgetVolatileRefusal();
      tried.length = 0;
      r = await mountWithFallback(async (opts) => {
        tried.push(opts);
        return execMount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${d}/lower:${d}/upper${opts}`, `${d}/merged`]);
      }, false);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!tried.some((o) => o.includes('volatile')));
      await unmount(`${d}/merged`);
    } finally {
      forgetVolatileRefusal();
      await unmount(`${d}/merged`).catch(() => undefined);
    }
  },
);

/** overlayfs' volatile in a mount's super options (6.x kernels show it as fsync=volatile). */
const VOLATILE = /,(fsync=)?volatile(,|$)/;

function execMount(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return Promise.resolve({ code: 0, stderr: '' });
  } catch (e) {
    const err = e as { status?: number; stderr?: Buffer };
    return Promise.resolve({ code: err.status ?? 1, stderr: err.stderr?.toString() ?? '' });
  }
}
