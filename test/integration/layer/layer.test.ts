import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  createReadStream,
  createWriteStream,
  mkdtempSync,
  promises as fsp,
  rmSync,
  writeFileSync,
  mkdirSync,
  symlinkSync,
  linkSync,
  existsSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, PassThrough } from 'node:stream';
import { applyLayer, encodeLayer, tarChanges, tarDirectory } from '../../../src/layer/index.js';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from '../../../src/layer/tarformat.js';
import { KilnError } from '../../../src/util/errors.js';
import { needs } from '../../helpers/prereq.js';

const require = createRequire(import.meta.url);
const xattr = require('fs-xattr') as {
  setAttributeSync(p: string, n: string, v: Buffer | string): void;
  getAttributeSync(p: string, n: string): Buffer;
};
const root = process.getuid?.() === 0;
const skip = needs(
  root ? false : 'layer round trips need root (ownership, device nodes, trusted xattrs): run the tests as root',
);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-layer-'));
after(() => rmSync(work, { recursive: true, force: true }));

function makeTree(dir: string): void {
  mkdirSync(path.join(dir, 'etc/app'), { recursive: true });
  writeFileSync(path.join(dir, 'etc/app/conf'), 'a=1\n');
  writeFileSync(path.join(dir, 'bin-tool'), Buffer.alloc(300000, 7), { mode: 0o4755 });
  linkSync(path.join(dir, 'bin-tool'), path.join(dir, 'etc/hardlinked'));
  symlinkSync('../bin-tool', path.join(dir, 'etc/app/link'));
  spawnSync('mknod', [path.join(dir, 'null'), 'c', '1', '3']);
  spawnSync('mkfifo', [path.join(dir, 'pipe')]);
  spawnSync('chown', ['-h', '1234:5678', path.join(dir, 'etc/app/conf'), path.join(dir, 'etc/app/link')]);
  xattr.setAttributeSync(
    path.join(dir, 'bin-tool'),
    'security.capability',
    Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  );
  xattr.setAttributeSync(path.join(dir, 'etc/app/conf'), 'user.note', 'hi');
  for (const p of ['etc/app/conf', 'bin-tool', 'etc/app', 'etc', 'null', 'pipe'])
    spawnSync('touch', ['-h', '-d', '@1600000000', path.join(dir, p)]);
}

/** path type mode uid gid size mtime link content-hash xattrs — what must survive a round trip. */
function describe(dir: string): string {
  const r = spawnSync('sh', ['-c', `cd "${dir}" && find . -mindepth 1 -printf '%p %y %m %U %G %s %T@ %l\\n' | sort`]);
  const lines = r.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.replace(/(\d+)\.\d+ /, '$1 '));
  const sums = spawnSync('sh', [
    '-c',
    `cd "${dir}" && find . -type f -exec sha256sum {} + | sort -k2`,
  ]).stdout.toString();
  const x = spawnSync('sh', [
    '-c',
    `cd "${dir}" && getfattr -R -d -m - -e hex --absolute-names . 2>/dev/null || true`,
  ]).stdout.toString();
  return `${lines.join('\n')}\n${sums}\n${x}`;
}

async function encodeToFile(tar: Readable, file: string, compression: 'gzip' | 'zstd' | 'none' = 'gzip') {
  return encodeLayer(tar, createWriteStream(file), { compression });
}

test(
  'directory → layer → applied tree is identical (modes, owners, links, devices, xattrs, mtimes)',
  { skip },
  async () => {
    const src = path.join(work, 'src');
    makeTree(src);
    const blob = path.join(work, 'l.tgz');
    const info = await encodeToFile(tarDirectory(src), blob);
    assert.match(info.diffId, /^sha256:/);
    assert.equal(spawnSync('gzip', ['-t', blob]).status, 0, 'gzip accepts the parallel members');
    const listing = spawnSync('tar', ['-tzvf', blob]).stdout.toString();
    assert.match(listing, /etc\/hardlinked link to bin-tool/);
    const dst = path.join(work, 'dst');
    const r = await applyLayer(createReadStream(blob), dst, { whiteouts: 'apply', expectedDiffId: info.diffId });
    assert.equal(r.diffId, info.diffId);
    assert.equal(describe(dst), describe(src));
    assert.equal(
      (await fsp.stat(path.join(dst, 'bin-tool'))).ino,
      (await fsp.stat(path.join(dst, 'etc/hardlinked'))).ino,
      'hard link kept',
    );
    assert.deepEqual(
      xattr.getAttributeSync(path.join(dst, 'bin-tool'), 'security.capability'),
      xattr.getAttributeSync(path.join(src, 'bin-tool'), 'security.capability'),
    );
    assert.equal(xattr.getAttributeSync(path.join(dst, 'etc/app/conf'), 'user.note').toString(), 'hi');
  },
);

