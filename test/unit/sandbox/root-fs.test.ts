/**
 * layeredFs (a COPY's or WORKDIR's destination read from the layers, no mount) against the kernel's
 * overlay mount of the same layer dirs: every answer a destination asks for (lstat, a link's target,
 * a file's text, a path resolved through links) and planCopy's layer entries and errors, the same.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { dirFs, layeredFs, resolveInFs, type RootFs } from '../../../src/sandbox/root-fs.js';
import { resolveInRoot } from '../../../src/sandbox/view.js';
import { mountOverlay, unmount } from '../../../src/sandbox/rootfs.js';
import { planCopy, parentEntries, type CopyRequest } from '../../../src/engine/copy.js';
import { BuildContext } from '../../../src/context/index.js';
import { type EntrySpec } from '../../../src/layer/index.js';
import { resolveChown } from '../../../src/util/index.js';
import { needs } from '../../helpers/prereq.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as { setAttributeSync(p: string, n: string, v: string): void };
const isRoot = process.getuid?.() === 0;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-root-fs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const rootOnly = { skip: needs(isRoot ? undefined : 'overlay mounts and markers need root: run the tests as root') };

/** A layer dir: null a directory, a string a file, {link} a symbolic link, 'whiteout' a 0/0 device. */
function layer(name: string, entries: [string, string | null | { link: string } | 'whiteout'][]): string {
  const root = path.join(tmp, name);
  mkdirSync(root, { recursive: true });
  for (const [rel, e] of entries) {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    if (e === null) mkdirSync(p, { recursive: true });
    else if (e === 'whiteout') execFileSync('mknod', [p, 'c', '0', '0']);
    else if (typeof e === 'object') symlinkSync(e.link, p);
    else writeFileSync(p, e);
  }
  return root;
}

/** Three layers with every case a destination meets: whiteouts, opaque dirs, links in and out, a file on the way. */
function layers(): string[] {
  const set = path.basename(mkdtempSync(path.join(tmp, 'layers-')));
  const l0 = layer(`${set}/l0`, [
    ['etc/passwd', 'root:x:0:0::/root:/bin/sh\n'],
    ['etc/group', 'root:x:0:\n'],
    ['app/old/file', 'old'],
    ['opt/a/b/c', 'c'],
    ['lnk', { link: 'app' }],
    ['data/x', 'x'],
    ['usr/lib/y', 'y'],
    ['srv/dir/f', 'f'],
    ['keep/sub/k', 'k'],
    ['out', { link: '../../../../usr/lib' }],
    ['abs', { link: '/srv/dir' }],
    ['loop', { link: 'loop2' }],
    ['loop2', { link: 'loop' }],
    ['afile', 'a file'],
    ['gone/sub', null],
  ]);
  chmodSync(path.join(l0, 'app'), 0o750);
  chownSync(path.join(l0, 'app'), 3, 4);
  const l1 = layer(`${set}/l1`, [
    ['etc/passwd', 'root:x:0:0::/root:/bin/sh\nu:x:5:6::/:/bin/sh\n'],
    ['etc/group', 'root:x:0:\ng:x:7:\n'],
    ['app/n', 'n'],
    ['data', 'whiteout'],
    ['opt/a', 'now a file'],
    ['srv/dir/g', 'g'],
    ['keep/sub/k2', 'k2'],
    ['gone', 'whiteout'],
  ]);
  chmodSync(path.join(l1, 'app'), 0o711);
  chownSync(path.join(l1, 'app'), 1, 2);
  chownSync(path.join(l1, 'keep/sub'), 9, 9);
  xattr.setAttributeSync(path.join(l1, 'srv/dir'), 'trusted.overlay.opaque', 'y');
  const l2 = layer(`${set}/l2`, [
    ['data/new', 'new'],
    ['app/old', 'whiteout'],
    ['usr/lib/z', 'z'],
    ['wlink', { link: 'keep/sub' }],
  ]);
  xattr.setAttributeSync(path.join(l2, 'data'), 'trusted.overlay.opaque', 'y');
  for (const [i, l] of [l0, l1, l2].entries())
    for (const d of ['app', 'etc', 'srv/dir', 'keep', 'keep/sub', 'usr/lib', 'data'])
      try {
        utimesSync(path.join(l, d), 1_000_000 + i * 1000 + d.length, 1_000_000 + i * 1000 + d.length);
      } catch {
        // not in this layer
      }
  return [l0, l1, l2];
}

const rels = [
  'app',
  'app/old',
  'app/old/file',
  'app/n',
  'etc',
  'etc/passwd',
  'data',
  'data/x',
  'data/new',
  'opt/a',
  'opt/a/b',
  'srv/dir',
  'srv/dir/f',
  'srv/dir/g',
  'lnk',
  'usr/lib/y',
  'usr/lib/z',
  'keep/sub',
  'keep/sub/k',
  'out',
  'abs',
  'gone',
  'gone/sub',
  'afile',
  'afile/x',
  'nothere/x',
  'wlink',
];

