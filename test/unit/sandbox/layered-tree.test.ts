import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { layeredTree } from '../../../src/sandbox/layered-tree.js';
import { mountOverlay, unmount } from '../../../src/sandbox/rootfs.js';
import { needs } from '../../helpers/prereq.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as { setAttributeSync(p: string, n: string, v: string): void };
const isRoot = process.getuid?.() === 0;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-layered-tree-'));
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

/** A file's text and a directory's sorted names, read with fs calls (a mounted overlay) or the tree. */
function read(
  fs: { readFile(rel: string): string | undefined; readdir(rel: string): string[] },
  files: string[],
  dirs: string[],
): string[] {
  return [
    ...files.map((f) => `${f}: ${fs.readFile(f) ?? '-'}`),
    ...dirs.map((d) => {
      try {
        return `${d}/: ${fs.readdir(d).sort().join(' ')}`;
      } catch (e) {
        return `${d}/: ${(e as NodeJS.ErrnoException).code}`;
      }
    }),
  ];
}

test(
  "a tree read from layer dirs shows files and directories as overlayfs' mount of them does",
  { skip: needs(isRoot ? undefined : 'overlay mounts and markers need root: run the tests as root') },
  async () => {
    const l0 = layer('l0', [
      ['var/lib/dpkg/status', 'Package: a\n'],
      ['var/lib/dpkg/info/a.list', '/usr/bin/a\n'],
      ['var/lib/dpkg/info/gone.list', '/usr/bin/gone\n'],
      ['app/old/file', 'old'],
      ['data/x', 'x'],
      ['srv/dir/f', 'f'],
      ['opt/a/b', 'b'],
      ['usr/lib/python3/dist-packages/p-1.dist-info/RECORD', 'p/__init__.py,,\n'],
      ['lib', { link: 'usr/lib' }],
      ['abs', { link: '/usr/lib/python3' }],
      ['up', { link: '../../../data' }],
      ['loop', { link: 'loop' }],
    ]);
    const l1 = layer('l1', [
      ['var/lib/dpkg/info/b.list', '/usr/bin/b\n'],
      ['var/lib/dpkg/info/gone.list', 'whiteout'],
      ['var/lib/dpkg/status', 'Package: a\n\nPackage: b\n'],
      ['data', 'whiteout'],
      ['srv/dir/g', 'g'],
      ['opt/a', 'now a file'],
      ['usr/lib/python3/dist-packages/q-2.dist-info/RECORD', 'q.py,,\n'],
    ]);
    xattr.setAttributeSync(path.join(l1, 'srv/dir'), 'trusted.overlay.opaque', 'y');
    const l2 = layer('l2', [
      ['data/new', 'new'],
      ['app/old', 'whiteout'],
      ['app/node_modules/m/package.json', '{"name":"m"}'],
    ]);
    xattr.setAttributeSync(path.join(l2, 'data'), 'trusted.overlay.opaque', 'y');
    const files = [
      'var/lib/dpkg/status',
      'var/lib/dpkg/info/a.list',
      'var/lib/dpkg/info/b.list',
      'var/lib/dpkg/info/gone.list',
      'app/old/file',
      'data/x',
      'data/new',
      'srv/dir/f',
      'srv/dir/g',
      'opt/a',
      'opt/a/b',
      'lib/python3/dist-packages/q-2.dist-info/RECORD',
      'app/node_modules/m/package.json',
      'app',
      'loop/x',
      'nothere',
    ];
    const dirs = [
      '',
      'var/lib/dpkg/info',
      'app',
      'app/old',
      'data',
      'srv/dir',
      'opt/a',
      'lib/python3/dist-packages',
      'nothere',
    ];

    const runDir = mkdtempSync(path.join(tmp, 'mount-'));
    const merged = path.join(runDir, 'rootfs');
    mkdirSync(merged);
    mkdirSync(path.join(runDir, 'empty'));
    await mountOverlay([path.join(runDir, 'empty'), l0, l1, l2], runDir, '', '', merged);
    let expected: string[];
    try {
      expected = read(
        {
          readFile: (rel) => {
            try {
              return readFileSync(path.join(merged, rel), 'utf8');
            } catch {
              return undefined;
            }
          },
          readdir: (rel) => readdirSync(path.join(merged, rel)),
        },
        files,
        dirs,
      );
    } finally {
      await unmount(merged);
    }
    // Twice on one tree (the second from what it remembers), and on a fresh one listing first.
    const tree = layeredTree([l2, l1, l0]);
    assert.deepEqual(read(tree, files, dirs), expected);
    assert.deepEqual(read(tree, files, dirs), expected);
    assert.deepEqual(read(layeredTree([l2, l1, l0]), [], dirs), expected.slice(files.length));
    // The cases the layers were made for, as the mount shows them.
    assert.ok(expected.includes('var/lib/dpkg/info/gone.list: -'), 'a whiteout hides a file');
    assert.ok(expected.includes('var/lib/dpkg/info/: a.list b.list'), 'and leaves it out of its directory');
    assert.ok(expected.includes('data/: new'), 'an opaque directory hides what lay below');
    assert.ok(expected.includes('srv/dir/: g'));
    assert.ok(expected.includes('opt/a: now a file'), 'a file hides the directory below it');
    assert.ok(expected.includes('lib/python3/dist-packages/: p-1.dist-info q-2.dist-info'), 'links are followed');
    // An absolute link leads to the tree's own root (the mount's readers would leave it for the host's).
    assert.equal(tree.readFile('abs/dist-packages/p-1.dist-info/RECORD'), 'p/__init__.py,,\n');
    assert.deepEqual(tree.readdir('abs/dist-packages').sort(), ['p-1.dist-info', 'q-2.dist-info']);
    assert.equal(tree.readFile('up/new'), 'new', "a link's '..' stops at the root");
    assert.equal(tree.readFile('loop/x'), undefined);
  },
);

