/**
 * ADD of a local archive through kiln's safe applier: a hostile-archive corpus, each case with its
 * exact outcome — refused with a message naming the entry (nothing written outside the build), or
 * unpacked as docker's ADD unpacks it (hard links kept as links, devices kept, `.wh.` plain).
 */
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import * as path from 'node:path';
import { craftTar, type CraftEntry } from '../../helpers/craft-tar.js';
import { Workspace, savedImage } from './util.js';

const ws = new Workspace('kiln-add-archive-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const dockerfile = 'FROM scratch\nADD a.tar /dst/\n';

async function buildArchive(name: string, entries: CraftEntry[] | Buffer) {
  const tar = Buffer.isBuffer(entries) ? entries : craftTar(entries);
  const ctx = ws.context(`ctx-${name}`, { Dockerfile: dockerfile, 'a.tar': tar });
  const r = await ws.kiln(['build', '-q', '-t', `add/${name}:1`, ctx]);
  return { r, ctx };
}

/** What a refused archive must not have done: nothing beside the context, nothing in the store's tmp. */
function nothingOutside(ctx: string): void {
  for (const p of [path.join(ctx, '..', 'evil'), path.join(ctx, 'evil'), '/abs-evil', path.join(ws.dir, 'evil')])
    assert.ok(!existsSync(p), `${p} was written`);
  assert.deepEqual(readdirSync(path.join(ws.root, 'tmp')), [], 'no unpacked temp dir left');
}

describe('ADD of a hostile archive is refused, naming the entry', () => {
  const refused: [string, CraftEntry[], RegExp][] = [
    [
      'dotdot',
      [
        { name: 'ok', content: 'x' },
        { name: '../evil', content: 'x' },
      ],
      /ADD a\.tar: refusing archive entry "\.\.\/evil": path contains "\.\." that leaves the root/,
    ],
    [
      'deep-dotdot',
      [{ name: 'a/b/../../../evil', content: 'x' }],
      /refusing archive entry "a\/b\/\.\.\/\.\.\/\.\.\/evil"/,
    ],
    [
      'through-symlink',
      [
        { name: 'l', type: 'symlink', linkname: '/tmp' },
        { name: 'l/evil', content: 'x' },
      ],
      /refusing archive entry "l\/evil": its parent "l" is a symbolic link/,
    ],
    [
      'hardlink-out',
      [{ name: 'h', type: 'hardlink', linkname: '../../../../etc/passwd' }],
      /refusing archive entry "h": hard link target "\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd"/,
    ],
    [
      'hardlink-absolute',
      [{ name: 'h', type: 'hardlink', linkname: '/etc/passwd' }],
      /refusing archive entry "h": hard link target "etc\/passwd" does not exist/,
    ],
    [
      'hardlink-missing',
      [{ name: 'h', type: 'hardlink', linkname: 'nothing' }],
      /refusing archive entry "h": hard link target "nothing" does not exist/,
    ],
    [
      'hardlink-dir',
      [
        { name: 'd/', type: 'dir' },
        { name: 'h', type: 'hardlink', linkname: 'd' },
      ],
      /refusing archive entry "h": hard link to a directory/,
    ],
    [
      'pax-huge',
      [{ name: 'p', content: 'x', pax: { comment: 'c'.repeat(2 << 20) } }],
      /ADD a\.tar: tar PAX header of \d+ bytes refused/,
    ],
    [
      'symlink-dir-then-file',
      [
        { name: 'd', type: 'symlink', linkname: '../../..' },
        { name: 'd/evil', content: 'x' },
      ],
      /refusing archive entry "d\/evil": its parent "d" is a symbolic link/,
    ],
    [
      'hardlink-via-symlink',
      [
        { name: 's', type: 'symlink', linkname: '/etc' },
        { name: 'h', type: 'hardlink', linkname: 's/passwd' },
      ],
      /refusing archive entry "h": hard link target "s\/passwd" goes through a symbolic link/,
    ],
  ];
  for (const [name, entries, message] of refused) {
    test(name, async () => {
      const { r, ctx } = await buildArchive(name, entries);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Dockerfile:2/, 'the error names the ADD line');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      nothingOutside(ctx);
    });
  }
});

