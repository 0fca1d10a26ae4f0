/**
 * Builder-stage layers kept as snapshots only: a RUN layer of a stage the image is not made of
 * gets no blob (no gzip, no second write), only its snapshot and its diff_id. When an image comes
 * to need it (a later `--target` of that stage, from the cache), it is encoded from the snapshot
 * then, and proved by its diff_id. The cache keeps such snapshots through `kiln prune`.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { basesUnavailable } from '../../helpers/bases.js';
import { chainId, type Digest } from '../../../src/util/digest.js';
import { savedImage, Workspace } from './util.js';
import { parseJsonProgress, type Built } from './cache-helpers.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-snaponly-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

async function build(ctx: string, tag: string, extra: string[] = []): Promise<Built> {
  const r = await ws.kiln(['build', '--progress', 'json', '-t', tag, ...extra, ctx]);
  assert.equal(r.code, 0, `build failed: ${r.stderr}\n${r.stdout.split('\n').slice(-5).join('\n')}`);
  return parseJsonProgress(r.stdout, r.stderr, tag);
}

const hex = (d: string) => d.slice('sha256:'.length);
const blob = (d: string) => existsSync(path.join(ws.root, 'blobs', 'sha256', hex(d)));
const snapshot = (diffIds: string[]) => existsSync(path.join(ws.root, 'snapshots', hex(chainId(diffIds as Digest[]))));
const ran = (b: Built) => b.steps.filter((s) => !s.cached).map((s) => s.text);

/** The manifest of a tagged image, read from the store's OCI layout. */
function manifestOf(tag: string): { layers: { mediaType: string; digest: string }[] } {
  const index = JSON.parse(readFileSync(path.join(ws.root, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name']?.endsWith(tag));
  assert.ok(d, `${tag} not in index.json`);
  return JSON.parse(readFileSync(path.join(ws.root, 'blobs', 'sha256', hex(d.digest)), 'utf8')) as {
    layers: { mediaType: string; digest: string }[];
  };
}

describe('builder-stage layers as snapshots only', { skip }, () => {
  let ctx: string;
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('app', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        // A file, a deletion (a whiteout in the layer) and a replaced directory (opaque).
        'RUN mkdir -p /out /opt/tree/old && head -c 300000 /dev/urandom > /out/r.bin && echo "$(date +%s%N)" > /out/stamp && rm /etc/issue',
        'RUN rm -rf /opt/tree && mkdir -p /opt/tree/new && cd /out && sha256sum r.bin stamp > SUMS && ln -s r.bin /out/link',
        'FROM debian-slim:bookworm',
        'COPY --from=builder /out /app',
        'RUN echo shipped > /shipped',
        'CMD ["cat", "/app/SUMS"]',
      ].join('\n'),
    });
  });

  test('a builder RUN layer has a snapshot and no blob; the final image is whole', async () => {
    const b = await build(ctx, 'app:1');
    const [run1, run2] = b.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN'));
    assert.ok(run1?.layer && run2?.layer, 'both builder RUNs made layers');
    const base = (await ws.inspect('debian-slim:bookworm')).RootFS.Layers;
    for (const [i, l] of [run1.layer, run2.layer].entries()) {
      assert.ok(!blob(l), `builder layer ${l}: no blob`);
      assert.ok(
        snapshot([...base, ...[run1.layer, run2.layer].slice(0, i + 1)]),
        `builder layer ${l}: its snapshot (named by its diff_id chain)`,
      );
    }
    // The final stage's own RUN layer ships: a blob, the plain tar (digest = diff_id) the store keeps.
    const shipped = b.steps.find((s) => s.text === 'RUN echo shipped > /shipped')!.layer!;
    assert.ok(blob(shipped));
    const ids = (await ws.inspect('app:1')).RootFS.Layers;
    for (const [i, l] of manifestOf('app:1').layers.entries()) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar');
      assert.equal(l.digest, ids[i]);
      assert.ok(blob(l.digest), `manifest layer ${l.digest} in the store`);
    }
    assert.equal(
      await ws.sh('app:1', 'cd /app && sha256sum -c SUMS >/dev/null && readlink link && cat /shipped'),
      'r.bin\nshipped\n',
    );
  });

  test('--target of the builder stage later: its cached snapshot-only layers are encoded then, and match their diff_ids', async () => {
    await build(ctx, 'app:1');
    const b = await build(ctx, 'builder:1', ['--target', 'builder']);
    assert.deepEqual(ran(b), [], 'every builder step from the cache');
    const cachedLayers = b.steps.filter((s) => s.text.startsWith('RUN')).map((s) => s.layer!);
    const diffIds = (await ws.inspect('builder:1')).RootFS.Layers;
    assert.deepEqual(diffIds.slice(-2), cachedLayers, 'the image has the snapshot-only layers (by diff_id)');
    const m = manifestOf('builder:1');
    for (const [i, l] of m.layers.entries()) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar');
      // Each blob is exactly the tar its diff_id names.
      const tar = readFileSync(path.join(ws.root, 'blobs', 'sha256', hex(l.digest)));
      assert.equal(`sha256:${createHash('sha256').update(tar).digest('hex')}`, diffIds[i]);
    }
    // The file system, read from `kiln save`: the whiteout and the opaque directory applied.
    const fs = (await savedImage(ws, 'builder:1')).fs;
    assert.ok(fs.has('/out/r.bin') && fs.has('/out/SUMS'));
    assert.ok(!fs.has('/etc/issue'), 'the whiteout of /etc/issue');
    assert.ok(fs.has('/opt/tree/new') && !fs.has('/opt/tree/old'), 'the opaque /opt/tree');
    assert.equal(await ws.sh('builder:1', 'cd /out && sha256sum -c SUMS >/dev/null && echo ok'), 'ok\n');
  });

  test('kiln prune keeps the snapshots the cache records need; prune --cache lets them go', async () => {
    const first = await build(ctx, 'app:2');
    assert.equal((await ws.kiln(['rmi', 'app:1', 'app:2', 'builder:1'])).code, 0);
    const p = await ws.kiln(['prune', '--all-ages']);
    assert.equal(p.code, 0, p.stderr);
    const again = await build(ctx, 'app:3');
    assert.deepEqual(ran(again), [], 'every step from the cache after a plain prune');
    assert.equal(again.id, first.id);
    assert.equal(await ws.sh('app:3', 'cat /shipped'), 'shipped\n');
    const before = readdirSync(path.join(ws.root, 'snapshots')).length;
    assert.equal((await ws.kiln(['rmi', 'app:3'])).code, 0);
    const all = await ws.kiln(['prune', '--cache', '--all-ages']);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(
      readdirSync(path.join(ws.root, 'snapshots')).length < before,
      'the builder snapshots went with the records',
    );
    const fresh = await build(ctx, 'app:4');
    assert.ok(fresh.steps.filter((s) => s.text.startsWith('RUN')).every((s) => !s.cached));
  });

  test('--target of a builder whose RUN copied up a file and left it as it was (useradd: /etc/.pwd.lock): the layer is encoded as the RUN made it', async () => {
    const users = ws.context('users', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        'RUN useradd -u 1234 appuser && echo hi > /hello',
        'FROM debian-slim:bookworm',
        'COPY --from=builder /hello /hello',
      ].join('\n'),
    });
    const full = await build(users, 'users:1');
    const [run] = full.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN'));
    assert.ok(run?.layer && !blob(run.layer), 'the builder RUN layer is snapshot-only');
    const b = await build(users, 'users-builder:1', ['--target', 'builder']);
    assert.deepEqual(ran(b), [], 'every builder step from the cache');
    assert.equal((await ws.inspect('users-builder:1')).RootFS.Layers.at(-1), run.layer);
    assert.ok(blob(run.layer), 'encoded: its blob is the tar its diff_id names');
    assert.equal(await ws.sh('users-builder:1', 'id -u appuser && cat /hello'), '1234\nhi\n');
  });

  test('after a reboot, snapshots made without a sync are not trusted: the builder steps run again, the base is unpacked again, the image is whole', async (t) => {
    // The markers as a crash before the background sync leaves them (KILN_SNAPSHOT_SYNC=0: no sync).
    process.env.KILN_SNAPSHOT_SYNC = '0';
    t.after(() => delete process.env.KILN_SNAPSHOT_SYNC);
    const first = await build(ctx, 'app:5');
    const [run1] = first.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN'));
    const base = (await ws.inspect('debian-slim:bookworm')).RootFS.Layers;
    const snapDir = path.join(ws.root, 'snapshots');
    const builderSnap = path.join(snapDir, hex(chainId([...base, run1!.layer!] as Digest[])));
    // Every snapshot as a crash before the background sync left it: marked by a boot before this one
    // (markers written by an earlier build of this file are gone with its sync), and the builder's file
    // as a power loss may leave it (allocated, never written).
    assert.ok(existsSync(builderSnap), 'the builder RUN layer is kept as a snapshot');
    for (const d of readdirSync(snapDir).filter((f) => /^[0-9a-f]{64}$/.test(f)))
      writeFileSync(path.join(snapDir, `${d}.boot`), 'a-boot-before-this-one');
    writeFileSync(path.join(builderSnap, 'out', 'r.bin'), '');
    const again = await build(ctx, 'app:6');
    assert.ok(
      again.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN')).every((s) => !s.cached),
      `the builder's RUNs ran again: ${ran(again).join(' | ')}`,
    );
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    assert.equal(readFileSync(path.join(snapDir, `${hex(chainId(base as Digest[]))}.boot`), 'utf8'), boot);
    assert.equal(
      await ws.sh('app:6', 'cd /app && sha256sum -c SUMS >/dev/null && wc -c < r.bin && cat /shipped'),
      '300000\nshipped\n',
    );
  });

  test('once the build has exited, its snapshots are synced in the background and their markers removed (trusted after a reboot)', async (t) => {
    // Without the wait for the kernel's own writeback (about 35 s).
    process.env.KILN_SNAPSHOT_SYNC_DELAY = '0';
    t.after(() => delete process.env.KILN_SNAPSHOT_SYNC_DELAY);
    const tagged = await build(ctx, 'app:7', ['--no-cache']);
    const [run1] = tagged.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN'));
    const base = (await ws.inspect('debian-slim:bookworm')).RootFS.Layers;
    const builderSnap = path.join(ws.root, 'snapshots', hex(chainId([...base, run1!.layer!] as Digest[])));
    assert.ok(existsSync(builderSnap), 'the builder RUN layer is kept as a snapshot');
    const deadline = Date.now() + 60_000;
    while (existsSync(`${builderSnap}.boot`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!existsSync(`${builderSnap}.boot`), 'the marker went once the store was synced');
    // No marker: trusted, as an older kiln's synced snapshot is.
    const again = await build(ctx, 'app:8');
    assert.ok(
      again.steps.filter((s) => s.stage === 0 && s.text.startsWith('RUN')).every((s) => s.cached),
      `the builder's RUNs came from the cache: ${ran(again).join(' | ')}`,
    );
  });
});

