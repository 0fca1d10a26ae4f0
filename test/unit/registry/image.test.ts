/** A remote image as an Image, against the real distribution registry (Debian's docker-registry) on loopback. */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { copyImageToStore, openStoreImage } from '../../../src/store/image.js';
import { openRemoteImage } from '../../../src/registry/image.js';
import { push } from '../../../src/registry/push.js';
import { saveImagesToFile } from '../../../src/archive/save.js';
import { openImageArchive } from '../../../src/archive/read.js';
import type { Image } from '../../../src/image/image.js';
import { sha256 } from '../../../src/util/digest.js';
import { KilnError } from '../../../src/util/errors.js';
import { registryUnavailable, startFaultProxy, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const skip = needs(registryUnavailable());
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-remote-image-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function bytes(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function essence(img: Image) {
  return {
    id: img.id,
    digest: img.digest,
    config: sha256(await img.rawConfig()),
    layers: await Promise.all(
      img.layers.map(async (l) => ({ diffId: l.diffId, digest: l.digest, bytes: sha256(await bytes(l.open())) })),
    ),
    history: img.layers.map((l) => l.history?.created_by),
  };
}

describe('a registry image as an Image', { skip }, () => {
  let reg: Registry;
  let store: Store;
  let local: Image;
  let pushed = '';
  before(async () => {
    reg = await startRegistry();
    store = await Store.open({ root: path.join(tmp, 'src') });
    // gzip layers: the push keeps the store's manifest, so local and remote digests are one.
    await writeSmallImage(store, 'example.com/remote:1', [{ 'a.txt': 'alpha' }, { 'b.txt': 'beta'.repeat(5000) }]);
    local = await openStoreImage(store, 'example.com/remote:1');
    pushed = (await push(store, 'example.com/remote:1', `${reg.host}/kiln/remote:1`, { insecure: [reg.host] })).digest;
  });
  after(async () => reg?.stop());

  test('manifest, config and layers are the pushed ones; a layer is fetched only when read', async () => {
    assert.equal(pushed, local.digest);
    const proxy = await startFaultProxy(reg.host);
    try {
      const img = await openRemoteImage(`${proxy.host}/kiln/remote:1`, { insecure: [proxy.host] });
      assert.equal(img.kind, 'registry');
      assert.equal(img.name, `${proxy.host}/kiln/remote:1`);
      assert.equal(sha256(await img.rawManifest!()), img.digest);
      const layerGets = () =>
        proxy.log.filter((l) => l.method === 'GET' && img.layers.some((x) => l.path.endsWith(`/blobs/${x.digest}`)));
      assert.equal(layerGets().length, 0, 'opening the image fetches no layer');
      const second = img.layers[1]!.open();
      assert.equal(layerGets().length, 0, 'nor does opening a layer before it is read');
      assert.equal(sha256(await bytes(second)), img.layers[1]!.digest);
      assert.equal(layerGets().length, 1);
      const want = await essence(local);
      assert.deepEqual(await essence(img), want);
    } finally {
      await proxy.stop();
    }
  });

  test('a layer the registry serves corrupt fails its stream with DIGEST', async () => {
    const img0 = await openRemoteImage(`${reg.host}/kiln/remote:1`, { insecure: [reg.host] });
    const layer = img0.layers[1]!.digest!;
    const proxy = await startFaultProxy(reg.host, [
      { method: 'GET', path: new RegExp(`/blobs/${layer}$`), action: 'corrupt', times: 10 },
    ]);
    try {
      const img = await openRemoteImage(`${proxy.host}/kiln/remote:1`, { insecure: [proxy.host] });
      await assert.rejects(bytes(img.layers[1]!.open()), (e: unknown) => e instanceof KilnError && e.code === 'DIGEST');
      // and copying it into a store keeps nothing of that layer
      const other = await Store.open({ root: path.join(tmp, 'corrupt') });
      await assert.rejects(copyImageToStore(other, img), (e: unknown) => e instanceof KilnError && e.code === 'DIGEST');
      assert.equal(await other.hasBlob(layer), false);
    } finally {
      await proxy.stop();
    }
  });

  test('a remote Image copied into a store, saved to an archive, and pushed elsewhere keeps its digests', async () => {
    const img = await openRemoteImage(`${reg.host}/kiln/remote:1`, { insecure: [reg.host] });
    const other = await Store.open({ root: path.join(tmp, 'copy') });
    const copied = await copyImageToStore(other, img);
    assert.equal(copied.descriptor.digest, pushed);
    const file = path.join(tmp, 'remote.tar');
    await saveImagesToFile(other, [img], 'oci', file);
    const archive = await openImageArchive(file);
    try {
      assert.deepEqual(await essence(await archive.image()), await essence(img));
    } finally {
      await archive.close();
    }
    const third = await Store.open({ root: path.join(tmp, 'third') });
    const r = await push(third, img, `${reg.host}/kiln/again:2`, { insecure: [reg.host] });
    assert.equal(r.digest, pushed);
    const back = await openRemoteImage(`${reg.host}/kiln/again:2`, { insecure: [reg.host] });
    assert.equal(back.digest, pushed);
  });

  test('an absent image: NOT_FOUND naming it', async () => {
    await assert.rejects(
      openRemoteImage(`${reg.host}/kiln/absent:1`, { insecure: [reg.host] }),
      (e: unknown) => e instanceof KilnError && e.code === 'NOT_FOUND',
    );
  });
});
