import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { readIndexBlob, writeIndex } from '../../../src/store/image-index.js';
import { MediaType } from '../../../src/image/types.js';
import { sha256 } from '../../../src/util/digest.js';
import { KilnError } from '../../../src/util/errors.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-image-index-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

test('writeIndex: an OCI index of two images with their platforms, taggable, each platform resolvable', async () => {
  const store = await Store.open({ root: path.join(tmp, 'a') });
  const a = await writeSmallImage(store, 'example.com/one:amd64', [{ 'a.txt': 'x86' }], 'gzip', { platform: amd64 });
  const b = await writeSmallImage(store, 'example.com/one:arm64', [{ 'a.txt': 'arm' }], 'gzip', { platform: arm64 });
  const desc = await writeIndex(store, [
    { descriptor: a.descriptor, platform: amd64 },
    { descriptor: b.descriptor, platform: arm64, annotations: { 'org.example.note': 'arm' } },
  ]);
  assert.equal(desc.mediaType, MediaType.OciIndex);
  const raw = await store.readBlob(desc.digest);
  assert.equal(sha256(raw), desc.digest);
  assert.equal(raw.length, desc.size);
  const index = JSON.parse(raw.toString()) as {
    schemaVersion: number;
    mediaType: string;
    manifests: { digest: string; platform: object; annotations?: object }[];
  };
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, MediaType.OciIndex);
  assert.deepEqual(
    index.manifests.map((m) => [m.digest, m.platform, m.annotations]),
    [
      [a.descriptor.digest, amd64, undefined],
      [b.descriptor.digest, arm64, { 'org.example.note': 'arm' }],
    ],
  );
  // The same images and platforms make the same bytes.
  const again = await writeIndex(store, [
    { descriptor: a.descriptor, platform: amd64 },
    { descriptor: b.descriptor, platform: arm64, annotations: { 'org.example.note': 'arm' } },
  ]);
  assert.equal(again.digest, desc.digest);
  await store.setTag('example.com/one:multi', desc);
  assert.equal((await store.tagged('example.com/one:multi'))?.digest, desc.digest);
  assert.equal((await readIndexBlob(store, desc)).manifests.length, 2);
  const gotArm = await store.resolveImage('example.com/one:multi', {
    platform: { os: 'linux', architecture: 'arm64' },
  });
  assert.equal(gotArm.descriptor.digest, b.descriptor.digest);
  assert.equal(gotArm.config.architecture, 'arm64');
  const gotAmd = await store.resolveImage('example.com/one:multi', { platform: amd64 });
  assert.equal(gotAmd.descriptor.digest, a.descriptor.digest);
  // No temp file is left behind (the blob was written by rename).
  assert.deepEqual(
    readdirSync(store.tmpDir).filter((f) => f.startsWith('blob-')),
    [],
  );
});

test('writeIndex refuses no image, a manifest not in the store, and an index as an entry', async () => {
  const store = await Store.open({ root: path.join(tmp, 'b') });
  const a = await writeSmallImage(store, 'example.com/two:1', [{ 'a.txt': 'a' }]);
  await assert.rejects(writeIndex(store, []), (e: KilnError) => e.code === 'USAGE');
  const absent = { ...a.descriptor, digest: sha256('not here') };
  await assert.rejects(
    writeIndex(store, [{ descriptor: absent, platform: amd64 }]),
    (e: KilnError) => e.code === 'NOT_FOUND' && e.message.includes(absent.digest),
  );
  const idx = await writeIndex(store, [{ descriptor: a.descriptor, platform: amd64 }]);
  await assert.rejects(
    writeIndex(store, [{ descriptor: idx, platform: amd64 }]),
    (e: KilnError) => e.code === 'INVALID' && /not an image manifest/.test(e.message),
  );
  await assert.rejects(
    writeIndex(store, [{ descriptor: a.descriptor, platform: { os: 'linux', architecture: 'AMD 64' } }]),
    (e: KilnError) => e.code === 'USAGE',
  );
});
