/**
 * A multi-platform image saved whole (archive/save.ts `IndexToSave`) and loaded back
 * (archive/load.ts): index.json names the index, every blob is in the archive once, the bytes are
 * the same each time, a docker-archive's manifest.json names one platform's image, and a load
 * checks every image of the index before it tags it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store, type LoadedImage } from '../../../src/store/store.js';
import { writeIndex } from '../../../src/store/image-index.js';
import { openImageArchive } from '../../../src/archive/read.js';
import { saveImagesToFile } from '../../../src/archive/save.js';
import { loadArchive } from '../../../src/archive/load.js';
import { hostPlatform } from '../../../src/image/platform.js';
import type { Descriptor } from '../../../src/image/types.js';
import { sha256 } from '../../../src/util/digest.js';
import { KilnError } from '../../../src/util/errors.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-save-index-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const host = { os: 'linux', architecture: hostPlatform().architecture };
const other = { os: 'linux', architecture: host.architecture === 'arm64' ? 'amd64' : 'arm64' };
const name = 'docker.io/local/multi:1';
let store: Store;
let a: LoadedImage;
let b: LoadedImage;
let index: Descriptor;

before(async () => {
  store = await Store.open({ root: path.join(tmp, 'store') });
  // The other platform first: manifest.json must still name this machine's image.
  b = await writeSmallImage(store, 'local/m:other', [{ 'a.txt': 'other' }, { 'shared.txt': 'x' }], 'gzip', {
    platform: other,
  });
  a = await writeSmallImage(store, 'local/m:host', [{ 'a.txt': 'host' }, { 'shared.txt': 'x' }], 'gzip', {
    platform: host,
  });
  index = await writeIndex(store, [
    { descriptor: b.descriptor, platform: other },
    { descriptor: a.descriptor, platform: host },
  ]);
  await store.setTag(name, index);
});

test('oci: index.json names the index; every blob of both images is there once; the same bytes each time', async () => {
  const file = path.join(tmp, 'oci.tar');
  const saved = await saveImagesToFile(store, [{ name, index }], 'oci', file);
  assert.deepEqual(saved, [
    {
      name,
      digest: index.digest,
      platforms: [`linux/${other.architecture}`, `linux/${host.architecture}`],
      dockerPlatform: `linux/${host.architecture}`,
    },
  ]);
  const archive = await openImageArchive(file, { display: 'oci.tar', tmpDir: tmp });
  try {
    const top = JSON.parse((await archive.readDocument('index.json')).toString()) as { manifests: Descriptor[] };
    assert.deepEqual(top.manifests, [
      {
        mediaType: 'application/vnd.oci.image.index.v1+json',
        digest: index.digest,
        size: index.size,
        annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name },
      },
    ]);
    const blobs = archive.names().filter((n) => /^blobs\/sha256\/[a-f0-9]{64}$/.test(n));
    const want = new Set([index.digest, a.descriptor.digest, b.descriptor.digest, a.id, b.id]);
    for (const l of [...a.manifest.layers, ...b.manifest.layers]) want.add(l.digest);
    assert.equal(blobs.length, want.size, 'each blob once (the shared layer too)');
    assert.deepEqual(new Set(blobs.map((n) => `sha256:${n.slice(13)}`)), want);
    assert.equal(archive.names().includes('manifest.json'), false);
  } finally {
    await archive.close();
  }
  const again = path.join(tmp, 'oci-again.tar');
  await saveImagesToFile(store, [{ name, index }], 'oci', again);
  assert.equal(sha256(readFileSync(again)), sha256(readFileSync(file)));
});

test("docker: the same OCI part, and manifest.json names this machine's image under the name", async () => {
  const file = path.join(tmp, 'docker.tar');
  await saveImagesToFile(store, [{ name, index }], 'docker', file);
  const archive = await openImageArchive(file, { display: 'docker.tar', tmpDir: tmp });
  try {
    const top = JSON.parse((await archive.readDocument('index.json')).toString()) as { manifests: Descriptor[] };
    assert.equal(top.manifests[0]!.digest, index.digest);
    const m = JSON.parse((await archive.readDocument('manifest.json')).toString()) as {
      Config: string;
      RepoTags: string[];
    }[];
    assert.deepEqual(
      m.map((e) => [e.Config, e.RepoTags]),
      [[`blobs/sha256/${a.id.slice(7)}`, ['local/multi:1']]],
    );
  } finally {
    await archive.close();
  }
});

test('load into an empty store: the name tags the same index, each image is there and verified', async () => {
  const file = path.join(tmp, 'oci.tar');
  const empty = await Store.open({ root: path.join(tmp, 'empty') });
  const r = await loadArchive(empty, file, 'oci.tar');
  assert.deepEqual(r.images, [{ name, id: index.digest, digest: index.digest }]);
  assert.equal((await empty.tagged(name))?.digest, index.digest);
  assert.equal((await empty.resolveImage(name, { platform: other })).id, b.id);
  assert.equal((await empty.resolveImage(name)).id, a.id);
});

test("load checks every platform's image, not only this machine's: a lying config refuses the load, nothing tagged", async () => {
  // The other platform's image with a config whose diff_id is not its layer's.
  const config = structuredClone(b.config);
  config.rootfs.diff_ids = [sha256('not this layer'), ...config.rootfs.diff_ids.slice(1)];
  const lying = await store.writeImage(config, b.manifest.layers);
  const bad = await writeIndex(store, [
    { descriptor: a.descriptor, platform: host },
    { descriptor: lying.descriptor, platform: other },
  ]);
  const file = path.join(tmp, 'lying.tar');
  await saveImagesToFile(store, [{ name: 'docker.io/local/lying:1', index: bad }], 'oci', file);
  const empty = await Store.open({ root: path.join(tmp, 'empty-lying') });
  await assert.rejects(
    loadArchive(empty, file, 'lying.tar'),
    (e: unknown) => e instanceof KilnError && e.code === 'DIGEST' && /linux\/(arm64|amd64)/.test(e.message),
  );
  assert.equal(await empty.tagged('docker.io/local/lying:1'), undefined);
});