test(
  'deterministic: the same tree twice gives the same digests; SOURCE_DATE_EPOCH clamps mtimes',
  { skip },
  async () => {
    const src = path.join(work, 'det');
    mkdirSync(path.join(src, 'd'), { recursive: true });
    writeFileSync(path.join(src, 'd/f'), 'x');
    const a = await encodeToFile(tarDirectory(src), path.join(work, 'a.tgz'));
    const b = await encodeToFile(tarDirectory(src), path.join(work, 'b.tgz'));
    assert.deepEqual(a, b);
    spawnSync('touch', [path.join(src, 'd/f')]);
    const c = await encodeToFile(tarDirectory(src, { sourceDateEpoch: 1000 }), path.join(work, 'c.tgz'));
    spawnSync('touch', ['-d', '@1700000000', path.join(src, 'd/f')]);
    const d = await encodeToFile(tarDirectory(src, { sourceDateEpoch: 1000 }), path.join(work, 'd.tgz'));
    assert.equal(c.diffId, d.diffId, 'mtimes above the epoch are pinned');
    const list = spawnSync('tar', ['-tzvf', path.join(work, 'c.tgz'), '--full-time']).stdout.toString();
    assert.match(list, /1970-01-01 00:16:40/);
  },
);

test('zstd and uncompressed layers; zstd decompresses with the zstd tool and applies', { skip }, async () => {
  const src = path.join(work, 'z');
  mkdirSync(src);
  writeFileSync(path.join(src, 'f'), 'zstd content\n'.repeat(1000));
  const z = await encodeToFile(tarDirectory(src), path.join(work, 'l.zst'), 'zstd');
  assert.equal(z.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.equal(spawnSync('zstd', ['-t', path.join(work, 'l.zst')]).status, 0);
  const plain = await encodeToFile(tarDirectory(src), path.join(work, 'l.tar'), 'none');
  assert.equal(plain.diffId, z.diffId);
  assert.equal(plain.digest, plain.diffId);
  const out = path.join(work, 'zout');
  await applyLayer(createReadStream(path.join(work, 'l.zst')), out, { whiteouts: 'apply', expectedDiffId: z.diffId });
  assert.equal((await fsp.readFile(path.join(out, 'f'), 'utf8')).length, 13000);
});

test('whiteouts: applied as deletions (flatten) or as overlay markers', { skip }, async () => {
  const upper = path.join(work, 'changes');
  mkdirSync(path.join(upper, 'keep/sub'), { recursive: true });
  mkdirSync(path.join(upper, 'opaque'), { recursive: true });
  writeFileSync(path.join(upper, 'opaque/new'), 'n');
  writeFileSync(path.join(upper, 'keep/sub/added'), 'a');
  const layer = path.join(work, 'wh.tgz');
  await encodeToFile(
    tarChanges(upper, [
      { kind: 'delete', path: 'gone' },
      { kind: 'add', path: 'keep' },
      { kind: 'add', path: 'keep/sub' },
      { kind: 'add', path: 'keep/sub/added' },
      { kind: 'add', path: 'opaque' },
      { kind: 'opaque', path: 'opaque' },
      { kind: 'add', path: 'opaque/new' },
    ]),
    layer,
  );
  const names = spawnSync('tar', ['-tzf', layer]).stdout.toString().trim().split('\n');
  assert.ok(names.includes('.wh.gone'));
  assert.ok(names.includes('opaque/.wh..wh..opq'));
  // flatten onto a lower tree
  const flat = path.join(work, 'flat');
  mkdirSync(path.join(flat, 'opaque'), { recursive: true });
  writeFileSync(path.join(flat, 'gone'), 'g');
  writeFileSync(path.join(flat, 'opaque/old'), 'o');
  await applyLayer(createReadStream(layer), flat, { whiteouts: 'apply' });
  assert.equal(existsSync(path.join(flat, 'gone')), false);
  assert.equal(existsSync(path.join(flat, 'opaque/old')), false, 'opaque dir hides the lower content');
  assert.equal(existsSync(path.join(flat, 'opaque/new')), true, "the layer's own entries stay");
  assert.equal(existsSync(path.join(flat, 'keep/sub/added')), true);
  // overlay form
  const ov = path.join(work, 'ov');
  await applyLayer(createReadStream(layer), ov, { whiteouts: 'overlay' });
  const st = await fsp.lstat(path.join(ov, 'gone'));
  assert.ok(st.isCharacterDevice() && st.rdev === 0, 'a deleted file is a 0/0 character device');
  assert.equal(xattr.getAttributeSync(path.join(ov, 'opaque'), 'trusted.overlay.opaque').toString(), 'y');
});

test(
  'a partial unpack (only): the wanted paths and their parents, whiteouts of them, the diff_id still checked',
  { skip },
  async () => {
    const upper = path.join(work, 'partial-src');
    mkdirSync(path.join(upper, 'app/node_modules/a'), { recursive: true });
    mkdirSync(path.join(upper, 'etc'), { recursive: true });
    writeFileSync(path.join(upper, 'app/node_modules/a/index.js'), 'x');
    writeFileSync(path.join(upper, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    writeFileSync(path.join(upper, 'a-big'), Buffer.alloc(100000, 1));
    linkSync(path.join(upper, 'a-big'), path.join(upper, 'app/big-link'));
    const layer = path.join(work, 'partial.tgz');
    const info = await encodeToFile(
      tarChanges(upper, [
        { kind: 'add', path: 'a-big' },
        { kind: 'add', path: 'app' },
        { kind: 'add', path: 'app/big-link' },
        { kind: 'add', path: 'app/node_modules' },
        { kind: 'add', path: 'app/node_modules/a' },
        { kind: 'add', path: 'app/node_modules/a/index.js' },
        { kind: 'add', path: 'etc' },
        { kind: 'add', path: 'etc/passwd' },
        { kind: 'delete', path: 'opt' },
        { kind: 'delete', path: 'srv' },
      ]),
      layer,
    );
    const out = path.join(work, 'partial-out');
    const wanted = ['app/node_modules', 'app/big-link', 'etc/passwd', 'opt/x'];
    await applyLayer(createReadStream(layer), out, {
      whiteouts: 'overlay',
      expectedDiffId: info.diffId,
      only: (rel) => wanted.some((w) => w === rel || w.startsWith(`${rel}/`)),
    });
    assert.ok((await fsp.lstat(path.join(out, 'app/node_modules'))).isDirectory());
    assert.equal(existsSync(path.join(out, 'app/node_modules/a')), false, 'below a wanted path: left out');
    assert.equal(existsSync(path.join(out, 'a-big')), false);
    const link = await fsp.lstat(path.join(out, 'app/big-link'));
    assert.ok(link.isFile() && link.size === 0, 'a hard link whose target was left out: an empty file');
    assert.equal((await fsp.readFile(path.join(out, 'etc/passwd'), 'utf8')).slice(0, 4), 'root');
    assert.ok((await fsp.lstat(path.join(out, 'opt'))).isCharacterDevice(), "a wanted path's whiteout");
    assert.equal(existsSync(path.join(out, 'srv')), false, 'other whiteouts: left out');
    await assert.rejects(
      applyLayer(createReadStream(layer), path.join(work, 'partial-bad'), {
        whiteouts: 'overlay',
        expectedDiffId: `sha256:${'0'.repeat(64)}`,
        only: () => false,
      }),
      /does not match its diff_id/,
    );
  },
);

test('into an empty directory: a path the tar names twice ends as its last entry', { skip }, async () => {
  const out = path.join(work, 'twice');
  await applyLayer(
    hostileTar([
      { ...H, name: 'd/', type: 'directory', mode: 0o755 },
      { ...H, name: 'd/f', type: 'file', data: 'first' },
      { ...H, name: 'd/f', type: 'file', data: 'second' },
      { ...H, name: 'd/sub/file', type: 'file', data: 'deep' },
      { ...H, name: 'd/sub/', type: 'directory', mode: 0o700 },
      { ...H, name: 'l', type: 'symlink', linkname: 'd' },
      { ...H, name: 'l', type: 'file', data: 'not a link' },
    ]),
    out,
    { whiteouts: 'overlay', uncompressed: true },
  );
  assert.equal(await fsp.readFile(path.join(out, 'd/f'), 'utf8'), 'second');
  assert.equal(await fsp.readFile(path.join(out, 'd/sub/file'), 'utf8'), 'deep');
  assert.equal(
    (await fsp.stat(path.join(out, 'd/sub'))).mode & 0o777,
    0o700,
    'a directory made as a parent takes its own entry later',
  );
  assert.equal(
    await fsp.readFile(path.join(out, 'l'), 'utf8'),
    'not a link',
    'the file replaced the symlink (not written through it)',
  );
  assert.ok(!existsSync(path.join(out, 'd/not a link')));
});

function hostileTar(entries: (TarHeader & { data?: string })[]): Readable {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    parts.push(encodeHeader({ ...e, size: e.type === 'file' ? data.length : 0 }));
    if (e.type === 'file') parts.push(data, padding(data.length));
  }
  parts.push(END_OF_ARCHIVE);
  return Readable.from([Buffer.concat(parts)]);
}
const H = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 };

test('hostile tars are refused and nothing is written outside the root', { skip }, async () => {
  const outside = path.join(work, 'outside');
  mkdirSync(outside, { recursive: true });
  const cases: [string, (TarHeader & { data?: string })[]][] = [
    ['dot-dot', [{ ...H, name: '../outside/evil', type: 'file', data: 'x' }]],
    ['absolute', [{ ...H, name: `${outside}/evil`, type: 'file', data: 'x' }]],
    [
      'symlink planted then written through',
      [
        { ...H, name: 'link', type: 'symlink', linkname: outside },
        { ...H, name: 'link/evil', type: 'file', data: 'x' },
      ],
    ],
    [
      'symlink to a parent via relative path',
      [
        { ...H, name: 'up', type: 'symlink', linkname: '../../..' },
        { ...H, name: 'up/tmp/evil', type: 'file', data: 'x' },
      ],
    ],
    ['hard link to a file outside', [{ ...H, name: 'hl', type: 'hardlink', linkname: '../outside/target' }]],
    [
      'hard link through a planted symlink',
      [
        { ...H, name: 's', type: 'symlink', linkname: outside },
        { ...H, name: 'hl', type: 'hardlink', linkname: 's/target' },
      ],
    ],
    ['whiteout with ..', [{ ...H, name: 'a/.wh...', type: 'file' }]],
  ];
  writeFileSync(path.join(outside, 'target'), 'secret');
  for (const [what, entries] of cases) {
    const dst = mkdtempSync(path.join(work, 'hostile-'));
    await assert.rejects(
      applyLayer(hostileTar(entries), dst, { whiteouts: 'apply', uncompressed: true }),
      (e: unknown) => e instanceof KilnError && e.code === 'UNSAFE',
      what,
    );
    assert.deepEqual((await fsp.readdir(outside)).sort(), ['target'], `${what}: nothing written outside`);
    assert.equal(await fsp.readFile(path.join(outside, 'target'), 'utf8'), 'secret');
  }
  // a digest mismatch is refused too
  const dst = mkdtempSync(path.join(work, 'digest-'));
  await assert.rejects(
    applyLayer(hostileTar([{ ...H, name: 'ok', type: 'file', data: 'x' }]), dst, {
      whiteouts: 'apply',
      uncompressed: true,
      expectedDiffId: `sha256:${'0'.repeat(64)}`,
    }),
    /does not match its diff_id/,
  );
  void PassThrough;
});
