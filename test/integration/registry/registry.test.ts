/**
 * The registry client against the real distribution registry (Debian's docker-registry): plain
 * HTTP, TLS with htpasswd Basic auth, token auth with a JWT token server; interop with skopeo;
 * faults injected by a loopback proxy.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { cliPath } from '../../helpers/paths.js';
import {
  certDirFor,
  htpasswdUnavailable,
  registryUnavailable,
  startFaultProxy,
  startRegistry,
  type Registry,
} from '../../helpers/registry.js';
import { Store } from '../../../src/store/store.js';
import { compressedImage } from '../../../src/store/compressed.js';
import { canonicalJSON } from '../../../src/image/canonical.js';
import { sha256 } from '../../../src/util/digest.js';
import { needs } from '../../helpers/prereq.js';

const noRegistry = needs(registryUnavailable());
const noSkopeo = needs(
  spawnSync('sh', ['-c', 'command -v skopeo']).status === 0
    ? undefined
    : 'skopeo is not installed (apt-get install skopeo)',
);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-registry-'));
/** The store holding the test image (made once). */
const srcRoot = path.join(work, 'src-store');
/** The test image's manifest digest on a registry (its layer gzipped), and its layer's there. */
let manifestDigest = '';
let imageId = '';
let layerDigest = '';

function newRoot(name: string): string {
  return path.join(work, `${name}-${randomBytes(3).toString('hex')}`);
}

