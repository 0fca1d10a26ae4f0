import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { copyImageToStore, openStoreImage } from '../../../src/store/image.js';
import { openImageArchive } from '../../../src/archive/read.js';
import { saveImagesToFile } from '../../../src/archive/save.js';
import { loadArchive } from '../../../src/archive/load.js';
import { canonicalJSON } from '../../../src/image/canonical.js';
import type { Image } from '../../../src/image/image.js';
import { hostPlatform } from '../../../src/image/platform.js';
import { digestHex, sha256 } from '../../../src/util/digest.js';
import { KilnError } from '../../../src/util/errors.js';
import { craftTar } from '../../helpers/craft-tar.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-archive-read-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function bytes(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The parts of an Image that must not depend on who holds it. */
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

let storeN = 0;
const newStore = () => Store.open({ root: path.join(tmp, `store-${++storeN}`) });

test('docker and OCI archives, as tar, gzip tar and directory: the same Image as the store it was saved from', async () => {
  const store = await newStore();
  await writeSmallImage(store, 'example.com/arch:1', [{ 'a.txt': 'alpha' }, { 'b/c.txt': 'gamma' }]);
  const fromStore = await openStoreImage(store, 'example.com/arch:1');
  const want = await essence(fromStore);
  for (const format of ['docker', 'oci'] as const) {
    const file = path.join(tmp, `${format}.tar`);
    await saveImagesToFile(store, [await store.resolveImage('example.com/arch:1')], format, file);
    const gz = path.join(tmp, `${format}.tar.gz`);
    writeFileSync(gz, gzipSync(readFileSync(file)));
    const dir = path.join(tmp, `${format}-dir`);
    mkdirSync(dir);
    const x = spawnSync('tar', ['-xf', file, '-C', dir]);
    assert.equal(x.status, 0, String(x.stderr));
    for (const where of [file, gz, dir]) {
      const archive = await openImageArchive(where);
      try {
        assert.equal(archive.layout, 'oci', 'kiln save writes an OCI layout (and manifest.json beside it for docker)');
        const entries = await archive.entries();
        assert.equal(entries.length, 1);
        assert.ok(entries[0]!.names.includes('example.com/arch:1'), `${where}: ${JSON.stringify(entries)}`);
        const img = await archive.image();
        assert.equal(img.kind, 'archive');
        assert.equal(img.name, 'example.com/arch:1');
        assert.deepEqual(await essence(img), want, where);
        assert.equal(sha256(await img.rawManifest!()), img.digest);
        // Read in place: the layer's byte range in the file is the blob.
        const l = img.layers[0]!;
        const range = readFileSync(l.file!.path).subarray(l.file!.start, l.file!.end + 1);
        assert.equal(sha256(range), l.digest);
      } finally {
        await archive.close();
      }
    }
  }
});