describe('ADD of an unusual but sound archive is unpacked as docker does', () => {
  test('hard links inside the archive stay hard links', async () => {
    const { r } = await buildArchive('links', [
      { name: 'a', content: 'same\n' },
      { name: 'sub/', type: 'dir' },
      { name: 'sub/b', type: 'hardlink', linkname: 'a' },
    ]);
    assert.equal(r.code, 0, r.stderr);
    const img = await savedImage(ws, 'add/links:1');
    const layer = img.layers.at(-1)!;
    const a = layer.find((e) => e.path === '/dst/a');
    const b = layer.find((e) => e.path === '/dst/sub/b');
    assert.equal(a?.tarType, 'file');
    assert.equal(b?.tarType, 'link', JSON.stringify(b));
    assert.equal(b?.linkname?.replace(/^\/?/, '/'), '/dst/a');
  });

  test('device nodes and fifos are kept; .wh. members are plain files', async () => {
    const { r } = await buildArchive('devices', [
      { name: 'null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'pipe', type: 'fifo', mode: 0o600 },
      { name: '.wh.gone', content: 'not a whiteout\n' },
      { name: 'd/', type: 'dir' },
      { name: 'd/.wh..wh..opq', content: '' },
    ]);
    assert.equal(r.code, 0, r.stderr);
    const img = await savedImage(ws, 'add/devices:1');
    const layer = img.layers.at(-1)!;
    const byPath = new Map(layer.map((e) => [e.path, e]));
    assert.equal(byPath.get('/dst/null')?.tarType, 'character-device');
    assert.equal(byPath.get('/dst/pipe')?.tarType, 'fifo');
    assert.equal(byPath.get('/dst/.wh.gone')?.tarType, 'file');
    assert.equal(byPath.get('/dst/.wh.gone')?.size, 15);
    assert.ok(byPath.has('/dst/d/.wh..wh..opq'));
  });

  test('a file replacing a directory, and a long (PAX) name', async () => {
    const long = `${'l'.repeat(120)}/${'n'.repeat(150)}`;
    const { r } = await buildArchive('replace', [
      { name: 'x/', type: 'dir' },
      { name: 'x/inner', content: 'inner' },
      { name: 'x', content: 'now a file\n' },
      { name: 'PaxLong', content: 'long\n', pax: { path: long } },
    ]);
    assert.equal(r.code, 0, r.stderr);
    const img = await savedImage(ws, 'add/replace:1');
    assert.equal(img.fs.get('/dst/x')?.type, 'file');
    assert.ok(!img.fs.has('/dst/x/inner'));
    assert.equal(img.fs.get(`/dst/${long}`)?.type, 'file');
  });

  test('names are cleaned as docker cleans them: a leading / and inner .. stay inside', async () => {
    const { r, ctx } = await buildArchive('clean-names', [
      { name: '/abs', content: 'a' },
      { name: 'x/../inner', content: 'i' },
      { name: '/../top', content: 't' },
    ]);
    assert.equal(r.code, 0, r.stderr);
    nothingOutside(ctx);
    const img = await savedImage(ws, 'add/clean-names:1');
    for (const p of ['/dst/abs', '/dst/inner', '/dst/top']) assert.equal(img.fs.get(p)?.type, 'file', p);
  });

  test('a gzip file that holds no tar is copied as it is', async () => {
    const gz = gzipSync(Buffer.from('just text\n'.repeat(100)));
    const { r } = await buildArchive('notar', gz);
    assert.equal(r.code, 0, r.stderr);
    const img = await savedImage(ws, 'add/notar:1');
    assert.equal(img.fs.get('/dst/a.tar')?.size, gz.length);
  });
});
