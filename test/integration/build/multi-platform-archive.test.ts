/**
 * A multi-platform image in archives (docs/multi-platform.md): `kiln build --platform a,b -o
 * type=oci,dest=…` writes an OCI layout whose index.json names the image index (BuildKit's oci
 * exporter), read back by skopeo (each platform's image, a copy of all of them to a real registry
 * that keeps the index digest); `type=docker` is refused as BuildKit refuses it; `kiln save` of an
 * index writes it whole and `kiln load` into an empty store brings back the same index; docker's
 * classic image store loads the docker-archive's one image.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, emulationUnavailable, ensureMultiPlatformBase, hostArch } from '../../helpers/bases.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';
import { dockerdUnavailable, startDockerd } from '../../helpers/dockerd.js';

const skopeoUnavailable = () =>
  spawnSync('sh', ['-c', 'command -v skopeo']).status === 0
    ? undefined
    : 'skopeo is not installed (apt-get install skopeo)';
const skip = needs(
  basesUnavailable(),
  emulationUnavailable('arm64'),
  registryUnavailable(),
  skopeoUnavailable(),
  dockerdUnavailable(),
);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-mp-archive-'));
const root = path.join(work, 'store');
let reg: Registry | undefined;
after(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface IndexDoc {
  mediaType: string;
  manifests: {
    mediaType: string;
    digest: string;
    size: number;
    platform?: { os: string; architecture: string };
    annotations?: Record<string, string>;
  }[];
}

/** The digest a store's tag names (its OCI layout's index.json). */
function taggedDigest(storeRoot: string, ref: string): string {
  const index = JSON.parse(readFileSync(path.join(storeRoot, 'index.json'), 'utf8')) as IndexDoc;
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)?.digest;
  assert.ok(d, `${ref} is tagged in the store ${storeRoot}`);
  return d;
}