/** What lstat says of a path in a RootFs: type, mode, owner, mtime, a link's target ('-' when absent). */
function describe(fs: RootFs, rel: string): string {
  const st = fs.lstat(rel);
  if (!st) return `${rel}: -`;
  const what = st.isDirectory()
    ? 'dir'
    : st.isSymbolicLink()
      ? `link ${fs.readlink(rel)}`
      : st.isFile()
        ? `file ${fs.readImageFile(`/${rel}`)}`
        : 'other';
  const mtime = st.isSymbolicLink() ? '' : ` t${Math.floor(st.mtimeMs / 1000)}`;
  return `${rel}: ${what} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${mtime}`;
}

/** `f` run on the overlay mount of `lower` (bottom first), as a RootFs. */
async function onMount<T>(lower: string[], f: (root: string) => Promise<T>): Promise<T> {
  const runDir = mkdtempSync(path.join(tmp, 'mount-'));
  const merged = path.join(runDir, 'rootfs');
  mkdirSync(merged);
  mkdirSync(path.join(runDir, 'empty'));
  await mountOverlay([path.join(runDir, 'empty'), ...lower], runDir, '', '', merged);
  try {
    return await f(merged);
  } finally {
    await unmount(merged);
  }
}

const resolved = [
  '/lnk/n',
  '/lnk/../etc/passwd',
  '/out/z',
  '/abs/g',
  '/wlink/k2',
  '/afile/x',
  '/data/new',
  '/app/old/file',
  '/gone/sub/x',
  '/nothere/a/b',
  '/srv/dir/../../keep',
];

test('layeredFs: lstat, links, file text and paths resolved as the overlay mount shows them', rootOnly, async () => {
  const lower = layers();
  const expected = await onMount(lower, async (root) => ({
    described: rels.map((r) => describe(dirFs(root), r)),
    resolved: await Promise.all(resolved.map((p) => resolveInRoot(root, p))),
    loop: await resolveInRoot(root, '/loop/x').catch((e: Error) => e.message),
    passwd: dirFs(root).readImageFile('/lnk/../etc/passwd'),
  }));
  const fs = layeredFs([...lower].reverse());
  assert.deepEqual(
    rels.map((r) => describe(fs, r)),
    expected.described,
  );
  assert.deepEqual(
    resolved.map((p) => resolveInFs(fs, p)),
    expected.resolved,
  );
  assert.throws(() => resolveInFs(fs, '/loop/x'), { message: expected.loop });
  assert.equal(fs.readImageFile('/lnk/../etc/passwd'), expected.passwd);
  // The cases the layers were made for, as the mount shows them.
  assert.ok(expected.described.includes('app/old: -'), 'a whiteout hides a directory');
  assert.ok(expected.described.includes('data/x: -'), 'an opaque directory hides what lay below');
  assert.ok(expected.described.includes('opt/a/b: -'), 'a file hides the directory below it');
  assert.ok(expected.described.includes('gone: -'), 'a whiteout hides a directory');
  assert.ok(expected.described.includes(`app: dir 755 0:0 t${1_000_000 + 2000 + 3}`), "the topmost directory's");
  assert.equal(expected.resolved[2], 'usr/lib/z', 'a link up and out stays in the root');
  // owner names as the mount's files give them
  assert.deepEqual(resolveChown(fs, 'u:g'), { uid: 5, gid: 7 });
});

test('layeredFs with skeleton layers: as the same entries made in a layer dir', rootOnly, async () => {
  const [l0] = layers();
  // A layer kiln wrote: app (0700 5:5, t2000000), app/sub (a link to /keep), app/deep/er (2 levels, parents implied).
  const skeleton = [
    { path: 'app', type: 'directory' as const, mode: 0o700, uid: 5, gid: 5, mtime: 2_000_000 },
    { path: 'app/sub', type: 'symlink' as const, mode: 0o777, uid: 0, gid: 0, mtime: 2_000_000, linkname: '/keep' },
  ];
  const made = layer('sk', [
    ['app', null],
    ['app/sub', { link: '/keep' }],
  ]);
  chmodSync(path.join(made, 'app'), 0o700);
  chownSync(path.join(made, 'app'), 5, 5);
  utimesSync(path.join(made, 'app'), 2_000_000, 2_000_000);
  const expected = await onMount([l0!, made], async (root) => ({
    described: ['app', 'app/sub', 'app/old', 'keep/sub'].map((r) => describe(dirFs(root), r)),
    resolved: await resolveInRoot(root, '/app/sub/sub/k'),
  }));
  const fs = layeredFs([skeleton, l0!]);
  assert.deepEqual(
    ['app', 'app/sub', 'app/old', 'keep/sub'].map((r) => describe(fs, r)),
    expected.described,
  );
  assert.equal(resolveInFs(fs, '/app/sub/sub/k'), expected.resolved);
  // `only`: a path off the wanted ones is missing (a partial view's answer), its parents are not.
  const partial = layeredFs([skeleton, l0!], (rel) =>
    ['app', 'app/x'].some((w) => w === rel || w.startsWith(`${rel}/`)),
  );
  assert.equal(partial.lstat('app')?.isDirectory(), true);
  assert.equal(partial.lstat('keep'), undefined);
});