test('undpkgedPaths: a source directory only layers that left dpkg alone wrote in; not when one also changed dpkg', async () => {
  const { Store } = await import('../../../src/store/index.js');
  const { chainIds } = await import('../../../src/util/index.js');
  const { undpkgedPaths } = await import('../../../src/sandbox/layered-tree.js');
  const store = await Store.open({ root: path.join(tmp, 'store-undpkged') });
  const ids = ['a', 'b', 'c', 'd'].map((c) => `sha256:${c.repeat(64)}` as `sha256:${string}`);
  const dirs = chainIds(ids).map((c) => store.snapshotDir(c));
  const make = (i: number, rels: string[]) => {
    mkdirSync(dirs[i]!, { recursive: true });
    for (const r of rels) mkdirSync(path.join(dirs[i]!, r), { recursive: true });
  };
  // 0: a base (dpkg, /usr/src); 1: the app's files; 2: a package installed into /opt/pkg; 3: the app again.
  make(0, ['var/lib/dpkg/info', 'usr/src', 'usr/bin']);
  make(1, ['usr/src/app/sub']);
  make(2, ['var/lib/dpkg/info', 'opt/pkg/bin']);
  make(3, ['usr/src/app', 'opt/pkg']);
  writeFileSync(path.join(dirs[3]!, 'afile'), '');
  assert.deepEqual(
    undpkgedPaths(store, ids, ['/usr/src/app/', 'opt/pkg', '/usr/src', 'usr/bin', '/nothere', '/afile/x']),
    ['usr/src/app', 'nothere', 'afile/x'],
  );
  // A path a dpkg-changing layer holds (the base's /usr/src, layer 2's /opt/pkg) is searched.
  // A snapshot missing: nothing is said.
  rmSync(dirs[1]!, { recursive: true });
  assert.deepEqual(undpkgedPaths(store, ids, ['/usr/src/app']), []);
});
