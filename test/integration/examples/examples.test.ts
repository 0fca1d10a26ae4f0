/**
 * The examples end to end, as `npm run demo` builds them: with the bases made from Debian packages
 * passed as build args, each builds with kiln and its image does what the app should. Two of them,
 * for their point: python-wheels adds no Debian package to its slim base (seed 002), and
 * python-obfuscated's default variant holds no .py source of the app in any layer (seed 000).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar, type BaseName } from '../../helpers/bases.js';
import { readSavedImage } from '../../helpers/image-fs.js';
import { repoRoot } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-examples-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

const BASE_ARGS = ['--build-arg', 'PYTHON_BUILDER=localhost/python-full:bookworm', '--build-arg', 'PYTHON_BASE=localhost/python-slim:bookworm'];

async function kiln(args: string[]): Promise<string> {
  const r = await runKiln(args, { root });
  assert.equal(r.code, 0, `kiln ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const example = (name: string) => path.join(repoRoot, 'examples', name);
async function packages(ref: string): Promise<{ type: string; name: string; version: string }[]> {
  return (JSON.parse(await kiln(['sbom', ref, '--format', 'json'])) as { packages: { type: string; name: string; version: string }[] }).packages;
}

describe('examples/', { skip }, () => {
  before(async () => {
    for (const b of ['python-full', 'python-slim'] as BaseName[]) await kiln(['import', await ensureBaseTar(b), `localhost/${b}:bookworm`]);
  });

  test('python-wheels: the C extension built in the builder runs in the slim image, which gains no Debian package', async () => {
    await kiln(['build', '-q', ...BASE_ARGS, '-t', 'ex-wheels', example('python-wheels')]);
    assert.match(await kiln(['run', 'ex-wheels', '1', '2', '3']), /^hello, python-wheels \| sum: 6 \| python 3\.\d+\.\d+, C extension _csum\.cpython-/);
    const base = new Set((await packages('localhost/python-slim:bookworm')).map((p) => `${p.type}/${p.name}@${p.version}`));
    const added = (await packages('ex-wheels')).filter((p) => !base.has(`${p.type}/${p.name}@${p.version}`));
    assert.deepEqual(added.filter((p) => p.type === 'deb').map((p) => p.name), [], 'no Debian package added (no gcc in the final image)');
    assert.deepEqual(added.filter((p) => p.name === 'fastsum' || p.name === 'greet').map((p) => `${p.type}/${p.name}`).sort(), ['python/fastsum', 'python/greet']);
  });

  test('python-obfuscated: the default variant holds no .py source of the app in any layer; SRC_FORMAT=clear does', async () => {
    const appSources = async (tag: string) => {
      const tar = path.join(work, `${tag}.tar`);
      await kiln(['save', '-o', tar, tag]);
      const img = await readSavedImage(tar);
      return img.layers.flat().filter((e) => /^\/?usr\/src\/app\/app\/.*\.py$/.test(e.path) && !path.posix.basename(e.path).startsWith('.wh.')).map((e) => path.posix.basename(e.path));
    };
    await kiln(['build', '-q', ...BASE_ARGS, '-t', 'ex-obf', example('python-obfuscated')]);
    assert.match(await kiln(['run', 'ex-obf']), /licensed \| sum: 500500 \| running from compiled/);
    assert.deepEqual(await appSources('ex-obf'), []);
    await kiln(['build', '-q', ...BASE_ARGS, '--build-arg', 'SRC_FORMAT=clear', '-t', 'ex-clear', example('python-obfuscated')]);
    assert.match(await kiln(['run', 'ex-clear']), /running from source/);
    assert.deepEqual((await appSources('ex-clear')).sort(), ['__init__.py', 'licence.py', 'main.py']);
  });
});
