/**
 * `kiln manifest create|annotate|push|rm|inspect` against a real registry: lists made from images
 * of the store and from references on the registry, pushed and read back by skopeo.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';
import { runKiln } from '../../helpers/kiln.js';
import { writeSmallImage } from '../../helpers/small-image.js';
import { Store } from '../../../src/store/store.js';
import { sha256 } from '../../../src/util/digest.js';
import type { LoadedImage } from '../../../src/store/store.js';

const skip = needs(
  registryUnavailable(),
  spawnSync('sh', ['-c', 'command -v skopeo']).status === 0
    ? undefined
    : 'skopeo is not installed (apt-get install skopeo)',
);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-manifest-cli-'));
const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64' };

interface IndexDoc {
  mediaType: string;
  manifests: { digest: string; platform: Record<string, unknown>; annotations?: Record<string, string> }[];
}

describe('kiln manifest', { skip }, () => {
  let reg: Registry;
  const root = path.join(work, 'store');
  let a: LoadedImage;
  let b: LoadedImage;
  let c: LoadedImage;
  before(async () => {
    reg = await startRegistry();
    const store = await Store.open({ root });
    a = await writeSmallImage(store, 'local/app:amd64', [{ 'arch.txt': 'x86-64' }], 'gzip', { platform: amd64 });
    b = await writeSmallImage(store, 'local/app:arm64', [{ 'arch.txt': 'aarch64' }], 'gzip', { platform: arm64 });
    c = await writeSmallImage(store, 'local/other:amd64', [{ 'arch.txt': 'another x86-64' }], 'gzip', {
      platform: amd64,
    });
  });
  after(async () => {
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const inspectStore = async (name: string, r = root): Promise<IndexDoc> => {
    const i = await runKiln(['manifest', 'inspect', name], { root: r });
    assert.equal(i.code, 0, i.stderr);
    return JSON.parse(i.stdout) as IndexDoc;
  };

  test('create from images of the store; inspect reads the store list; the mistakes docker names', async () => {
    const r = await runKiln(['manifest', 'create', 'local/app:multi', 'local/app:amd64', 'local/app:arm64'], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Created manifest list docker\.io\/local\/app:multi \(linux\/amd64, linux\/arm64\)/);
    const digest = r.stdout.trim();
    const doc = await inspectStore('local/app:multi');
    assert.equal(doc.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      doc.manifests.map((m) => [m.digest, m.platform]),
      [
        [a.descriptor.digest, amd64],
        [b.descriptor.digest, arm64],
      ],
    );
    const raw = await runKiln(['manifest', 'inspect', '--raw', 'local/app:multi'], { root });
    assert.equal(sha256(raw.stdout), digest);

    const again = await runKiln(['manifest', 'create', 'local/app:multi', 'local/app:amd64'], { root });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /refusing to amend an existing manifest list with no --amend flag/);
    const dup = await runKiln(['manifest', 'create', '--amend', 'local/app:multi', 'local/app:amd64'], { root });
    assert.equal(dup.code, 2);
    assert.match(
      dup.stderr,
      /local\/app:amd64 \(sha256:[a-f0-9]{64}\) is already in the manifest list local\/app:multi/,
    );
    const clash = await runKiln(['manifest', 'create', '--amend', 'local/app:multi', 'local/other:amd64'], { root });
    assert.equal(clash.code, 2);
    assert.match(clash.stderr, /is for linux\/amd64, and local\/app:multi has an image for that platform already/);
    const notList = await runKiln(['manifest', 'create', 'local/app:amd64', 'local/app:arm64'], { root });
    assert.equal(notList.code, 1);
    assert.match(notList.stderr, /local\/app:amd64 is not a manifest list: it is an image/);
    const nested = await runKiln(['manifest', 'create', 'local/nested:1', 'local/app:multi'], { root });
    assert.equal(nested.code, 1);
    assert.match(nested.stderr, /local\/app:multi is a manifest list/);
    const all = await runKiln(['manifest', 'create', '--all', 'local/nested:1', 'local/app:multi'], { root });
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout.trim(), digest);
    // Nothing was changed by the refused commands.
    assert.equal(sha256((await runKiln(['manifest', 'inspect', '--raw', 'local/app:multi'], { root })).stdout), digest);
  });

  test('annotate: platform fields and annotations of one image; an image not in the list', async () => {
    const r = await runKiln(
      [
        'manifest',
        'annotate',
        'local/app:multi',
        'local/app:arm64',
        '--variant',
        'v8',
        '--os-features',
        'a,b',
        '--annotation',
        'org.example.tier=gold',
      ],
      { root },
    );
    assert.equal(r.code, 0, r.stderr);
    const doc = await inspectStore('local/app:multi');
    assert.deepEqual(doc.manifests[1]!.platform, { ...arm64, variant: 'v8', 'os.features': ['a', 'b'] });
    assert.deepEqual(doc.manifests[1]!.annotations, { 'org.example.tier': 'gold' });
    assert.deepEqual(doc.manifests[0]!.platform, amd64);
    const missing = await runKiln(['manifest', 'annotate', 'local/app:multi', 'local/other:amd64', '--os', 'linux'], {
      root,
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /manifest for image local\/other:amd64 does not exist in local\/app:multi/);
    const clash = await runKiln(
      ['manifest', 'annotate', 'local/app:multi', 'local/app:arm64', '--arch', 'amd64', '--variant', ''],
      {
        root,
      },
    );
    assert.equal(clash.code, 2);
    assert.match(clash.stderr, /has an image for linux\/amd64 already/);
    void c;
  });

  test('push (every image, then the list, byte for byte), create from registry references, --purge, rm', async () => {
    const dest = `${reg.host}/kiln/multi:1`;
    const p = await runKiln(['manifest', 'push', 'local/app:multi', dest], { root });
    assert.equal(p.code, 0, p.stderr);
    const digest = p.stdout.trim();
    const sk = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${dest}`]);
    assert.equal(sk.status, 0, sk.stderr?.toString());
    assert.equal(sha256(sk.stdout), digest);
    assert.equal(sha256((await runKiln(['manifest', 'inspect', '--raw', 'local/app:multi'], { root })).stdout), digest);
    // The registry's list, read by kiln manifest inspect (no store list of that name).
    const remote = await runKiln(['manifest', 'inspect', dest], { root });
    assert.equal(remote.code, 0, remote.stderr);
    assert.equal((JSON.parse(remote.stdout) as IndexDoc).manifests.length, 2);

    // Another store makes a list from the registry's references: the images are pulled, untagged.
    const other = path.join(work, 'other');
    const refused = await runKiln(['manifest', 'create', 'local/copy:1', dest], { root: other });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is a manifest list/);
    const copy = await runKiln(['manifest', 'create', '--all', 'local/copy:1', dest], { root: other });
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(copy.stdout.trim(), digest);
    const one = await runKiln(['manifest', 'create', 'local/one:1', `${reg.host}/kiln/multi@${b.descriptor.digest}`], {
      root: other,
    });
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual((await inspectStore('local/one:1', other)).manifests[0]!.platform, arm64);
    const p2 = await runKiln(['manifest', 'push', '--purge', 'local/copy:1', `${reg.host}/kiln/copy:1`], {
      root: other,
    });
    assert.equal(p2.code, 0, p2.stderr);
    assert.equal(p2.stdout.trim(), digest);
    const gone = await runKiln(['manifest', 'rm', 'local/copy:1'], { root: other });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /No such manifest: local\/copy:1/);

    const notList = await runKiln(['manifest', 'rm', 'local/app:amd64'], { root });
    assert.equal(notList.code, 1);
    assert.match(notList.stderr, /local\/app:amd64 is not a manifest list/);
    const rm = await runKiln(['manifest', 'rm', 'local/app:multi', 'local/nested:1'], { root });
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, 'Deleted: local/app:multi\nDeleted: local/nested:1\n');
    // The images stay.
    assert.equal((await runKiln(['inspect', 'local/app:arm64'], { root })).code, 0);
    const pushGone = await runKiln(['manifest', 'push', 'local/app:multi', dest], { root });
    assert.equal(pushGone.code, 1);
    assert.match(pushGone.stderr, /no such manifest list: local\/app:multi/);
  });
});
