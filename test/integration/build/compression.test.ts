/**
 * Layer compression: the store keeps the layers kiln makes as plain tars (nothing on a build's
 * path waits for gzip, as docker's image store); a push, an OCI/docker archive and a registry
 * output carry them compressed — gzip by default, zstd or uncompressed when asked — with the same
 * image id. Compressed blobs are made once per layer and reused by the next push.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable } from '../../helpers/bases.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { Store } from '../../../src/store/store.js';
import { Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const PLAIN = 'application/vnd.oci.image.layer.v1.tar';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

const skip = needs(
  basesUnavailable(),
  registryUnavailable(),
  spawnSync('sh', ['-c', 'command -v skopeo && command -v zstd']).status === 0
    ? undefined
    : 'skopeo or zstd is not installed (apt-get install skopeo zstd)',
);
const ws = new Workspace('kiln-compress-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

interface RawManifest {
  mediaType: string;
  config: { digest: string };
  layers: { mediaType: string; digest: string }[];
}

/** The manifest on the registry, as skopeo reads it (and its bytes' digest). */
function skopeoRaw(ref: string): RawManifest & { digest: string } {
  const r = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return {
    ...(JSON.parse(r.stdout) as RawManifest),
    digest: `sha256:${createHash('sha256').update(r.stdout).digest('hex')}`,
  };
}