/**
 * A COPY or WORKDIR of the final stage after a big COPY: its destination view unpacks the layers
 * with no snapshot only for the destination's paths (sandbox/view.ts). The same Dockerfile with a
 * trailing RUN (which makes every view whole) must give the same layers.
 */
describe('partial destination views', { skip }, () => {
  test('symlinked destinations, existing parents, owners from a copied /etc/passwd: the same layers as with whole views', async () => {
    const steps = [
      'FROM debian-slim:bookworm AS src',
      'RUN mkdir -p /tree/opt/real /tree/srv/app /tree/etc && ln -s /opt/real /tree/app && chown 1234:1234 /tree/srv/app && chmod 0750 /tree/srv/app && for i in $(seq 1 2000); do echo $i > /tree/opt/real/f$i; done && cp /etc/passwd /etc/group /tree/etc/ && echo "appuser:x:1234:1234::/home/appuser:/bin/sh" >> /tree/etc/passwd && echo "appuser:x:1234:" >> /tree/etc/group',
      'FROM debian-slim:bookworm',
      'COPY --from=src /tree /',
      // A layer the later views need not read (the store's facts say it only writes /unrelated).
      'COPY note.txt /unrelated/deep/',
      'COPY note.txt /app/',
      'COPY --chown=appuser note.txt /srv/app/',
      'WORKDIR /srv/app/work',
      'COPY note.txt sub/',
      // A big COPY into a new /data (made owned by appuser), then one beside it: the second's view
      // of /data comes from the first layer's skeleton, not from reading it.
      'COPY --chown=appuser --from=src /tree/opt/real /data/big',
      'COPY note.txt /data/',
    ];
    const partialCtx = ws.context('partial', { Dockerfile: steps.join('\n'), 'note.txt': 'note\n' });
    const wholeCtx = ws.context('whole', { Dockerfile: [...steps, 'RUN true'].join('\n'), 'note.txt': 'note\n' });
    const epoch = ['--source-date-epoch', '1700000000'];
    await build(partialCtx, 'partial:1', epoch);
    await build(wholeCtx, 'whole:1', epoch);
    const partial = (await ws.inspect('partial:1')).RootFS.Layers;
    const whole = (await ws.inspect('whole:1')).RootFS.Layers;
    assert.deepEqual(partial, whole.slice(0, partial.length), 'every layer the same');
    const facts = readdirSync(path.join(ws.root, 'layers')).map(
      (f) => JSON.parse(readFileSync(path.join(ws.root, 'layers', f), 'utf8')) as { diffId: string; tops?: string[] },
    );
    assert.deepEqual(
      facts.find((f) => f.diffId === partial[partial.length - 7])?.tops,
      ['unrelated'],
      'where the COPY layer writes, remembered',
    );
    const skeleton = (
      facts.find((f) => f.diffId === partial[partial.length - 2]) as
        { skeleton?: { root: string; entries: { path: string; uid: number }[] } } | undefined
    )?.skeleton;
    assert.equal(skeleton?.root, 'data/big');
    assert.deepEqual(
      skeleton?.entries.map((e) => `${e.path} ${e.uid}`),
      ['data 1234', 'data/big 1234'],
    );
    const out = await ws.sh(
      'partial:1',
      'cat /opt/real/note.txt && stat -c "%U %a" /srv/app /srv/app/note.txt /srv/app/work /data && cat /srv/app/work/sub/note.txt /data/note.txt',
      ['--user', '0'],
    );
    assert.equal(out, 'note\nappuser 750\nappuser 644\nroot 755\nappuser 755\nnote\nnote\n');
  });
});