function skopeo(args: string[]): Buffer {
  const r = spawnSync('skopeo', args);
  assert.equal(r.status, 0, `skopeo ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout;
}

/** The entries of a tar, in order (GNU tar's listing). */
function tarNames(file: string): string[] {
  const r = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  return dir;
}

describe('a multi-platform image in OCI and docker archives', { skip }, () => {
  const ref = 'localhost/mp-archive:1';
  let ctx = '';
  before(async () => {
    reg = await startRegistry();
    await ensureMultiPlatformBase(root, 'debian-slim', 'localhost:5000/debian-slim:bookworm');
    // COPY only: no RUN, so nothing is emulated while building.
    ctx = context('ctx', {
      'hello.txt': 'hello\n',
      Dockerfile: [
        'FROM localhost:5000/debian-slim:bookworm',
        'ARG TARGETARCH',
        'COPY hello.txt /hello.txt',
        'LABEL arch=$TARGETARCH',
        'CMD ["cat", "/hello.txt"]',
        '',
      ].join('\n'),
    });
  });

  test('-o type=oci writes the index (all platforms, every blob once); skopeo reads each platform and copies them all, keeping the digest', async () => {
    const out = path.join(work, 'mp.tar');
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const r = await runKiln(
      ['build', '--platform', 'linux/amd64,linux/arm64', '-t', ref, '-o', `type=oci,dest=${out}`, ctx],
      { root, env },
    );
    assert.equal(r.code, 0, r.stderr);
    const stored = taggedDigest(root, 'localhost/mp-archive:1');

    // index.json: one descriptor, the image index, with its name.
    const top = JSON.parse(spawnSync('tar', ['-xOf', out, 'index.json']).stdout.toString()) as IndexDoc;
    assert.equal(top.manifests.length, 1);
    const [desc] = top.manifests;
    assert.equal(desc!.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(desc!.digest, stored, "the archive's index is the store's");
    assert.equal(desc!.annotations?.['io.containerd.image.name'], 'localhost/mp-archive:1');
    assert.ok(desc!.annotations?.['org.opencontainers.image.ref.name']);

    // skopeo reads the index, byte for byte, and each platform's image of it.
    const raw = skopeo(['inspect', '--raw', `oci-archive:${out}`]);
    assert.equal(sha256(raw), stored);
    const index = JSON.parse(raw.toString()) as IndexDoc;
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      index.manifests.map((m) => m.platform),
      [
        { architecture: 'amd64', os: 'linux' },
        { architecture: 'arm64', os: 'linux' },
      ],
    );
    for (const arch of ['amd64', 'arm64']) {
      const i = JSON.parse(
        skopeo(['--override-arch', arch, '--override-os', 'linux', 'inspect', `oci-archive:${out}`]).toString(),
      ) as { Architecture: string; Labels: Record<string, string> };
      assert.equal(i.Architecture, arch);
      assert.equal(i.Labels.arch, arch);
    }

    // Every blob of every platform is in it, once; nothing else.
    const names = tarNames(out);
    const blobs = names.filter((n) => n.startsWith('blobs/sha256/') && n !== 'blobs/sha256/');
    assert.equal(new Set(blobs).size, blobs.length, 'each blob once');
    const want = new Set<string>([stored]);
    for (const m of index.manifests) {
      want.add(m.digest);
      const manifest = JSON.parse(
        spawnSync('tar', ['-xOf', out, `blobs/sha256/${m.digest.slice(7)}`]).stdout.toString(),
      ) as {
        config: { digest: string };
        layers: { digest: string }[];
      };
      want.add(manifest.config.digest);
      for (const l of manifest.layers) want.add(l.digest);
    }
    assert.deepEqual(new Set(blobs.map((b) => `sha256:${b.slice('blobs/sha256/'.length)}`)), want);

    // The same build again (from the cache) writes the same bytes.
    const again = path.join(work, 'mp-again.tar');
    const r2 = await runKiln(
      ['build', '--platform', 'linux/amd64,linux/arm64', '-t', ref, '-o', `type=oci,dest=${again}`, ctx],
      { root, env },
    );
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha256(readFileSync(again)), sha256(readFileSync(out)));

    // skopeo copies every platform to a registry: the registry's index is kiln's.
    const dest = `${reg!.host}/mp-archive:t`;
    skopeo(['copy', '--all', `oci-archive:${out}`, `docker://${dest}`, '--dest-tls-verify=false']);
    assert.equal(sha256(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${dest}`])), stored);
  });

  test('-o type=docker of a multi-platform build is refused before building, naming what works', async () => {
    const out = path.join(work, 'mp-docker.tar');
    const r = await runKiln(
      ['build', '--platform', 'linux/amd64,linux/arm64', '-t', ref, '-o', `type=docker,dest=${out}`, ctx],
      { root },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /type=docker writes a docker-archive, which cannot hold the index of a multi-platform build/,
    );
    assert.match(r.stderr, /type=oci/);
    assert.match(r.stderr, /kiln save --platform/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(out), false);
  });

  test('kiln save of the index and kiln load into an empty store: the same index, both platforms, each runs', async () => {
    const saved = path.join(work, 'saved.tar');
    const s = await runKiln(['save', '--format', 'oci', '-o', saved, ref], { root });
    assert.equal(s.code, 0, s.stderr);
    const stored = taggedDigest(root, ref);
    assert.equal(sha256(skopeo(['inspect', '--raw', `oci-archive:${saved}`])), stored);

    const empty = path.join(work, 'empty-store');
    const l = await runKiln(['load', '-i', saved], { root: empty });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /Loaded image: localhost\/mp-archive:1/);
    assert.equal(taggedDigest(empty, ref), stored, 'the same index digest');
    const images = await runKiln(['images'], { root: empty });
    assert.equal(images.code, 0, images.stderr);
    assert.match(images.stdout, /linux\/amd64/);
    assert.match(images.stdout, /linux\/arm64/);
    for (const arch of ['amd64', 'arm64']) {
      const run = await runKiln(['run', '--platform', `linux/${arch}`, ref, 'sh', '-c', 'uname -m; cat /hello.txt'], {
        root: empty,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${arch === 'amd64' ? 'x86_64' : 'aarch64'}\nhello\n`);
    }

    // --platform saves that one image; a docker-archive of the index keeps every platform in its
    // OCI part, and manifest.json names this machine's image (said on stderr), as Docker 25+ writes it.
    const one = path.join(work, 'one.tar');
    const o = await runKiln(['save', '--format', 'oci', '--platform', 'linux/arm64', '-o', one, ref], { root });
    assert.equal(o.code, 0, o.stderr);
    const oneTop = JSON.parse(spawnSync('tar', ['-xOf', one, 'index.json']).stdout.toString()) as IndexDoc;
    const arm64 = (
      JSON.parse(skopeo(['inspect', '--raw', `oci-archive:${saved}`]).toString()) as IndexDoc
    ).manifests.find((m) => m.platform?.architecture === 'arm64')!;
    assert.deepEqual(
      oneTop.manifests.map((m) => [m.mediaType, m.digest]),
      [[arm64.mediaType, arm64.digest]],
    );
    const dockerTar = path.join(work, 'docker.tar');
    const d = await runKiln(['save', '-o', dockerTar, ref], { root });
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stderr, new RegExp(`note: .*multi-platform.*manifest.json names the linux/${hostArch} image`));
    const dockerTop = JSON.parse(spawnSync('tar', ['-xOf', dockerTar, 'index.json']).stdout.toString()) as IndexDoc;
    assert.equal(dockerTop.manifests[0]!.digest, stored);
    const manifestJson = JSON.parse(spawnSync('tar', ['-xOf', dockerTar, 'manifest.json']).stdout.toString()) as {
      Config: string;
      RepoTags: string[];
    }[];
    assert.equal(manifestJson.length, 1);
    assert.deepEqual(manifestJson[0]!.RepoTags, ['localhost/mp-archive:1']);
    const config = JSON.parse(spawnSync('tar', ['-xOf', dockerTar, manifestJson[0]!.Config]).stdout.toString()) as {
      architecture: string;
    };
    assert.equal(config.architecture, hostArch);

    // Docker's classic image store (overlay2) loads that image from it under the name.
    const dockerd = await startDockerd();
    try {
      const dl = dockerd.docker(['load', '-i', dockerTar]);
      assert.equal(dl.code, 0, dl.stderr);
      const di = dockerd.docker(['image', 'inspect', '-f', '{{.Architecture}} {{.Id}}', 'localhost/mp-archive:1']);
      assert.equal(di.code, 0, di.stderr);
      assert.equal(di.stdout.trim(), `${hostArch} sha256:${manifestJson[0]!.Config.slice('blobs/sha256/'.length)}`);
    } finally {
      await dockerd.stop();
    }
  });
});
