/**
 * Pushing an image index (a multi-platform image) of the store to the real distribution registry:
 * every image goes (layers, config, manifest by digest), then the index under the tag; skopeo reads
 * it, and the registry's digest is the store's (or, when plain layers were compressed for the push,
 * the one push returned and kept in the store).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';
import { writeSmallImage } from '../../helpers/small-image.js';
import { Store } from '../../../src/store/store.js';
import { writeIndex } from '../../../src/store/image-index.js';
import { push } from '../../../src/registry/push.js';
import { pull } from '../../../src/registry/pull.js';
import { RegistryClient } from '../../../src/registry/client.js';
import { parseReference } from '../../../src/image/reference.js';
import { sha256 } from '../../../src/util/digest.js';
import type { KilnError } from '../../../src/util/errors.js';

const skip = needs(
  registryUnavailable(),
  spawnSync('sh', ['-c', 'command -v skopeo']).status === 0
    ? undefined
    : 'skopeo is not installed (apt-get install skopeo)',
);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-index-push-'));
const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

function skopeoRaw(ref: string): Buffer {
  const r = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { maxBuffer: 1 << 24 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

describe('push of an image index', { skip }, () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry();
  });
  after(async () => {
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('gzip images: every image then the index, byte for byte; the registry digest is the store one', async () => {
    const store = await Store.open({ root: path.join(work, 'gz') });
    const a = await writeSmallImage(store, 'local/app:amd64', [{ 'arch.txt': 'x86-64' }], 'gzip', {
      platform: amd64,
    });
    const b = await writeSmallImage(store, 'local/app:arm64', [{ 'arch.txt': 'aarch64' }, { 'b.txt': 'two' }], 'gzip', {
      platform: arm64,
    });
    const index = await writeIndex(store, [
      { descriptor: a.descriptor, platform: amd64 },
      { descriptor: b.descriptor, platform: arm64 },
    ]);
    await store.setTag('local/app:multi', index);
    const dest = `${reg.host}/kiln/app:multi`;
    const r = await push(store, 'local/app:multi', dest);
    assert.equal(r.digest, index.digest);
    const raw = skopeoRaw(dest);
    assert.deepEqual(raw, await store.readBlob(index.digest));
    assert.equal(sha256(raw), index.digest);
    // Each image is on the registry by digest, with its blobs.
    const client = new RegistryClient();
    const ref = parseReference(dest);
    for (const img of [a, b]) {
      const m = await client.getManifest(ref, img.descriptor.digest);
      assert.equal(m.digest, img.descriptor.digest);
      for (const l of [img.manifest.config, ...img.manifest.layers]) assert.ok(await client.hasBlob(ref, l.digest));
    }
    // Another store pulls the arm64 image out of it.
    const other = await Store.open({ root: path.join(work, 'gz-pull') });
    const got = await pull(other, dest, { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(got.descriptor.digest, b.descriptor.digest);
    assert.equal(got.config.architecture, 'arm64');
  });

  test('plain-layer images (as kiln builds them): compressed, and the pushed index names the pushed manifests', async () => {
    const store = await Store.open({ root: path.join(work, 'plain') });
    const a = await writeSmallImage(store, 'local/built:amd64', [{ 'arch.txt': 'x86-64' }], 'none', {
      platform: amd64,
    });
    const b = await writeSmallImage(store, 'local/built:arm64', [{ 'arch.txt': 'aarch64' }], 'none', {
      platform: arm64,
    });
    const index = await writeIndex(store, [
      { descriptor: a.descriptor, platform: amd64 },
      { descriptor: b.descriptor, platform: arm64 },
    ]);
    await store.setTag('local/built:multi', index);
    const dest = `${reg.host}/kiln/built:v1`;
    const r = await push(store, 'local/built:multi', dest);
    const raw = skopeoRaw(dest);
    assert.equal(sha256(raw), r.digest);
    // The pushed index is kept in the store, byte for byte.
    assert.deepEqual(await store.readBlob(r.digest), raw);
    const pushed = JSON.parse(raw.toString()) as {
      manifests: { digest: string; platform: { architecture: string } }[];
    };
    assert.deepEqual(
      pushed.manifests.map((m) => m.platform.architecture),
      ['amd64', 'arm64'],
    );
    const client = new RegistryClient();
    for (const m of pushed.manifests) {
      const got = await client.getManifest(parseReference(dest), m.digest);
      const manifest = JSON.parse(got.body.toString()) as { layers: { mediaType: string }[] };
      assert.ok(manifest.layers.every((l) => l.mediaType.endsWith('+gzip')));
    }
    // Pushing again sends the same index (the compressed layers are the same bytes).
    const again = await push(store, 'local/built:multi', dest);
    assert.equal(again.digest, r.digest);
  });

  test('an index whose image is not in the store is refused, naming the platform', async () => {
    const store = await Store.open({ root: path.join(work, 'partial') });
    const a = await writeSmallImage(store, 'local/part:amd64', [{ 'a.txt': 'a' }], 'gzip', { platform: amd64 });
    const absent = { ...a.descriptor, digest: sha256('absent manifest') };
    // An index as a partial pull would leave it: written by hand, one image absent.
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { ...a.descriptor, platform: amd64 },
        { ...absent, platform: arm64 },
      ],
    });
    const blob = await store.putBlob(body);
    await store.setTag('local/part:multi', { mediaType: 'application/vnd.oci.image.index.v1+json', ...blob });
    await assert.rejects(
      push(store, 'local/part:multi', `${reg.host}/kiln/part:1`),
      (e: KilnError) => e.code === 'NOT_FOUND' && /linux\/arm64\/v8 is not in the store/.test(e.message),
    );
  });
});
