import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { cachedBaseImageFacts } from '../../../src/analyze/lint/base-facts.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-store-index-reads-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('a tag made while another process changed index.json keeps that change (the index is read again under the lock)', async () => {
  const root = path.join(tmp, 'concurrent');
  const a = await Store.open({ root });
  const b = await Store.open({ root });
  const img = await writeSmallImage(a, 'first:1', [{ f: '1' }]);
  // `a` has read and parsed the index (its tag above); `b`, another process, adds a name.
  await b.setTag('second:1', img.descriptor);
  await a.setTag('third:1', img.descriptor);
  const names = (await a.listImages()).map((i) => i.name).sort();
  assert.deepEqual(names, ['docker.io/library/first:1', 'docker.io/library/second:1', 'docker.io/library/third:1']);
  assert.deepEqual(
    (JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8')) as { manifests: unknown[] }).manifests.length,
    3,
  );
  // The index is written through a temp file beside it: none is left.
  assert.deepEqual(
    readdirSync(root).filter((f) => f.startsWith('.tmp-')),
    [],
  );
});

test('the same tag again writes nothing; a caller changing what listImages gave does not change the next read', async () => {
  const root = path.join(tmp, 'copies');
  const s = await Store.open({ root });
  const img = await writeSmallImage(s, 'same:1', [{ f: '1' }]);
  const before = readFileSync(path.join(root, 'index.json'));
  await s.setTag('same:1', img.descriptor);
  assert.ok(readFileSync(path.join(root, 'index.json')).equals(before));
  const listed = await s.listImages();
  listed[0]!.descriptor.digest = `sha256:${'0'.repeat(64)}`;
  assert.equal((await s.listImages())[0]!.descriptor.digest, img.descriptor.digest);
});

test('resolveImage gives each caller its own copy of a base image it loaded before', async () => {
  const root = path.join(tmp, 'resolve');
  const s = await Store.open({ root });
  await writeSmallImage(s, 'base:1', [{ f: '1' }]);
  const one = await s.resolveImage('base:1');
  one.config.config!.Env!.push('CHANGED=1');
  one.manifest.layers.pop();
  const two = await s.resolveImage('base:1');
  assert.deepEqual(two.config.config!.Env, ['PATH=/usr/bin:/bin']);
  assert.equal(two.manifest.layers.length, 1);
  assert.equal(two.name, 'docker.io/library/base:1');
});

test('cachedBaseImageFacts: remembered while each name points at the same image, read again when a name moves', async () => {
  const root = path.join(tmp, 'facts');
  const s = await Store.open({ root });
  await writeSmallImage(s, 'base:1', [{ f: '1' }]);
  const input = { text: 'FROM base:1\nRUN true\n', buildArgs: new Map<string, string>() };
  let planned = 0;
  const refs = () => {
    planned++;
    return ['base:1'];
  };
  const first = await cachedBaseImageFacts(s, input, refs);
  assert.deepEqual(first.get('base:1')?.env, ['PATH']);
  assert.equal(planned, 1);
  // Another build of the same Dockerfile: from the store's file, the Dockerfile not planned again.
  const again = await cachedBaseImageFacts(await Store.open({ root }), input, refs);
  assert.deepEqual(again, first);
  assert.equal(planned, 1);
  // The name now points at another image (with another ENV): the facts are read again.
  const other = await writeSmallImage(s, 'other:1', [{ g: '2' }]);
  const config = structuredClone(other.config);
  config.config = { Env: ['PATH=/bin', 'LANG=C'] };
  const moved = await s.writeImage(config, other.manifest.layers);
  await s.setTag('base:1', moved.descriptor);
  const after = await cachedBaseImageFacts(await Store.open({ root }), input, refs);
  assert.deepEqual(after.get('base:1')?.env, ['PATH', 'LANG']);
  assert.equal(planned, 2);
  // Another Dockerfile text is another key.
  await cachedBaseImageFacts(s, { ...input, text: 'FROM base:1\n' }, refs);
  assert.equal(planned, 3);
  // A damaged file is read as absent.
  for (const f of readdirSync(path.join(root, 'checks'))) rmSync(path.join(root, 'checks', f));
  const missing = await cachedBaseImageFacts(s, input, () => ['absent:1']);
  assert.equal(missing.size, 0);
});

test('an image this Store wrote loads as written, each caller with its own copy', async () => {
  const root = path.join(tmp, 'written');
  const s = await Store.open({ root });
  const img = await writeSmallImage(s, 'mine:1', [{ f: '1' }]);
  const one = await s.loadImage(img.descriptor);
  const fresh = await (await Store.open({ root })).loadImage(img.descriptor);
  assert.deepEqual({ ...one, name: undefined }, { ...fresh, name: undefined }, 'as another Store reads it from disk');
  one.config.history!.push({ created_by: 'changed' });
  one.manifest.layers.length = 0;
  const two = await s.loadImage(img.descriptor);
  assert.equal(two.manifest.layers.length, 1);
  assert.equal(two.config.history!.length, 2);
});

test("index.json lists its names in code-unit order (not the host's collation), with setTag and setTags alike", async () => {
  const root = path.join(tmp, 'order');
  const s = await Store.open({ root });
  const img = await writeSmallImage(s, 'app:b', [{ f: '1' }]);
  await s.setTag('app:B', img.descriptor);
  await s.setTags([
    { name: 'app:a', descriptor: img.descriptor },
    { name: 'app-x:1', descriptor: img.descriptor },
  ]);
  const names = (
    JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8')) as {
      manifests: { annotations: Record<string, string> }[];
    }
  ).manifests.map((d) => d.annotations['org.opencontainers.image.ref.name']);
  // ICU's collation (localeCompare) gives app-x:1, app:a, app:b, app:B.
  assert.deepEqual(names, [
    'docker.io/library/app-x:1',
    'docker.io/library/app:B',
    'docker.io/library/app:a',
    'docker.io/library/app:b',
  ]);
});

test('a JSON blob reads as what was stored; a missing one is NOT_FOUND, a damaged one INVALID', async () => {
  const root = path.join(tmp, 'json-blobs');
  const s = await Store.open({ root });
  const doc = { schemaVersion: 2, note: 'a document' };
  const { digest } = await s.putBlob(JSON.stringify(doc));
  assert.deepEqual(await s.readJSON(digest), doc);
  const missing = `sha256:${'0'.repeat(64)}` as const;
  await assert.rejects(s.readJSON(missing), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
  const damaged = await s.putBlob('{"cut short');
  await assert.rejects(s.readJSON(damaged.digest), (e: Error & { code?: string }) => e.code === 'INVALID');
});
