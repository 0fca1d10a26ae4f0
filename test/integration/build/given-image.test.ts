/**
 * A library caller's `Image` as a named build context (kind 'given'): an image held in an archive,
 * never loaded, reached by `FROM NAME` and `COPY --from=NAME`; it is copied into the build's store
 * and verified on the way.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { build } from '../../../src/engine/engine.js';
import { Store } from '../../../src/store/store.js';
import { openStoreImage } from '../../../src/store/image.js';
import { saveImagesToFile } from '../../../src/archive/save.js';
import { openImageArchive } from '../../../src/archive/read.js';
import { openLayer } from '../../../src/layer/decompress.js';
import { readTar } from '../../../src/layer/tarstream.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-given-image-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("an archive's Image as a named context: FROM it and COPY --from it, without loading the archive", async () => {
  const src = await Store.open({ root: path.join(tmp, 'src') });
  await writeSmallImage(src, 'example.com/given:1', [{ 'a.txt': 'alpha\n' }, { 'b.txt': 'beta\n' }]);
  const file = path.join(tmp, 'given.tar');
  await saveImagesToFile(src, [await src.resolveImage('example.com/given:1')], 'oci', file);
  const archive = await openImageArchive(file);
  const given = await archive.image();
  const store = await Store.open({ root: path.join(tmp, 'build') });
  const ctxDir = path.join(tmp, 'ctx');
  mkdirSync(ctxDir);
  const dockerfile = [
    'FROM scratch AS pick',
    'COPY --from=given /b.txt /picked.txt',
    'FROM given',
    'COPY --from=pick /picked.txt /copied.txt',
    '',
  ].join('\n');
  writeFileSync(path.join(ctxDir, 'Dockerfile'), dockerfile);
  try {
    const r = await build({
      store,
      contextDir: ctxDir,
      dockerfileText: dockerfile,
      dockerfileName: 'Dockerfile',
      tags: ['example.com/built:1'],
      namedContexts: [{ name: 'given', kind: 'given', image: given }],
    });
    const built = await openStoreImage(store, 'example.com/built:1');
    assert.equal(built.id, r.imageId);
    // The given image's layers come first, unchanged; the COPY's layer holds the file from the other stage.
    assert.deepEqual(
      built.layers.slice(0, 2).map((l) => l.digest),
      given.layers.map((l) => l.digest),
    );
    assert.equal(built.layers.length, 3);
    const files: Record<string, string> = {};
    for await (const { header, body } of readTar(openLayer(built.layers[2]!.open()))) {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      files[header.name] = Buffer.concat(chunks).toString();
    }
    assert.deepEqual(files, { 'copied.txt': 'beta\n' });
  } finally {
    await archive.close();
  }
});
