/**
 * Pull by platform from a two-platform index on the real registry: `kiln pull --platform` keeps the
 * one platform's image under the name (as docker), `--all-platforms` keeps every image and the
 * index byte for byte; `kiln run --platform` refuses an image of another platform.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';
import { runKiln } from '../../helpers/kiln.js';
import { writeSmallImage } from '../../helpers/small-image.js';
import { Store, type LoadedImage } from '../../../src/store/store.js';
import { writeIndex } from '../../../src/store/image-index.js';
import { push } from '../../../src/registry/push.js';
import { sha256 } from '../../../src/util/digest.js';
import { hostPlatform } from '../../../src/image/platform.js';

const skip = needs(registryUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-platform-pull-'));
const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

describe('pull by platform', { skip }, () => {
  let reg: Registry;
  let ref = '';
  let indexDigest = '';
  let a: LoadedImage;
  let b: LoadedImage;
  before(async () => {
    reg = await startRegistry();
    const store = await Store.open({ root: path.join(work, 'src') });
    a = await writeSmallImage(store, 'local/p:amd64', [{ 'arch.txt': 'x86-64' }], 'gzip', { platform: amd64 });
    b = await writeSmallImage(store, 'local/p:arm64', [{ 'arch.txt': 'aarch64' }], 'gzip', { platform: arm64 });
    const index = await writeIndex(store, [
      { descriptor: a.descriptor, platform: amd64 },
      { descriptor: b.descriptor, platform: arm64 },
    ]);
    await store.setTag('local/p:multi', index);
    ref = `${reg.host}/kiln/p:multi`;
    indexDigest = (await push(store, 'local/p:multi', ref)).digest;
  });
  after(async () => {
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('--platform keeps that platform image under the name; no platform: the host one', async () => {
    const root = path.join(work, 'one');
    const p = await runKiln(['pull', '--platform', 'linux/arm64', ref], { root });
    assert.equal(p.code, 0, p.stderr);
    const i = JSON.parse((await runKiln(['inspect', ref], { root })).stdout) as { Architecture: string; Id: string }[];
    assert.equal(i[0]!.Architecture, 'arm64');
    assert.equal(i[0]!.Id, b.id);
    const host = path.join(work, 'host');
    assert.equal((await runKiln(['pull', ref], { root: host })).code, 0);
    const h = JSON.parse((await runKiln(['inspect', ref], { root: host })).stdout) as { Architecture: string }[];
    assert.equal(h[0]!.Architecture, hostPlatform().architecture);
    const none = await runKiln(['pull', '--platform', 'linux/arm/v7', ref], { root });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /has no image for linux\/arm\/v7 \(it has: linux\/amd64, linux\/arm64\/v8\)/);
  });

  test('--all-platforms keeps both images and the index (byte for byte: pushing it again gives its digest)', async () => {
    const root = path.join(work, 'all');
    const both = await runKiln(['pull', '--all-platforms', '--platform', 'linux/arm64', ref], { root });
    assert.equal(both.code, 2);
    const p = await runKiln(['pull', '--all-platforms', ref], { root });
    assert.equal(p.code, 0, p.stderr);
    const raw = await runKiln(['manifest', 'inspect', '--raw', ref], { root, env: { KILN_ROOT: root } });
    assert.equal(sha256(raw.stdout), indexDigest);
    const store = await Store.open({ root });
    assert.equal((await store.tagged(ref))?.digest, indexDigest);
    for (const img of [a, b]) assert.ok(await store.hasBlob(img.descriptor.digest));
    const arm = await store.resolveImage(ref, { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(arm.id, b.id);
    const again = await push(store, ref, `${reg.host}/kiln/p-copy:1`);
    assert.equal(again.digest, indexDigest);
  });

  test('kiln run --platform refuses an image of another platform, as docker run', async () => {
    const root = path.join(work, 'run');
    assert.equal((await runKiln(['pull', '--platform', 'linux/arm64', ref], { root })).code, 0);
    const r = await runKiln(['run', '--platform', 'linux/amd64', ref, 'true'], { root });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /image with reference .* was found but does not match the specified platform: wanted linux\/amd64, actual: linux\/arm64\/v8/,
    );
  });
});