test('a legacy docker-archive (layer.tar by path, a symlinked layer): an Image without a manifest; kiln load gives it one', async () => {
  const layer = craftTar([{ name: 'hello', content: 'hello\n' }]);
  const diffId = sha256(layer);
  const config = {
    architecture: hostPlatform().architecture,
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [diffId, diffId] },
    history: [{ created_by: 'ADD hello /' }, { created_by: 'ADD hello / again' }],
  };
  const cfg = Buffer.from(JSON.stringify(config));
  const cfgName = `${digestHex(sha256(cfg))}.json`;
  const file = path.join(tmp, 'legacy.tar');
  writeFileSync(
    file,
    craftTar([
      { name: 'aaa/', type: 'dir' },
      { name: 'aaa/layer.tar', content: layer },
      { name: 'bbb/', type: 'dir' },
      { name: 'bbb/layer.tar', type: 'symlink', linkname: '../aaa/layer.tar' },
      { name: cfgName, content: cfg },
      {
        name: 'manifest.json',
        content: JSON.stringify([
          { Config: cfgName, RepoTags: ['legacy:1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] },
        ]),
      },
    ]),
  );
  const archive = await openImageArchive(file);
  try {
    assert.equal(archive.layout, 'docker');
    assert.deepEqual(await archive.entries(), [{ names: ['legacy:1'] }]);
    const img = await archive.image();
    assert.equal(img.id, sha256(cfg));
    assert.equal(img.name, 'docker.io/library/legacy:1');
    assert.equal(img.manifest, undefined);
    assert.deepEqual(
      img.layers.map((l) => [l.digest, l.diffId, l.size]),
      [
        [undefined, diffId, layer.length],
        [undefined, diffId, layer.length],
      ],
    );
    assert.equal(sha256(await bytes(img.layers[1]!.open())), diffId, 'the symlinked layer is its target');
    // Without a manifest it cannot be copied as it is: load makes one.
    const store = await newStore();
    await assert.rejects(
      copyImageToStore(store, img),
      (e: unknown) => e instanceof KilnError && e.code === 'UNSUPPORTED',
    );
    const r = await loadArchive(store, file, file);
    assert.equal(r.images.length, 1);
    assert.equal(r.images[0]!.id, img.id);
    const loaded = await store.resolveImage('legacy:1');
    assert.equal(loaded.manifest.layers[0]!.digest, diffId, 'a legacy layer is stored as the plain tar it is');
    // The same archive through a stream (stdin) loads to the same manifest.
    const again = await newStore();
    const r2 = await loadArchive(again, (await import('node:fs')).createReadStream(file), 'stdin');
    assert.equal(r2.images[0]!.digest, r.images[0]!.digest);
  } finally {
    await archive.close();
  }
});

test('an archive Image saved again and copied into a store keeps every digest', async () => {
  const store = await newStore();
  await writeSmallImage(store, 'example.com/round:1', [{ x: 'x' }]);
  const first = path.join(tmp, 'round-1.tar');
  await saveImagesToFile(store, [await store.resolveImage('example.com/round:1')], 'oci', first);
  const a = await openImageArchive(first);
  const img = await a.image();
  const second = path.join(tmp, 'round-2.tar');
  await saveImagesToFile(store, [img], 'docker', second);
  await a.close();
  const b = await openImageArchive(second);
  const again = await b.image();
  assert.deepEqual(await essence(again), await essence(img));
  const other = await newStore();
  const copied = await copyImageToStore(other, again);
  assert.equal(copied.descriptor.digest, img.digest);
  await b.close();
});

test('archives that are not: refused with the file named, members outside the archive refused', async () => {
  const none = path.join(tmp, 'none.tar');
  writeFileSync(none, craftTar([{ name: 'hello', content: 'x' }]));
  const a = await openImageArchive(none);
  await assert.rejects(a.image(), /not an image archive: no manifest.json or index.json/);
  await a.close();
  const evil = path.join(tmp, 'evil.tar');
  writeFileSync(
    evil,
    craftTar([
      { name: '../evil', content: 'x' },
      { name: 'manifest.json', content: '[]' },
    ]),
  );
  await assert.rejects(openImageArchive(evil), /refusing layer entry "\.\.\/evil"/);
  await assert.rejects(openImageArchive(path.join(tmp, 'absent.tar')), (e: unknown) => {
    return e instanceof KilnError && e.code === 'NOT_FOUND' && /cannot read image archive/.test(e.message);
  });
  // A layer listed in manifest.json but absent.
  const cfg = Buffer.from(
    canonicalJSON({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('x')] } }),
  );
  const lacking = path.join(tmp, 'lacking.tar');
  writeFileSync(
    lacking,
    craftTar([
      { name: 'c.json', content: cfg },
      { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: [], Layers: ['l/layer.tar'] }]) },
    ]),
  );
  const l = await openImageArchive(lacking);
  await assert.rejects(l.image(), /archive lacks l\/layer.tar/);
  await l.close();
});
