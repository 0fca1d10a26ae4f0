/**
 * A multi-platform image (an index tag) in the store, through the CLI: `kiln images` (PLATFORMS
 * column, --tree), `kiln inspect --platform`, the analysis commands' refusal of an index without
 * this machine's platform, `kiln rmi` of the index tag, `kiln save`/`kiln load` of it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { writeSmallImage } from '../../helpers/small-image.js';
import { Store, type LoadedImage } from '../../../src/store/store.js';
import { writeIndex } from '../../../src/store/image-index.js';
import { hostPlatform } from '../../../src/image/platform.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-multi-platform-'));
const root = path.join(work, 'store');
const host = { os: 'linux', architecture: hostPlatform().architecture };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const s390x = { os: 'linux', architecture: 's390x' };
let a: LoadedImage;
let b: LoadedImage;
let c: LoadedImage;

before(async () => {
  const store = await Store.open({ root });
  a = await writeSmallImage(store, 'local/m:host', [{ 'arch.txt': 'host' }], 'gzip', { platform: host });
  b = await writeSmallImage(store, 'local/m:arm64', [{ 'arch.txt': 'aarch64' }], 'gzip', { platform: arm64 });
  c = await writeSmallImage(store, 'local/m:s390x', [{ 'arch.txt': 's390x' }], 'gzip', { platform: s390x });
  await store.setTag(
    'local/m:multi',
    await writeIndex(store, [
      { descriptor: a.descriptor, platform: host },
      { descriptor: b.descriptor, platform: arm64 },
    ]),
  );
  await store.setTag(
    'local/m:foreign',
    await writeIndex(store, [
      { descriptor: b.descriptor, platform: arm64 },
      { descriptor: c.descriptor, platform: s390x },
    ]),
  );
});
after(() => rmSync(work, { recursive: true, force: true }));

test('kiln images: one row per tag, a PLATFORMS column, --tree a row per platform', async () => {
  const r = await runKiln(['images'], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE +PLATFORMS/);
  assert.match(r.stdout, /\nlocal\/m +foreign +[a-f0-9]{12} .* linux\/arm64\/v8,linux\/s390x\n/);
  assert.match(r.stdout, new RegExp(`\\nlocal/m +multi +[a-f0-9]{12} .* linux/${host.architecture},linux/arm64/v8\\n`));
  assert.match(r.stdout, /\nlocal\/m +s390x +[a-f0-9]{12} .* linux\/s390x\n/);
  const t = await runKiln(['images', '--tree', 'local/m:multi'], { root });
  assert.equal(t.code, 0, t.stderr);
  const lines = t.stdout.trim().split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[2]!, new RegExp(`└─ linux/${host.architecture} +${a.id.slice(7, 19)}`));
  assert.match(lines[3]!, new RegExp(`└─ linux/arm64/v8 +${b.id.slice(7, 19)}`));
  const j = await runKiln(['images', '--format', 'json', 'local/m:foreign'], { root });
  assert.deepEqual((JSON.parse(j.stdout) as { Platforms: string[] }).Platforms, ['linux/arm64/v8', 'linux/s390x']);
});

test('kiln inspect --platform; the analysis commands refuse an index without this platform, listing its platforms', async () => {
  const i = await runKiln(['inspect', '--platform', 'linux/arm64', 'local/m:multi'], { root });
  assert.equal(i.code, 0, i.stderr);
  const doc = JSON.parse(i.stdout) as { Id: string; RepoTags: string[]; Architecture: string }[];
  assert.equal(doc[0]!.Id, b.id);
  assert.ok(doc[0]!.RepoTags.includes('local/m:multi'));
  const def = JSON.parse((await runKiln(['inspect', 'local/m:multi'], { root })).stdout) as { Id: string }[];
  assert.equal(def[0]!.Id, a.id);
  const wrong = await runKiln(['inspect', '--platform', 'linux/arm64', 'local/m:s390x'], { root });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /does not match the specified platform: wanted linux\/arm64, actual: linux\/s390x/);
  for (const cmd of [['inspect'], ['history'], ['sbom'], ['analyze']]) {
    const r = await runKiln([...cmd, 'local/m:foreign'], { root });
    assert.equal(r.code, 1, `${cmd[0]}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(`has no image for linux/${host.architecture} \\(it has: linux/arm64/v8, linux/s390x\\)`),
      cmd[0],
    );
  }
  const h = await runKiln(['history', '--platform', 'linux/s390x', 'local/m:foreign'], { root });
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /COPY layer0/);
});

test('kiln rmi of an index tag removes that tag only', async () => {
  const r = await runKiln(['rmi', 'local/m:foreign'], { root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Untagged: docker.io/local/m:foreign\n');
  const ls = await runKiln(['images', '--format', '{{.Tag}}', 'local/m'], { root });
  assert.deepEqual(ls.stdout.trim().split('\n').sort(), ['arm64', 'host', 'multi', 's390x']);
});

test('kiln save of an index tag: the whole index (manifest.json names this machine), or --platform: one image; loadable under the name', async () => {
  const store = await Store.open({ root });
  const index = (await store.tagged('local/m:multi'))!.digest;
  for (const [flags, want] of [
    [[], a],
    [['--platform', 'linux/arm64'], b],
  ] as const) {
    const out = path.join(work, `save-${flags.length}.tar`);
    const s = await runKiln(['save', ...flags, '-o', out, 'local/m:multi'], { root });
    assert.equal(s.code, 0, s.stderr);
    const other = path.join(work, `load-${flags.length}`);
    const l = await runKiln(['load', '-i', out], { root: other });
    assert.equal(l.code, 0, l.stderr);
    const i = JSON.parse((await runKiln(['inspect', 'local/m:multi'], { root: other })).stdout) as { Id: string }[];
    assert.equal(i[0]!.Id, want.id);
    const loaded = await (await Store.open({ root: other })).tagged('local/m:multi');
    assert.equal(loaded!.digest, flags.length ? b.descriptor.digest : index);
  }
});