/** planCopy's entries (or its error) with the destination read from `destRoot`. */
async function plan(destRoot: string | RootFs, dest: string, extra: Partial<CopyRequest> = {}): Promise<string[]> {
  const ctxDir = path.join(tmp, 'ctx');
  mkdirSync(path.join(ctxDir, 'dir/sub'), { recursive: true });
  writeFileSync(path.join(ctxDir, 'f'), 'f');
  writeFileSync(path.join(ctxDir, 'dir/sub/g'), 'g');
  // Fixed times: the context is rewritten for every call, and a second boundary between the view's
  // answers and the layered ones would show as a difference.
  for (const f of ['f', 'dir/sub/g', 'dir/sub', 'dir']) utimesSync(path.join(ctxDir, f), 3_000_000, 3_000_000);
  try {
    const entries = await planCopy({
      sources: [{ ctx: BuildContext.plain(ctxDir), pattern: extra.dest === undefined ? 'f' : 'dir' }],
      dest,
      workdir: '/app',
      destRoot,
      keepOwner: false,
      createdTime: 4_000_000,
      place: {},
      ...extra,
    });
    return entries.map(
      (e: EntrySpec) => `${e.type} ${e.path} ${e.mode.toString(8)} ${e.uid}:${e.gid} t${e.mtime} ${e.linkname ?? ''}`,
    );
  } catch (e) {
    return [`error: ${(e as Error).message}`];
  }
}

test('planCopy on layeredFs: the layer entries and errors a view of the same layers gives', rootOnly, async () => {
  const lower = layers();
  const cases: [string, Partial<CopyRequest>][] = [
    ['/afile/x', {}], // the parent is a file
    ['/afile', {}], // replaces a file
    ['/out/', {}], // through a link pointing outside: stays in the root
    ['/abs/new', {}], // through an absolute link
    ['/data/x', {}], // under an opaque dir: x is not there
    ['/app/old/file', {}], // a whiteout'd destination
    ['/gone/sub/f', {}], // a whiteout'd parent directory
    ['/keep/sub/', { owner: { uid: 7, gid: 8 }, chmod: 0o640 }], // --chown/--chmod into an existing dir
    ['/new/deep/', { owner: { uid: 7, gid: 8 }, chmod: 0o750 }], // made parents take --chmod
    ['/wlink/', {}], // a link to a directory
    ['/loop/x', {}], // a link loop
    ['.', {}], // the workdir (/app: whiteout'd old, merged n)
    ['/srv/dir/', { dest: 'dir' }], // a directory's contents into an opaque dir
  ];
  const viewAnswers = await onMount(lower, async (root) => {
    const out: string[][] = [];
    for (const [dest, extra] of cases) out.push(await plan(root, dest, extra));
    out.push(
      parentEntries(root, ['keep/sub/k/new', 'srv/dir/x/y'], { uid: 1, gid: 1 }, 5).map((e) => JSON.stringify(e)),
    );
    return out;
  });
  const fs = layeredFs([...lower].reverse());
  const layeredAnswers: string[][] = [];
  for (const [dest, extra] of cases) layeredAnswers.push(await plan(fs, dest, extra));
  layeredAnswers.push(
    parentEntries(fs, ['keep/sub/k/new', 'srv/dir/x/y'], { uid: 1, gid: 1 }, 5).map((e) => JSON.stringify(e)),
  );
  for (const [i, [dest]] of cases.entries()) assert.deepEqual(layeredAnswers[i], viewAnswers[i], `COPY to ${dest}`);
  assert.deepEqual(layeredAnswers.at(-1), viewAnswers.at(-1), 'parentEntries');
  // The answers are the cases' (the test would see a wrong merge).
  assert.match(viewAnswers[0]![0]!, /^file afile\/x|error/);
  assert.ok(
    viewAnswers[2]!.some((l) => l.startsWith('file usr/lib/f ')),
    'a link up and out: into the root',
  );
  assert.ok(viewAnswers[4]!.some((l) => l.startsWith('file data/x ')));
  assert.ok(
    viewAnswers[7]!.some((l) => l.startsWith('directory keep/sub 755 9:9')),
    'existing parent kept',
  );
});