function skopeo(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('skopeo', args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** skopeo's stdout, or undefined when skopeo is not installed. */
function skopeoOrUndefined(args: string[]): string | undefined {
  if (noSkopeo) return undefined;
  const r = skopeo(args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Blobs and temp files left in a store (to prove nothing partial stayed). */
function storeFiles(root: string): { blobs: string[]; tmp: string[] } {
  const blobs = existsSync(path.join(root, 'blobs/sha256')) ? readdirSync(path.join(root, 'blobs/sha256')) : [];
  const tmpDir = path.join(root, 'tmp');
  const tmp = existsSync(tmpDir) ? readdirSync(tmpDir).filter((f) => f.startsWith('blob-')) : [];
  return { blobs, tmp };
}

let ready: Promise<void> | undefined;
/** Make the test image once (every suite awaits it: suites start before file-level hooks end). */
function setup(): Promise<void> {
  ready ??= makeTestImage();
  return ready;
}

async function makeTestImage(): Promise<void> {
  // A small image with an incompressible 3 MB file, so a cut in the middle of a blob means something.
  const rootfs = path.join(work, 'rootfs');
  mkdirSync(path.join(rootfs, 'data'), { recursive: true });
  writeFileSync(path.join(rootfs, 'data', 'random.bin'), randomBytes(3 << 20));
  writeFileSync(path.join(rootfs, 'hello.txt'), 'hello from kiln\n');
  const tar = path.join(work, 'rootfs.tar');
  assert.equal(spawnSync('tar', ['-C', rootfs, '-cf', tar, '.']).status, 0);
  const r = await runKiln(['import', tar, 'test/small:1', '--change', 'CMD ["/bin/true"]'], { root: srcRoot });
  assert.equal(r.code, 0, r.stderr);
  imageId = r.stdout.trim();
  const insp = JSON.parse((await runKiln(['inspect', 'test/small:1'], { root: srcRoot })).stdout) as {
    Manifest: { Digest: string };
  }[];
  manifestDigest = insp[0]!.Manifest.Digest;
  const store = await Store.open({ root: srcRoot });
  const local = await store.resolveImage('test/small:1');
  // The store keeps the imported layer as a plain tar; a push sends it gzipped, so the manifest on
  // the registry is another one (same image id), as with docker import + docker push.
  assert.equal(local.manifest.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar');
  assert.equal(local.manifest.layers[0]!.digest, local.config.rootfs.diff_ids[0]);
  const sent = await compressedImage(store, local, { compression: 'gzip' });
  assert.notEqual(sent.descriptor.digest, manifestDigest);
  assert.equal(sent.id, imageId);
  manifestDigest = sent.descriptor.digest;
  layerDigest = sent.manifest.layers[0]!.digest;
  const saved = await runKiln(['save', '-o', path.join(work, 'small.tar'), 'test/small:1'], { root: srcRoot });
  assert.equal(saved.code, 0, saved.stderr);
}
after(() => rmSync(work, { recursive: true, force: true }));

describe('plain HTTP registry', { skip: noRegistry }, () => {
  let reg: Registry;
  before(async () => {
    await setup();
    reg = await startRegistry();
  });
  after(async () => reg?.stop());

  test('push, then pull into an empty store: same manifest digest and image id', async () => {
    const ref = `${reg.host}/kiln/small:1`;
    const p = await runKiln(['push', 'test/small:1', ref], { root: srcRoot });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout.trim(), manifestDigest);
    const root = newRoot('pull');
    const r = await runKiln(['pull', ref], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Downloaded newer image/);
    const i = JSON.parse((await runKiln(['inspect', ref], { root })).stdout)[0];
    assert.equal(i.Id, imageId);
    assert.equal(i.Manifest.Digest, manifestDigest);
    // The layer on the registry is a gzip of exactly the imported tar.
    const pulledLayer = gunzipSync(readFileSync(path.join(root, 'blobs', 'sha256', layerDigest.slice(7))));
    assert.equal(sha256(pulledLayer), i.RootFS.Layers[0]);
    // A second push gives the same digest.
    const p2 = await runKiln(['push', 'test/small:1', `${reg.host}/kiln/small:again`], { root: srcRoot });
    assert.equal(p2.code, 0, p2.stderr);
    assert.equal(p2.stdout.trim(), manifestDigest);
    const again = await runKiln(['pull', ref], { root });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Image is up to date/);
    // by digest too
    const digestRoot = newRoot('bydigest');
    const byDigest = await runKiln(['pull', `${reg.host}/kiln/small@${manifestDigest}`], { root: digestRoot });
    assert.equal(byDigest.code, 0, byDigest.stderr);
    const pinned = JSON.parse(
      (await runKiln(['inspect', `${reg.host}/kiln/small@${manifestDigest}`], { root: digestRoot })).stdout,
    )[0];
    assert.equal(pinned.Id, imageId);
    const listed = await runKiln(['images'], { root: digestRoot });
    assert.match(listed.stdout, /kiln\/small\s+<none>/);
  });

  test(
    'skopeo agrees with kiln about what is on the registry, and what skopeo pushes pulls into kiln',
    { skip: noSkopeo },
    async () => {
      const ref = `${reg.host}/kiln/small:1`;
      await runKiln(['push', 'test/small:1', ref], { root: srcRoot });
      const s = skopeo(['inspect', '--tls-verify=false', `docker://${ref}`]);
      assert.equal(s.code, 0, s.stderr);
      const info = JSON.parse(s.stdout) as { Digest: string; Layers: string[] };
      assert.equal(info.Digest, manifestDigest);
      assert.deepEqual(info.Layers, [layerDigest]);
      const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
      const mine = await runKiln(['manifest', 'inspect', '--raw', ref]);
      assert.equal(mine.code, 0, mine.stderr);
      assert.equal(mine.stdout, raw.stdout);
      assert.equal(sha256(mine.stdout), manifestDigest);
      // skopeo copies from kiln's store (an OCI layout) to another repository; kiln pulls that.
      const c = skopeo([
        'copy',
        '--dest-tls-verify=false',
        `oci:${srcRoot}:docker.io/test/small:1`,
        `docker://${reg.host}/skopeo/copied:2`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const sk = JSON.parse(
        skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/skopeo/copied:2`]).stdout,
      ) as { Digest: string };
      const root = newRoot('skopeo');
      const r = await runKiln(['pull', `${reg.host}/skopeo/copied:2`], { root });
      assert.equal(r.code, 0, r.stderr);
      const i = JSON.parse((await runKiln(['inspect', `${reg.host}/skopeo/copied:2`], { root })).stdout)[0];
      assert.equal(i.Manifest.Digest, sk.Digest);
      assert.equal(i.Id, imageId);
    },
  );

  test('chunked upload (PATCH) and a cross-repository mount on the second push', async () => {
    const proxy = await startFaultProxy(reg.host);
    try {
      const root = newRoot('chunk');
      // a fresh store knows no source repository: this push uploads, in 1 MiB chunks
      const tar = path.join(work, 'rootfs.tar');
      assert.equal((await runKiln(['import', tar, 'chunky:1'], { root })).code, 0);
      const p = await runKiln(['push', '--chunk-size', String(1 << 20), 'chunky:1', `${proxy.host}/kiln/chunky:1`], {
        root,
      });
      assert.equal(p.code, 0, p.stderr);
      const patches = proxy.log.filter((l) => l.method === 'PATCH');
      assert.ok(patches.length >= 3, `expected several PATCH chunks, saw ${patches.length}`);
      const pulled = await runKiln(['pull', `${proxy.host}/kiln/chunky:1`], { root: newRoot('chunk-pull') });
      assert.equal(pulled.code, 0, pulled.stderr);
      proxy.log.length = 0;
      const m = await runKiln(['push', 'chunky:1', `${proxy.host}/other/chunky:1`], { root });
      assert.equal(m.code, 0, m.stderr);
      assert.match(m.stderr, /Mounted from another repository/);
      assert.ok(
        proxy.log.some((l) => l.method === 'POST' && /mount=sha256/.test(l.path) && /from=kiln%2Fchunky/.test(l.path)),
        JSON.stringify(proxy.log),
      );
      assert.ok(
        !proxy.log.some((l) => l.method === 'PUT' && /blobs\/uploads/.test(l.path)),
        'no blob was uploaded again',
      );
    } finally {
      await proxy.stop();
    }
  });

  test('an index: the platform is picked (default this machine, --platform another)', async () => {
    const store = await Store.open({ root: srcRoot });
    const img = await store.resolveImage('test/small:1');
    const armConfig = { ...structuredClone(img.config), architecture: 'arm64', variant: 'v8' };
    const arm = await store.writeImage(armConfig, img.manifest.layers);
    await store.setTag('test/small:arm64', arm.descriptor);
    const repo = `${reg.host}/kiln/multi`;
    const pushedAmd = await runKiln(['push', 'test/small:1', `${repo}:amd64`], { root: srcRoot });
    const pushedArm = await runKiln(['push', 'test/small:arm64', `${repo}:arm64`], { root: srcRoot });
    assert.equal(pushedAmd.code, 0, pushedAmd.stderr);
    assert.equal(pushedArm.code, 0, pushedArm.stderr);
    // The manifests as pushed (layers gzipped): what the index names.
    const sentAmd = (await compressedImage(store, img, { compression: 'gzip' })).descriptor;
    const sentArm = (
      await compressedImage(store, await store.resolveImage('test/small:arm64'), { compression: 'gzip' })
    ).descriptor;
    assert.deepEqual([sentAmd.digest, sentArm.digest], [pushedAmd.stdout.trim(), pushedArm.stdout.trim()]);
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { ...sentAmd, platform: { os: 'linux', architecture: 'amd64' } },
        { ...sentArm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    };
    const { RegistryClient } = await import('../../../src/registry/client.js');
    const { parseReference } = await import('../../../src/image/reference.js');
    const client = new RegistryClient();
    await client.putManifest(parseReference(`${repo}:all`), 'all', Buffer.from(canonicalJSON(index)), index.mediaType);
    const root = newRoot('multi');
    const a = await runKiln(['pull', `${repo}:all`], { root });
    assert.equal(a.code, 0, a.stderr);
    assert.equal(JSON.parse((await runKiln(['inspect', `${repo}:all`], { root })).stdout)[0].Id, imageId);
    const b = await runKiln(['pull', '--platform', 'linux/arm64', `${repo}:all`], { root: newRoot('multi-arm') });
    assert.equal(b.code, 0, b.stderr);
    const none = await runKiln(['pull', '--platform', 'linux/s390x', `${repo}:all`], { root: newRoot('multi-none') });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no image for linux\/s390x \(it has: linux\/amd64, linux\/arm64\/v8\)/);
    const m = await runKiln(['manifest', 'inspect', `${repo}:all`]);
    assert.equal(JSON.parse(m.stdout).manifests.length, 2);
  });

  test('clear errors: unknown tag, invalid reference, nothing listening', async () => {
    const missing = await runKiln(['pull', `${reg.host}/kiln/small:nope`], { root: newRoot('err') });
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /not found: cannot get manifest nope on 127\.0\.0\.1:\d+\/kiln\/small: HTTP 404 \(MANIFEST_UNKNOWN/,
    );
    assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
    const bad = await runKiln(['pull', 'Bad//Name'], { root: newRoot('err') });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid reference format/);
    const closed = await runKiln(['pull', '127.0.0.1:9/x:1'], {
      root: newRoot('err'),
      env: { KILN_REGISTRY_TIMEOUT_MS: '3000' },
    });
    assert.equal(closed.code, 1);
    assert.match(closed.stderr, /cannot reach registry 127\.0\.0\.1:9/);
  });

  test('analysis commands take a registry reference: the image is pulled, then read', async () => {
    const ref = `${reg.host}/kiln/analyzed:1`;
    const p = await runKiln(['push', 'test/small:1', ref], { root: srcRoot });
    assert.equal(p.code, 0, p.stderr);
    const root = newRoot('analyze');
    const a = await runKiln(['analyze', ref, '--format', 'json'], { root });
    assert.equal(a.code, 0, a.stderr);
    const report = JSON.parse(a.stdout) as { layers?: unknown[] };
    assert.ok(Array.isArray(report.layers) && report.layers.length === 1, a.stdout.slice(0, 300));
    const i = JSON.parse((await runKiln(['inspect', ref], { root })).stdout)[0];
    assert.equal(i.Id, imageId, 'the pulled image stays in the store');
    const missing = await runKiln(['sbom', `${reg.host}/kiln/nothing:1`], { root });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /is not in the store, and pulling it failed: .*not found/);
  });
});

describe('faults between kiln and the registry', { skip: noRegistry }, () => {
  let reg: Registry;
  before(async () => {
    await setup();
    reg = await startRegistry();
    const p = await runKiln(['push', 'test/small:1', `${reg.host}/kiln/small:1`], { root: srcRoot });
    assert.equal(p.code, 0, p.stderr);
  });
  after(async () => reg?.stop());

  test('a plain layer goes up as it is compressed (one streamed PATCH); when that upload fails, it goes again from the store', async () => {
    // A clean upload: POST, PATCH (the gzip bytes as they come), PUT with the digest; nothing asked first.
    const ok = await startFaultProxy(reg.host, []);
    try {
      const p = await runKiln(['push', 'test/small:1', `${ok.host}/kiln/streamed:1`], { root: newRootWithImage() });
      assert.equal(p.code, 0, p.stderr);
      assert.equal(p.stdout.trim(), manifestDigest, 'the same manifest as a push from stored gzip blobs');
      // The layer's upload session (the config blob goes up beside it, in a session of its own).
      const session = (l: { path: string }) => l.path.split('?')[0]!;
      const patch = ok.log.find((l) => l.method === 'PATCH' && /\/blobs\/uploads\//.test(l.path));
      assert.ok(patch, `the layer was streamed in a PATCH: ${JSON.stringify(ok.log)}`);
      const layerCalls = ok.log.filter((l) => session(l) === session(patch)).map((l) => l.method);
      assert.deepEqual(layerCalls, ['PATCH', 'PUT'], JSON.stringify(ok.log));
      assert.ok(
        !ok.log.some((l) => l.method === 'HEAD' && l.path.includes(layerDigest)),
        'nothing asked about the layer first',
      );
    } finally {
      await ok.stop();
    }
    const bad = await startFaultProxy(reg.host, [
      { method: 'PATCH', path: /\/blobs\/uploads\//, action: 'status', status: 500 },
    ]);
    try {
      const p = await runKiln(['push', 'test/small:1', `${bad.host}/kiln/fallback:1`], { root: newRootWithImage() });
      assert.equal(p.code, 0, p.stderr);
      assert.equal(p.stdout.trim(), manifestDigest);
      assert.ok(
        bad.log.some((l) => l.method === 'PATCH' && l.fault === 'status'),
        'the streamed upload was refused',
      );
      assert.ok(
        bad.log.some((l) => l.method === 'HEAD' && l.path.includes(layerDigest)),
        'then the stored gzip blob was pushed',
      );
      const s = skopeoOrUndefined(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/kiln/fallback:1`]);
      if (s) assert.equal(sha256(s), manifestDigest);
    } finally {
      await bad.stop();
    }
  });

  test('a damaged plain layer in the store: the push stops at once with the diff_id mismatch, nothing of it kept or pushed', async () => {
    const root = newRootWithImage();
    const store = await Store.open({ root });
    const plain = (await store.resolveImage('test/small:1')).manifest.layers[0]!;
    const blob = store.blobPath(plain.digest);
    const bytes = readFileSync(blob);
    const at = bytes.indexOf('hello from kiln');
    assert.ok(at > 0);
    bytes[at] = 'j'.charCodeAt(0); // the tar still reads; its content no longer is the diff_id's
    writeFileSync(blob, bytes);
    const blobsBefore = storeFiles(root).blobs.length;
    const t0 = Date.now();
    const p = await runKiln(['push', 'test/small:1', `${reg.host}/kiln/damaged:1`], { root });
    assert.equal(p.code, 1, p.stderr);
    assert.match(p.stderr, /diff_id mismatch/);
    assert.doesNotMatch(p.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(Date.now() - t0 < 20_000, `it stops at once (${Date.now() - t0} ms), the upload it started torn down`);
    assert.deepEqual(storeFiles(root).tmp, [], 'no half-written blob');
    assert.equal(storeFiles(root).blobs.length, blobsBefore, 'no compressed blob kept');
    const m = await runKiln(['manifest', 'inspect', `${reg.host}/kiln/damaged:1`]);
    assert.notEqual(m.code, 0, 'no manifest pushed');
  });

  test('a connection cut in the middle of a blob is resumed with a Range request', async () => {
    const proxy = await startFaultProxy(reg.host, [
      { method: 'GET', path: new RegExp(`/blobs/${layerDigest}`), action: 'cut' },
    ]);
    try {
      const root = newRoot('cut');
      const r = await runKiln(['pull', `${proxy.host}/kiln/small:1`], { root });
      assert.equal(r.code, 0, r.stderr);
      const gets = proxy.log.filter((l) => l.method === 'GET' && l.path.includes(layerDigest));
      assert.equal(gets[0]?.fault, 'cut');
      assert.match(gets[1]?.range ?? '', /^bytes=[1-9]\d*-$/, JSON.stringify(gets));
      assert.equal(
        JSON.parse((await runKiln(['inspect', `${proxy.host}/kiln/small:1`], { root })).stdout)[0].Id,
        imageId,
      );
    } finally {
      await proxy.stop();
    }
  });

  test('a registry that ignores Range after a cut connection: the blob is taken again from its start', async () => {
    const proxy = await startFaultProxy(reg.host, [
      { method: 'GET', path: new RegExp(`/blobs/${layerDigest}`), action: 'cut' },
      { method: 'GET', path: new RegExp(`/blobs/${layerDigest}`), action: 'no-range' },
    ]);
    try {
      const root = newRoot('norange');
      const r = await runKiln(['pull', `${proxy.host}/kiln/small:1`], { root });
      assert.equal(r.code, 0, r.stderr);
      const gets = proxy.log.filter((l) => l.method === 'GET' && l.path.includes(layerDigest));
      assert.equal(gets[1]?.fault, 'no-range');
      assert.match(gets[1]?.range ?? '', /^bytes=[1-9]\d*-$/, 'kiln asked for the rest');
      assert.equal(gets[1]?.status, 200, 'and got the whole blob');
      assert.equal(
        JSON.parse((await runKiln(['inspect', `${proxy.host}/kiln/small:1`], { root })).stdout)[0].Id,
        imageId,
      );
    } finally {
      await proxy.stop();
    }
  });

  test('a 500 then success: retried', async () => {
    const proxy = await startFaultProxy(reg.host, [
      { method: 'GET', path: /\/manifests\//, action: 'status', status: 500 },
      { method: 'GET', path: new RegExp(`/blobs/${layerDigest}`), action: 'status', status: 503 },
    ]);
    try {
      const r = await runKiln(['pull', `${proxy.host}/kiln/small:1`], { root: newRoot('500') });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(proxy.log.filter((l) => l.fault === 'status').length, 2);
    } finally {
      await proxy.stop();
    }
  });

  test('a blob whose bytes do not match its digest is refused, and nothing of it is kept', async () => {
    const proxy = await startFaultProxy(reg.host, [
      { method: 'GET', path: new RegExp(`/blobs/${layerDigest}`), action: 'corrupt', times: 10 },
    ]);
    try {
      const root = newRoot('corrupt');
      const r = await runKiln(['pull', `${proxy.host}/kiln/small:1`], { root });
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(`blob ${layerDigest} from 127\\.0\\.0\\.1:\\d+/kiln/small was refused: blob digest mismatch`),
      );
      const left = storeFiles(root);
      assert.ok(!left.blobs.includes(layerDigest.slice(7)), 'the corrupt blob is not in the store');
      assert.deepEqual(left.tmp, [], 'no partial blob left');
      const images = await runKiln(['images', '-q'], { root });
      assert.equal(images.stdout.trim(), '', 'no image was tagged');
    } finally {
      await proxy.stop();
    }
  });
});

describe('TLS registry with htpasswd Basic auth', { skip: noRegistry || needs(htpasswdUnavailable()) }, () => {
  let reg: Registry;
  let dockerConfig: string;
  const env = () => ({ DOCKER_CONFIG: dockerConfig });
  before(async () => {
    await setup();
    reg = await startRegistry({ tls: true, users: { alice: 's3cret' } });
    dockerConfig = path.join(work, 'docker-config-basic');
  });
  after(async () => reg?.stop());

  test('an unknown CA is refused with a hint; --cert-dir or --tls-verify=false work', async () => {
    const r = await runKiln(['pull', `${reg.host}/kiln/x:1`], { root: newRoot('tls'), env: env() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach registry .*certificate/i);
    assert.match(r.stderr, /certs\.d/);
    const withCa = await runKiln(['pull', '--cert-dir', certDirFor(reg), `${reg.host}/kiln/x:1`], {
      root: newRoot('tls'),
      env: env(),
    });
    assert.equal(withCa.code, 1);
    assert.match(withCa.stderr, /access denied|log in/i, 'past TLS, stopped by auth');
    const noVerify = await runKiln(['pull', '--tls-verify=false', `${reg.host}/kiln/x:1`], {
      root: newRoot('tls'),
      env: env(),
    });
    assert.match(noVerify.stderr, /access denied|log in/i);
  });

  test("NODE_EXTRA_CA_CERTS: kiln's executable starts node without it (no start-up load) and still trusts its CAs", async () => {
    // node reads the file at start-up (a missing one: a warning before any JavaScript runs); the
    // executable's shell line hands it to kiln instead, which adds its CAs to TLS connections.
    const missing = { ...process.env, NODE_EXTRA_CA_CERTS: path.join(work, 'no-such-ca.pem') };
    // (Node 20 reads it at start-up, so `node kiln.js` warns; Node 24 reads it when TLS first needs it.)
    const viaNode = spawnSync(process.execPath, [cliPath, '--version'], { env: missing, encoding: 'utf8' });
    assert.equal(viaNode.status, 0, viaNode.stderr);
    const viaExe = spawnSync(cliPath, ['--version'], { env: missing, encoding: 'utf8' });
    assert.equal(viaExe.status, 0, viaExe.stderr);
    assert.doesNotMatch(viaExe.stderr, /Ignoring extra certs/, 'not at start-up');
    const pull = (extra: NodeJS.ProcessEnv) =>
      spawnSync(cliPath, ['pull', `${reg.host}/kiln/x:1`], {
        env: { ...process.env, KILN_ROOT: newRoot('extra-ca'), DOCKER_CONFIG: dockerConfig, ...extra },
        encoding: 'utf8',
      });
    const trusted = pull({ NODE_EXTRA_CA_CERTS: reg.ca!.caCert });
    assert.equal(trusted.status, 1);
    assert.match(trusted.stderr, /access denied|log in/i, `past TLS, stopped by auth: ${trusted.stderr}`);
    const untrusted = pull({ NODE_EXTRA_CA_CERTS: '' });
    assert.match(untrusted.stderr, /cannot reach registry .*certificate/i);
    const unreadable = pull({ NODE_EXTRA_CA_CERTS: path.join(work, 'no-such-ca.pem') });
    assert.match(unreadable.stderr, /Ignoring extra certs from .*no-such-ca\.pem/, 'said when it is needed');
    assert.match(unreadable.stderr, /cannot reach registry .*certificate/i);
  });

  test("login (wrong then right), push, pull, logout — in docker's config.json", async () => {
    const certs = certDirFor(reg);
    const wrong = await runKiln(['login', '--cert-dir', certs, '-u', 'alice', '--password-stdin', reg.host], {
      input: 'nope\n',
      env: env(),
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the login of "alice"/);
    const ok = await runKiln(['login', '--cert-dir', certs, '-u', 'alice', '--password-stdin', reg.host], {
      input: 's3cret\n',
      env: env(),
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Login Succeeded/);
    const cfg = JSON.parse(readFileSync(path.join(dockerConfig, 'config.json'), 'utf8'));
    assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), 'alice:s3cret');
    const ref = `${reg.host}/kiln/small:1`;
    const p = await runKiln(['push', '--cert-dir', certs, 'test/small:1', ref], { root: srcRoot, env: env() });
    assert.equal(p.code, 0, p.stderr);
    const root = newRoot('basic');
    const r = await runKiln(['pull', '--cert-dir', certs, ref], { root, env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse((await runKiln(['inspect', ref], { root })).stdout)[0].Id, imageId);
    const out = await runKiln(['logout', reg.host], { env: env() });
    assert.match(out.stdout, /Removing login credentials/);
    assert.equal(JSON.parse(readFileSync(path.join(dockerConfig, 'config.json'), 'utf8')).auths[reg.host], undefined);
    const denied = await runKiln(['pull', '--cert-dir', certs, ref], { root: newRoot('basic'), env: env() });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /access denied/);
  });
});

describe('token auth (the Docker Hub / GHCR flow)', { skip: noRegistry }, () => {
  let reg: Registry;
  let dockerConfig: string;
  const env = () => ({ DOCKER_CONFIG: dockerConfig });
  before(async () => {
    await setup();
    reg = await startRegistry({ tokenAuth: true, users: { bob: 'hunter2' } });
    dockerConfig = path.join(work, 'docker-config-token');
  });
  after(async () => reg?.stop());

  test('anonymous access is refused; after login push and pull work with scoped tokens', async () => {
    const ref = `${reg.host}/team/small:1`;
    const anon = await runKiln(['push', 'test/small:1', ref], { root: srcRoot, env: env() });
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /access denied|refused anonymous access/);
    const login = await runKiln(['login', '-u', 'bob', '--password-stdin', reg.host], { input: 'hunter2', env: env() });
    assert.equal(login.code, 0, login.stderr);
    const bad = await runKiln(['login', '-u', 'bob', '--password-stdin', reg.host], {
      input: 'wrong',
      env: { DOCKER_CONFIG: path.join(work, 'unused') },
    });
    assert.equal(bad.code, 1);
    const p = await runKiln(['push', 'test/small:1', ref], { root: srcRoot, env: env() });
    assert.equal(p.code, 0, p.stderr);
    assert.ok(
      reg.token!.requests.some((r) => r.user === 'bob' && r.scopes.includes('repository:team/small:pull,push')),
      JSON.stringify(reg.token!.requests),
    );
    const root = newRoot('token');
    const r = await runKiln(['pull', ref], { root, env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse((await runKiln(['inspect', ref], { root })).stdout)[0].Id, imageId);
  });

  test('a token the registry refuses as expired during a push is renewed on the 401', async () => {
    // The registry forgives a token some seconds past its expiry (clock leeway), so the token the
    // push gets first is an hour past it; the token response still claims 300 s of life.
    const proxy = await startFaultProxy(reg.host, []);
    try {
      // Credentials are per registry host: log in to the proxy's address, which is what kiln talks to.
      const login = await runKiln(['login', '-u', 'bob', '--password-stdin', proxy.host], {
        input: 'hunter2',
        env: env(),
      });
      assert.equal(login.code, 0, login.stderr);
      const before = reg.token!.requests.length;
      reg.token!.expiredNext = 1;
      const p = await runKiln(['push', 'test/small:1', `${proxy.host}/team/slow:1`], {
        root: newRootWithImage(),
        env: env(),
      });
      assert.equal(p.code, 0, p.stderr);
      assert.ok(
        proxy.log.some((l) => l.status === 401 && l.path !== '/v2/'),
        `the registry refused the expired token: ${JSON.stringify(proxy.log)}`,
      );
      assert.ok(reg.token!.requests.length - before >= 2, 'a new token was fetched');
    } finally {
      reg.token!.expiredNext = 0;
      await proxy.stop();
    }
  });
});

/** A store with the test image whose blobs have no known source repository (so nothing is mounted). */
function newRootWithImage(): string {
  const root = newRoot('fresh');
  const r = spawnSync(process.execPath, [cliPath, 'load', '-i', path.join(work, 'small.tar')], {
    env: { ...process.env, KILN_ROOT: root },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return root;
}
