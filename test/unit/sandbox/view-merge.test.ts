import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { mergeWanted } from '../../../src/sandbox/view.js';
import { mountOverlay, unmount } from '../../../src/sandbox/rootfs.js';
import { needs } from '../../helpers/prereq.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as { setAttributeSync(p: string, n: string, v: string): void };
const isRoot = process.getuid?.() === 0;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-view-merge-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

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

/** What a path is in a root: type, mode, owner, mtime, link target or content ('-' when absent). */
function describe(root: string, rel: string): string {
  const p = path.join(root, rel);
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return `${rel}: -`;
  }
  const what = st.isDirectory()
    ? 'dir'
    : st.isSymbolicLink()
      ? `link ${readlinkSync(p)}`
      : st.isFile()
        ? `file ${readFileSync(p, 'utf8')}`
        : 'other';
  const mtime = st.isSymbolicLink() ? '' : ` t${Math.floor(st.mtimeMs / 1000)}`;
  return `${rel}: ${what} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${mtime}`;
}

test(
  "a partial view merged without a mount shows the wanted paths as overlayfs' mount does",
  { skip: needs(isRoot ? undefined : 'overlay mounts and markers need root: run the tests as root') },
  async () => {
    const l0 = layer('l0', [
      ['etc/passwd', 'root:x:0:0::/root:/bin/sh\n'],
      ['etc/group', 'root:x:0:\n'],
      ['app/old/file', 'old'],
      ['opt/a/b/c', 'c'],
      ['lnk', { link: 'app' }],
      ['data/x', 'x'],
      ['usr/lib/y', 'y'],
      ['srv/dir/f', 'f'],
      ['keep/sub/k', 'k'],
    ]);
    chmodSync(path.join(l0, 'app'), 0o750);
    chownSync(path.join(l0, 'app'), 3, 4);
    const l1 = layer('l1', [
      ['etc/passwd', 'root:x:0:0::/root:/bin/sh\nu:x:5:5::/:/bin/sh\n'],
      ['app/n', 'n'],
      ['data', 'whiteout'],
      ['opt/a', 'now a file'],
      ['srv/dir/g', 'g'],
      ['keep/sub/k2', 'k2'],
    ]);
    chmodSync(path.join(l1, 'app'), 0o711);
    chownSync(path.join(l1, 'app'), 1, 2);
    xattr.setAttributeSync(path.join(l1, 'srv/dir'), 'trusted.overlay.opaque', 'y');
    const l2 = layer('l2', [
      ['data/new', 'new'],
      ['app/old', 'whiteout'],
      ['usr/lib/z', 'z'],
    ]);
    xattr.setAttributeSync(path.join(l2, 'data'), 'trusted.overlay.opaque', 'y');
    for (const [i, l] of [l0, l1, l2].entries())
      for (const d of ['app', 'etc', 'srv/dir', 'keep', 'keep/sub', 'usr/lib'])
        try {
          utimesSync(path.join(l, d), 1_000_000 + i * 1000 + d.length, 1_000_000 + i * 1000 + d.length);
        } catch {
          // not in this layer
        }
    const wanted = [
      'app/old/file',
      'app/n',
      'etc/passwd',
      'etc/group',
      'data/x',
      'data/new',
      'opt/a/b/c',
      'srv/dir/f',
      'srv/dir/g',
      'lnk/n',
      'usr/lib/y',
      'keep/sub/k',
      'nothere/x',
    ];
    const rels = [...new Set(wanted.flatMap((w) => w.split('/').map((_, i, a) => a.slice(0, i + 1).join('/'))))];

    const runDir = mkdtempSync(path.join(tmp, 'mount-'));
    const merged = path.join(runDir, 'rootfs');
    mkdirSync(merged);
    mkdirSync(path.join(runDir, 'empty'));
    await mountOverlay([path.join(runDir, 'empty'), l0, l1, l2], runDir, '', '', merged);
    let expected: string[];
    try {
      expected = rels.map((r) => describe(merged, r));
    } finally {
      await unmount(merged);
    }
    const root = mkdtempSync(path.join(tmp, 'merged-'));
    mergeWanted([l2, l1, l0], root, wanted);
    assert.deepEqual(
      rels.map((r) => describe(root, r)),
      expected,
    );
    // The cases the layers were made for, as the mount shows them.
    assert.ok(expected.includes('app/old: -'), 'a whiteout hides a directory');
    assert.ok(expected.includes('data/x: -'), 'an opaque directory hides what lay below');
    assert.ok(expected.includes('srv/dir/f: -'));
    assert.ok(expected.includes('opt/a/b: -'), 'a file hides the directory below it');
    // app is in every layer: l2's (made for its whiteout: 755 root), not l1's 711 1:2 or l0's.
    assert.ok(expected.includes(`app: dir 755 0:0 t${1_000_000 + 2000 + 3}`), "the topmost directory's metadata");
    assert.ok(expected.includes(`keep/sub: dir 755 0:0 t${1_000_000 + 1000 + 8}`));
  },
);
