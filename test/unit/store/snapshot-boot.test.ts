/**
 * Snapshots are written without a sync (RUN overlays are mounted volatile, sandbox/rootfs.ts): each
 * carries the boot id it was made in (CHAIN.boot beside it), and a later boot drops it at its first
 * look-up — a layer with a blob is unpacked again, a snapshot-only layer is missing (its step runs
 * again). Same boot, or no marker (an older kiln's, synced by its unmounts): trusted.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store, layersPresentIn } from '../../../src/store/store.js';
import { MediaType } from '../../../src/image/types.js';
import { chainId, sha256, type Digest } from '../../../src/util/digest.js';
import { writeSmallImage } from '../../helpers/small-image.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-snapshot-boot-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const thisBoot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const otherBoot = '00000000-0000-4000-8000-000000000000';

test('an unpacked snapshot carries this boot; one of another boot (torn by a power loss) is unpacked again from its blob', async () => {
  const store = await Store.open({ root: path.join(tmp, 'unpacked') });
  const img = await writeSmallImage(store, 'example.com/boot:1', [{ 'a.txt': 'alpha' }, { 'b.txt': 'beta' }]);
  const ids = img.config.rootfs.diff_ids;
  const dirs = await store.snapshots(img.manifest.layers, ids);
  assert.equal(dirs.length, 2);
  for (const d of dirs) assert.equal(readFileSync(`${d}.boot`, 'utf8'), thisBoot, `${d}: made in this boot`);
  const top = dirs[1]!;
  // Same boot: taken as it is (a file written since stays: the snapshot is not made again).
  writeFileSync(path.join(top, 'same-boot'), '');
  assert.deepEqual(await store.snapshots(img.manifest.layers, ids), dirs);
  assert.ok(existsSync(path.join(top, 'same-boot')));
  // Another boot: the file is as a power loss may have left it (empty), the snapshot untrusted.
  writeFileSync(path.join(top, 'b.txt'), '');
  writeFileSync(`${top}.boot`, otherBoot);
  assert.deepEqual(await store.snapshots(img.manifest.layers, ids), dirs);
  assert.equal(readFileSync(path.join(top, 'b.txt'), 'utf8'), 'beta', 'unpacked again from the blob');
  assert.ok(!existsSync(path.join(top, 'same-boot')));
  assert.equal(readFileSync(`${top}.boot`, 'utf8'), thisBoot);
  assert.equal(readFileSync(path.join(dirs[0]!, 'a.txt'), 'utf8'), 'alpha', 'the layer below left alone');
});

test('a snapshot-only layer: present in the boot that made it; dropped (so missing) in another, or when its marker lost its bytes', async () => {
  const root = path.join(tmp, 'snaponly');
  const store = await Store.open({ root });
  const diffId = sha256(Buffer.from('a layer no blob holds')) as Digest;
  const layer = { mediaType: MediaType.OciLayer, digest: diffId, size: 1024 };
  const adopt = async () => {
    const upper = path.join(root, 'upper');
    mkdirSync(upper, { recursive: true });
    writeFileSync(path.join(upper, 'made'), 'by a RUN');
    assert.equal(await store.adoptSnapshot([diffId], upper), true);
  };
  const snap = store.snapshotDir(chainId([diffId]) as Digest);
  await adopt();
  assert.equal(readFileSync(`${snap}.boot`, 'utf8'), thisBoot);
  assert.equal(await store.layersPresent([layer], [diffId]), true);
  assert.equal(await store.hasSnapshot([diffId]), true);
  // An adopt over a trusted snapshot leaves both alone.
  mkdirSync(path.join(root, 'again'));
  assert.equal(await store.adoptSnapshot([diffId], path.join(root, 'again')), false);

  writeFileSync(`${snap}.boot`, otherBoot);
  assert.equal(await layersPresentIn(root, [layer], [diffId]), false, 'another boot: not trusted');
  assert.ok(!existsSync(snap), 'dropped');
  assert.equal(await store.layersPresent([layer], [diffId]), false);

  // Made again (the step ran again): trusted in this boot.
  await adopt();
  assert.equal(await store.layersPresent([layer], [diffId]), true);
  writeFileSync(`${snap}.boot`, ''); // the marker's bytes lost with the power
  assert.equal(await store.hasSnapshot([diffId]), false);
  assert.ok(!existsSync(snap));

  // No marker (a snapshot an older kiln made, its unmounts synced): trusted, as before.
  await adopt();
  rmSync(`${snap}.boot`);
  assert.equal(await store.layersPresent([layer], [diffId]), true);
  assert.ok(statSync(snap).isDirectory());
});

test('gc removes a snapshot with its marker, and keeps the marker of a snapshot it keeps', async () => {
  const store = await Store.open({ root: path.join(tmp, 'gc') });
  const img = await writeSmallImage(store, 'example.com/gc:1', [{ 'a.txt': 'alpha' }]);
  const [kept] = await store.snapshots(img.manifest.layers, img.config.rootfs.diff_ids);
  const other = await writeSmallImage(store, 'example.com/gc:2', [{ 'z.txt': 'zulu' }]);
  const [dropped] = await store.snapshots(other.manifest.layers, other.config.rootfs.diff_ids);
  await store.removeTag('example.com/gc:2');
  const r = await store.gc({ minAgeMs: 0 });
  assert.equal(r.snapshots, 1);
  assert.ok(existsSync(kept!) && existsSync(`${kept}.boot`));
  assert.ok(!existsSync(dropped!) && !existsSync(`${dropped}.boot`));
});
