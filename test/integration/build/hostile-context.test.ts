/**
 * A hostile build context: links and `..` that lead out of it. Every source stays inside the
 * context (links followed within it, as BuildKit); nothing of the host gets into a layer.
 */
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Workspace, savedImage } from './util.js';

const ws = new Workspace('kiln-hostile-ctx-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));
const outside = path.join(ws.dir, 'outside.txt');
writeFileSync(outside, 'host-secret\n');

function context(name: string, dockerfileLine: string): string {
  const ctx = ws.context(name, { Dockerfile: `FROM scratch\n${dockerfileLine}\n`, 'sub/ok': 'ok\n' });
  symlinkSync('/etc', path.join(ctx, 'etclink'));
  symlinkSync(outside, path.join(ctx, 'filelink'));
  symlinkSync('../../outside.txt', path.join(ctx, 'sub', 'rel'));
  mkdirSync(path.join(ctx, 'emptydir'));
  return ctx;
}

describe('sources that lead out of the context are refused, naming them', () => {
  const cases: [string, string, RegExp][] = [
    [
      'dotdot',
      'COPY ../outside.txt /x',
      /Dockerfile:2:1: failed to compute cache key: "\.\.\/outside\.txt" not found in the build context/,
    ],
    ['through-dir-link', 'COPY etclink/passwd /x', /"etclink\/passwd" not found in the build context/],
    [
      'absolute-link',
      'COPY filelink /x',
      /"filelink" is a symbolic link to "[^"]*outside\.txt", which is not found in the build context/,
    ],
    [
      'relative-link',
      'COPY sub/rel /x',
      /"sub\/rel" is a symbolic link to "\/outside\.txt", which is not found in the build context/,
    ],
    ['add-link', 'ADD filelink /x', /"filelink" is a symbolic link to/],
  ];
  for (const [name, line, message] of cases) {
    test(name, async () => {
      const r = await ws.kiln(['build', '-q', '-t', `ctx/${name}:1`, context(name, line)]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }
});

test('COPY . keeps the context links as links; no host content in the layer', async () => {
  const r = await ws.kiln(['build', '-q', '-t', 'ctx/all:1', context('all', 'COPY . /ctx/')]);
  assert.equal(r.code, 0, r.stderr);
  const img = await savedImage(ws, 'ctx/all:1');
  assert.equal(img.fs.get('/ctx/etclink')?.type, 'symlink');
  assert.equal(img.fs.get('/ctx/etclink')?.linkname, '/etc');
  assert.equal(img.fs.get('/ctx/filelink')?.type, 'symlink');
  assert.ok(![...img.fs.keys()].some((p) => p.startsWith('/ctx/etclink/')), 'nothing copied from behind a link');
  const hostHash = (await import('node:crypto')).createHash('sha256').update('host-secret\n').digest('hex');
  assert.ok(![...img.fs.values()].some((e) => e.sha256 === hostHash), 'the host file is in no layer');
});