/** Pull REF into a new store and run it: its output. */
async function runPulled(ref: string, storeName: string): Promise<string> {
  const root = path.join(ws.dir, storeName);
  const p = await runKiln(['pull', ref], { root });
  assert.equal(p.code, 0, p.stderr);
  const r = await runKiln(['run', ref], { root });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function localManifest(name: string): Promise<RawManifest & { diffIds: string[] }> {
  const img = await (await Store.open({ root: ws.root })).resolveImage(name);
  return { ...img.manifest, mediaType: img.manifest.mediaType ?? '', diffIds: img.config.rootfs.diff_ids };
}

/** The manifest of the single image of an OCI layout tar (what `--output type=oci` wrote). */
function ociArchiveManifest(file: string): RawManifest {
  const dir = `${file}.d`;
  mkdirSync(dir, { recursive: true });
  assert.equal(spawnSync('tar', ['-xf', file, '-C', dir]).status, 0);
  const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  return JSON.parse(
    readFileSync(path.join(dir, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8'),
  ) as RawManifest;
}

describe('layer compression: plain in the store, compressed on the way out', { skip }, () => {
  let reg: Registry;
  let ctx: string;
  before(async () => {
    await ws.importDebian();
    reg = await startRegistry();
    ctx = ws.context('app', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'COPY a.txt /a.txt',
        'RUN echo ran > /ran && cat /a.txt >> /ran',
        'CMD ["cat", "/ran"]',
      ].join('\n'),
      'a.txt': 'hello\n',
    });
  });
  after(async () => reg?.stop());

  test('a build stores plain tars; a push sends gzip (same image id); the next push reuses the gzip blobs', async () => {
    const id = await ws.build(ctx, 'app:1');
    const local = await localManifest('app:1');
    assert.equal(local.layers.length, 3);
    for (const [i, l] of local.layers.entries()) {
      assert.equal(l.mediaType, PLAIN);
      assert.equal(l.digest, local.diffIds[i], 'a plain layer is named by its diff_id');
    }
    const first = await ws.kiln(['push', 'app:1', `${reg.host}/c/app:1`]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((first.stderr.match(/: Compressing\n/g) ?? []).length, 3, first.stderr);
    const sent = skopeoRaw(`${reg.host}/c/app:1`);
    assert.equal(sent.config.digest, id, 'same config: same image id');
    assert.deepEqual(
      sent.layers.map((l) => l.mediaType),
      [GZIP, GZIP, GZIP],
    );
    assert.equal(first.stdout.trim(), sent.digest, 'push prints the digest on the registry');
    const second = await ws.kiln(['push', 'app:1', `${reg.host}/c/other:1`]);
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /Compressing/, 'the gzip blobs are the store’s now');
    assert.equal(second.stdout.trim(), first.stdout.trim(), 'the same manifest');
    // What the registry holds runs, pulled into an empty store.
    assert.equal(await runPulled(`${reg.host}/c/app:1`, 'gzip-store'), 'ran\nhello\n');
  });

  test('--output: registry and oci archives get gzip, compression=zstd / uncompressed where asked, force-compression re-encodes the base', async () => {
    const reg1 = await ws.kiln(['build', '-q', '--output', `type=registry,name=${reg.host}/c/out:gz`, ctx]);
    assert.equal(reg1.code, 0, reg1.stderr);
    assert.deepEqual(
      skopeoRaw(`${reg.host}/c/out:gz`).layers.map((l) => l.mediaType),
      [GZIP, GZIP, GZIP],
    );
    const oci = path.join(ws.dir, 'out.tar');
    const o1 = await ws.kiln(['build', '-q', '--output', `type=oci,dest=${oci}`, ctx]);
    assert.equal(o1.code, 0, o1.stderr);
    assert.deepEqual(
      ociArchiveManifest(oci).layers.map((l) => l.mediaType),
      [GZIP, GZIP, GZIP],
    );
    // zstd without force: the layers this build makes (here from the cache: plain) are zstd; the
    // base, already gzip on a registry-pulled image, would stay — this base is plain, so it is zstd too.
    const zst = path.join(ws.dir, 'zstd.tar');
    const o2 = await ws.kiln(['build', '-q', '--output', `type=oci,dest=${zst},compression=zstd`, ctx]);
    assert.equal(o2.code, 0, o2.stderr);
    assert.deepEqual(
      ociArchiveManifest(zst).layers.map((l) => l.mediaType),
      [ZSTD, ZSTD, ZSTD],
    );
    // A base whose layer is gzip (pulled from the registry): kept without force, re-encoded with it.
    const gzBase = ws.context('on-gz-base', { Dockerfile: `FROM ${reg.host}/c/app:1\nRUN echo more >> /ran\n` });
    const keep = path.join(ws.dir, 'keep.tar');
    const o3 = await ws.kiln(['build', '-q', '--output', `type=oci,dest=${keep},compression=zstd`, gzBase]);
    assert.equal(o3.code, 0, o3.stderr);
    assert.deepEqual(
      ociArchiveManifest(keep).layers.map((l) => l.mediaType),
      [GZIP, GZIP, GZIP, ZSTD],
    );
    const forced = path.join(ws.dir, 'forced.tar');
    const o4 = await ws.kiln([
      'build',
      '-q',
      '--output',
      `type=oci,dest=${forced},compression=zstd,force-compression=true`,
      gzBase,
    ]);
    assert.equal(o4.code, 0, o4.stderr);
    assert.deepEqual(
      ociArchiveManifest(forced).layers.map((l) => l.mediaType),
      [ZSTD, ZSTD, ZSTD, ZSTD],
    );
    assert.equal(o4.stdout.trim(), o3.stdout.trim(), 'one image id whatever the compression');
    // uncompressed to a registry; push --compression-format zstd.
    const r2 = await ws.kiln([
      'build',
      '-q',
      '--output',
      `type=registry,name=${reg.host}/c/out:plain,compression=uncompressed`,
      ctx,
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(
      skopeoRaw(`${reg.host}/c/out:plain`).layers.map((l) => l.mediaType),
      [PLAIN, PLAIN, PLAIN],
    );
    const pz = await ws.kiln(['push', '--compression-format', 'zstd', 'app:1', `${reg.host}/c/app:zstd`]);
    assert.equal(pz.code, 0, pz.stderr);
    assert.deepEqual(
      skopeoRaw(`${reg.host}/c/app:zstd`).layers.map((l) => l.mediaType),
      [ZSTD, ZSTD, ZSTD],
    );
    assert.equal(await runPulled(`${reg.host}/c/app:zstd`, 'zstd-store'), 'ran\nhello\n');
  });

  test('--compression-level: gzip level 1 gives other (bigger) blobs of the same image', async () => {
    const fast = await ws.kiln(['push', '--compression-level', '1', 'app:1', `${reg.host}/c/app:fast`]);
    assert.equal(fast.code, 0, fast.stderr);
    const dflt = skopeoRaw(`${reg.host}/c/app:1`);
    const quick = skopeoRaw(`${reg.host}/c/app:fast`);
    assert.equal(quick.config.digest, dflt.config.digest, 'same image id');
    assert.notEqual(quick.digest, dflt.digest);
    const sizes = (m: RawManifest) => (m.layers as unknown as { size: number }[]).reduce((n, l) => n + l.size, 0);
    assert.ok(
      sizes(quick) > sizes(dflt),
      `level 1 (${sizes(quick)} B) compresses less than the default level 4 (${sizes(dflt)} B)`,
    );
    const oci = path.join(ws.dir, 'level.tar');
    const o = await ws.kiln([
      'build',
      '-q',
      '--output',
      `type=oci,dest=${oci},compression=zstd,compression-level=19`,
      ctx,
    ]);
    assert.equal(o.code, 0, o.stderr);
    assert.deepEqual(
      ociArchiveManifest(oci).layers.map((l) => l.mediaType),
      [ZSTD, ZSTD, ZSTD],
    );
  });

  test('type=store,compression=gzip keeps gzip blobs locally', async () => {
    const r = await ws.kiln(['build', '-q', '-t', 'app:gz', '--output', 'type=store,compression=gzip', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (await localManifest('app:gz')).layers.map((l) => l.mediaType),
      [GZIP, GZIP, GZIP],
    );
  });

  test('bad compression values are usage errors', async () => {
    const b = await ws.kiln(['build', '--output', 'type=store,compression=lz4', ctx]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /unknown compression "lz4" in --output/);
    const f = await ws.kiln(['build', '--output', 'type=oci,dest=x.tar,force-compression=yes', ctx]);
    assert.equal(f.code, 2);
    assert.match(f.stderr, /invalid force-compression "yes"/);
    const lv = await ws.kiln(['build', '--output', 'type=oci,dest=x.tar,compression-level=12', ctx]);
    assert.equal(lv.code, 2);
    assert.match(lv.stderr, /invalid compression-level in --output for gzip/);
    const pl = await ws.kiln(['push', '--compression-level', '0', 'app:1', `${reg.host}/c/app:l0`]);
    assert.equal(pl.code, 2);
    assert.match(pl.stderr, /invalid --compression-level "0" for gzip/);
    const p = await ws.kiln(['push', '--compression-format', 'lz4', 'app:1', `${reg.host}/c/app:lz4`]);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /unknown --compression-format "lz4"/);
  });

  test('gc forgets a compressed variant when its blob goes', async () => {
    const store = await Store.open({ root: ws.root });
    const variants = () =>
      existsSync(path.join(ws.root, 'variants')) ? readdirSync(path.join(ws.root, 'variants')) : [];
    assert.ok(
      variants().some((f) => f.endsWith('.zstd.json')),
      'the zstd outputs left variants',
    );
    for (const img of await store.listImages()) await store.removeTag(img.name);
    await store.gc({ minAgeMs: 0 });
    // The zstd blobs served outputs only: gone, and their variants with them. The gzip ones are
    // also the blobs of the image pulled back from the registry, which cache records still use.
    assert.deepEqual(
      variants().filter((f) => f.endsWith('.zstd.json')),
      [],
    );
    for (const f of variants()) {
      const d = (JSON.parse(readFileSync(path.join(ws.root, 'variants', f), 'utf8')) as { digest: string }).digest;
      assert.ok(await store.hasBlob(d as `sha256:${string}`), `variant ${f}: its blob is kept`);
    }
  });
});
