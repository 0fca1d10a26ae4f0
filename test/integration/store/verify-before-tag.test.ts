/**
 * An image comes in whole or not at all: pull, load and import verify the manifest, the config and
 * every layer (digest, tar, diff_id) before any tag moves; several names are tagged all or none.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { craftTar } from '../../helpers/craft-tar.js';
import { pushRawImage, registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-verify-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const newRoot = () => path.join(work, `store-${n++}`);
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const layer = craftTar([
  { name: 'etc/', type: 'dir' },
  { name: 'etc/hello', content: 'hello\n' },
]);
const other = craftTar([
  { name: 'etc/', type: 'dir' },
  { name: 'etc/other', content: 'other\n' },
]);
const configFor = (diffIds: string[]) =>
  Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [],
    }),
  );

async function images(root: string): Promise<string> {
  const r = await runKiln(['images', '--format', '{{.Repository}}:{{.Tag}}'], { root });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

function noStack(stderr: string): void {
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
}

describe('pull verifies the whole image before tagging', { skip: needs(registryUnavailable()) }, () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry();
    await pushRawImage(reg.host, 'bad/more-diffids', '1', {
      config: configFor([sha(layer), sha(other)]),
      layers: [layer],
    });
    await pushRawImage(reg.host, 'bad/lying-diffid', '1', { config: configFor([sha(other)]), layers: [layer] });
    await pushRawImage(reg.host, 'bad/not-a-tar', '1', {
      config: configFor([sha(Buffer.from('x'.repeat(2000)))]),
      layers: [Buffer.from('x'.repeat(2000))],
    });
    await pushRawImage(reg.host, 'bad/escape', '1', {
      config: configFor([sha(craftTar([{ name: '../evil', content: 'x' }]))]),
      layers: [craftTar([{ name: '../evil', content: 'x' }])],
    });
    await pushRawImage(reg.host, 'good/one', '1', { config: configFor([sha(layer)]), layers: [layer] });
  });
  after(() => reg?.stop());

  const cases: [string, RegExp][] = [
    ['bad/more-diffids', /the config lists 2 layers \(diff_ids\), the manifest 1/],
    ['bad/lying-diffid', /unpacks to sha256:[a-f0-9]{64}, but the config says its diff_id is/],
    ['bad/not-a-tar', /is not a valid layer: malformed tar header/],
    ['bad/escape', /refusing layer entry "\.\.\/evil": path contains "\.\."/],
  ];
  for (const [repo, message] of cases) {
    test(`${repo}: refused, exit 1, nothing tagged`, async () => {
      const root = newRoot();
      const r = await runKiln(['pull', `${reg.host}/${repo}:1`], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      noStack(r.stderr);
      assert.equal(await images(root), '');
    });
  }

  test('a sound image is pulled, tagged and runs its checks once', async () => {
    const root = newRoot();
    const r = await runKiln(['pull', `${reg.host}/good/one:1`], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(await images(root), /good\/one:1/);
  });
});

function dockerArchive(entries: { config: Buffer; layers: Buffer[]; tags: unknown[] }[]): Buffer {
  const files: { name: string; content: Buffer }[] = [];
  const manifest = entries.map((e, i) => {
    files.push({ name: `config-${i}.json`, content: e.config });
    const layers = e.layers.map((l, j) => {
      files.push({ name: `l${i}-${j}/layer.tar`, content: l });
      return `l${i}-${j}/layer.tar`;
    });
    return { Config: `config-${i}.json`, RepoTags: e.tags, Layers: layers };
  });
  return craftTar([
    ...files.map((f) => ({ name: f.name, content: f.content })),
    { name: 'manifest.json', content: JSON.stringify(manifest) },
  ]);
}

describe('load: all or nothing', () => {
  test('one invalid RepoTag among several: exit 1 naming it, no tag at all', async () => {
    const root = newRoot();
    const file = path.join(work, 'tags.tar');
    writeFileSync(
      file,
      dockerArchive([{ config: configFor([sha(layer)]), layers: [layer], tags: ['good:1', 'Bad Name:x', 'good:2'] }]),
    );
    const r = await runKiln(['load', '-i', file], { root });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /invalid RepoTag "Bad Name:x"/);
    noStack(r.stderr);
    assert.equal(await images(root), '');
  });

  test('a second image whose config lies: the first image is not tagged either', async () => {
    const root = newRoot();
    const file = path.join(work, 'two.tar');
    writeFileSync(
      file,
      dockerArchive([
        { config: configFor([sha(layer)]), layers: [layer], tags: ['first:1'] },
        { config: configFor([sha(layer), sha(other)]), layers: [layer], tags: ['second:1'] },
      ]),
    );
    const r = await runKiln(['load', '-i', file], { root });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /1 layers but 2 diff_ids/);
    assert.equal(await images(root), '');
  });

  test('a layer with an escaping entry, and an archive member named ../x: refused, nothing written outside', async () => {
    const evil = craftTar([{ name: '../../evil-layer', content: 'x' }]);
    for (const [name, archive, message] of [
      [
        'evil-layer',
        dockerArchive([{ config: configFor([sha(evil)]), layers: [evil], tags: ['evil:1'] }]),
        /refusing layer entry "\.\.\/\.\.\/evil-layer": path contains "\.\."/,
      ],
      [
        'evil-member',
        craftTar([
          { name: '../evil-member', content: 'x' },
          { name: 'manifest.json', content: '[]' },
        ]),
        /refusing layer entry "\.\.\/evil-member"/,
      ],
    ] as const) {
      const root = newRoot();
      const file = path.join(work, `${name}.tar`);
      writeFileSync(file, archive);
      const r = await runKiln(['load', '-i', file], { root, cwd: work });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      noStack(r.stderr);
      assert.equal(await images(root), '');
      assert.ok(
        !existsSync(path.join(work, '..', name.replace('-', '-'))) &&
          !existsSync(path.join(os.tmpdir(), 'evil-layer')) &&
          !existsSync(path.join(os.tmpdir(), 'evil-member')),
        'nothing written outside',
      );
    }
  });

  test('a sound archive with two images: both tagged', async () => {
    const root = newRoot();
    const file = path.join(work, 'ok.tar');
    writeFileSync(
      file,
      dockerArchive([
        { config: configFor([sha(layer)]), layers: [layer], tags: ['first:1', 'first:2'] },
        { config: configFor([sha(other)]), layers: [other], tags: ['second:1'] },
      ]),
    );
    const r = await runKiln(['load', '-i', file], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await images(root)).trim().split('\n').sort(), ['first:1', 'first:2', 'second:1']);
  });
});

describe('import refuses what is not a rootfs tar', () => {
  const bad: [string, Buffer, RegExp][] = [
    ['text', Buffer.from('this is not a tar\n'.repeat(100)), /is not a root filesystem tar: malformed tar header/],
    ['short', Buffer.from('tiny'), /is not a root filesystem tar: truncated tar header/],
    ['empty', Buffer.alloc(0), /is not a root filesystem tar: it holds no entries/],
    [
      'escape',
      craftTar([
        { name: 'ok', content: 'x' },
        { name: 'a/../../x', content: 'x' },
      ]),
      /refusing layer entry "a\/\.\.\/\.\.\/x"/,
    ],
    [
      'link-out',
      craftTar([{ name: 'l', type: 'hardlink', linkname: '../../etc/shadow' }]),
      /refusing layer entry "l": hard link target "\.\.\/\.\.\/etc\/shadow"/,
    ],
  ];
  for (const [name, content, message] of bad) {
    test(`${name}: exit 1, a clear message, no image`, async () => {
      const root = newRoot();
      const file = path.join(work, `${name}.tar`);
      writeFileSync(file, content);
      const r = await runKiln(['import', file, `imp/${name}:1`], { root });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      noStack(r.stderr);
      assert.equal(await images(root), '');
      assert.deepEqual(readdirSync(path.join(root, 'tmp')), [], 'no temp file left');
    });
  }
});
