/**
 * The native snapshotter keeps a stage's flattened root between its RUN steps (sandbox/kept-root.ts)
 * instead of flattening the stage again per RUN. The layers and the image must be byte for byte
 * those of a fresh flatten per RUN (KILN_NATIVE_FRESH_ROOT=1) (and of overlay for the retry), with
 * RUN chains that delete and recreate, rename directories, change modes only, hard-link, leave
 * sockets and RUN --mount stubs, with a COPY and a WORKDIR between RUNs, two stages interleaved, a
 * stage based on another, and a failed RUN followed by a retry. The builds run with
 * KILN_CHECK_KEPT_ROOT=1: each kept root taken is compared with a fresh flatten of its layers, and
 * each state derived without a walk with a walk. Listings written by the RUNs (names, modes,
 * mtimes) make what a RUN sees part of the image.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';
import { Workspace } from '../build/util.js';

const skip = needs(basesUnavailable() ?? (process.getuid?.() === 0 ? undefined : 'overlay builds need root'));
const ws = new Workspace('kiln-kept-root-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };
/** What a RUN sees of a few places: names, types, modes, owners, mtimes (no mount: their times are the run's). */
const look = (dirs: string) =>
  `find ${dirs} -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -printf '%p %y %m %U:%G %T@\\n' | LC_ALL=C sort`;

const chains = [
  'FROM debian-slim:bookworm AS a',
  'RUN mkdir -p /d/sub && echo 1 > /d/sub/f && echo keep > /d/k && mkfifo /d/fifo',
  // delete then recreate (opaque directory), rename a directory, a mode-only change, a hard link
  'RUN rm -rf /d/sub && mkdir /d/sub && echo 2 > /d/sub/g',
  'RUN mv /d /e && chmod 0700 /e/k && ln /e/k /e/hard',
  // through one name of a file linked in an earlier layer: overlay copies up that name alone
  'RUN chmod 0600 /e/hard && touch -d @1600000000 /e/sub/g && ln /etc/debian_version /e/dv',
  // a socket no layer carries, RUN --mount stubs (one under a directory the RUN writes in)
  `RUN perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Local => "/e/sock", Listen => 1) or die' && rm /etc/issue`,
  'RUN --mount=type=tmpfs,target=/newdir/tmp echo y > /newdir/y',
  'RUN --mount=type=cache,target=/var/cache/nothere/c --mount=type=bind,target=/mnt/ctx true',
  `RUN (${look('/e /newdir /var/cache /mnt /etc/issue')} ; ls -A /) > /seen1`,
  'COPY f.txt /e/copied',
  'WORKDIR /w/x',
  // seen before the changes (what a RUN changes itself has the time of the run, in every mode)
  `RUN (${look('/e /w')}) > /seen2 && cat /e/copied >> /e/k && ln /e/copied /e/copied2`,
  'FROM debian-slim:bookworm AS b',
  'RUN echo b1 > /b1 && mkdir /bd && touch /bd/x',
  'RUN rm -rf /bd && echo b2 > /bd',
  `RUN (${look('/bd /b1 /e /newdir /var/cache')}) > /seen-b`,
  'FROM a AS c',
  `RUN (${look('/e /newdir /var/cache /w')}) > /seen-c && rm -rf /e/sub`,
  'FROM debian-slim:bookworm',
  'COPY --from=a /seen1 /seen2 /e/k /out/a/',
  'COPY --from=b /seen-b /bd /out/b/',
  'COPY --from=c /seen-c /out/c/',
  'RUN cat /out/a/k > /out/k2',
].join('\n');

interface Profile {
  phases: { name: string }[];
}

/** Build with the native snapshotter (checked), returning how many RUNs took a kept root. */
async function nativeBuild(ctx: string, tag: string, env: NodeJS.ProcessEnv = {}, extra: string[] = []) {
  const prof = path.join(ws.dir, `${tag.replace(/[:/]/g, '-')}.profile`);
  const id = await ws.build(ctx, tag, ['--snapshotter', 'native', ...extra], {
    ...EPOCH,
    KILN_CHECK_KEPT_ROOT: '1',
    KILN_PROFILE: prof,
    ...env,
  });
  const record = JSON.parse(readFileSync(prof, 'utf8').trim().split('\n').pop()!) as Profile;
  const kept = record.phases.filter((p) => p.name === 'base snapshot (native, kept root)').length;
  return { id, kept };
}

const leftovers = () =>
  readdirSync(path.join(ws.root, 'run')).filter((n) => n.includes('-roots-') || n.includes('-run-'));

describe('the native snapshotter keeps a stage root between RUN steps, exactly', { skip }, () => {
  let ctx: string;
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('chains', { Dockerfile: chains, 'f.txt': 'copied\n' });
  });

  test('RUN chains: kept roots, fresh roots per RUN and overlay give the same layers and image id', async () => {
    const kept = await nativeBuild(ctx, 'chains:kept', {}, ['--no-cache']);
    const fresh = await nativeBuild(ctx, 'chains:fresh', { KILN_NATIVE_FRESH_ROOT: '1' }, ['--no-cache']);
    assert.equal(fresh.kept, 0, 'KILN_NATIVE_FRESH_ROOT=1 flattens every RUN afresh');
    // a: 9 RUNs (8 after the first, the one after COPY+WORKDIR by applying them), b: 2 after its
    // first, c: 1 on a's root; the final stage's RUN after its COPYs may find no root of its chain.
    assert.ok(kept.kept >= 11, `RUNs that took a kept root: ${kept.kept}`);
    const [k, f] = [await ws.inspect('chains:kept'), await ws.inspect('chains:fresh')];
    assert.deepEqual(k.RootFS.Layers, f.RootFS.Layers, 'kept roots: the same layers as fresh roots');
    assert.equal(kept.id, fresh.id);
    const overlay = await ws.build(ctx, 'chains:overlay', ['--no-cache', '--snapshotter', 'overlay'], EPOCH);
    const o = await ws.inspect('chains:overlay');
    assert.deepEqual(k.RootFS.Layers, o.RootFS.Layers, 'native: the same layers as overlay');
    assert.equal(kept.id, overlay);
    // The chmod through /e/hard changed that name alone (overlay copies up one name of a file linked
    // in a lower layer): /e/k kept its mode.
    const seen2 = await ws.sh('chains:kept', 'cat /out/a/seen2');
    assert.match(seen2, /^\/e\/k f 700 /m, seen2);
    assert.match(seen2, /^\/e\/hard f 600 /m, seen2);
    // What the RUNs saw: no socket, no stub, no mtime of the run (all clamped to the epoch or older).
    const seen = await ws.sh('chains:kept', 'cat /out/a/seen1 /out/a/seen2 /out/c/seen-c /out/b/seen-b');
    assert.doesNotMatch(seen, /\/e\/sock|nothere|\/newdir\/tmp|\/mnt\/ctx/, seen);
    for (const line of seen.split('\n').filter((l) => / \d+(\.\d+)?$/.test(l)))
      assert.ok(Number(line.split(' ').pop()) <= 1700000000, `an mtime after SOURCE_DATE_EPOCH: ${line}`);
    assert.deepEqual(leftovers(), [], 'no run dir or kept root left');
  });

  test('a failed RUN keeps nothing: the retry build equals overlay', async () => {
    const df = (last: string) => ['FROM debian-slim:bookworm', 'RUN echo one > /one', last].join('\n');
    const failing = ws.context('retry-fail', {
      Dockerfile: df('RUN echo junk > /junk && mkdir /jd && false'),
    });
    const r = await ws.kiln(['build', '-q', '--snapshotter', 'native', '-t', 'retry:x', failing], {
      env: { ...EPOCH, KILN_CHECK_KEPT_ROOT: '1' },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /RUN failed with exit code 1/);
    assert.deepEqual(leftovers(), [], 'no run dir or kept root left after the failure');
    const fixed = df(
      'RUN echo two > /two && ls -A / > /listing && test ! -e /junk && test ! -e /jd\nRUN ls -A / >> /listing',
    );
    const ctxFixed = ws.context('retry-ok', { Dockerfile: fixed });
    const native = await nativeBuild(ctxFixed, 'retry:native');
    assert.ok(native.kept >= 1, 'the last RUN took the root the one before left');
    const overlay = await ws.build(ctxFixed, 'retry:overlay', ['--no-cache', '--snapshotter', 'overlay'], EPOCH);
    assert.equal(native.id, overlay);
  });
});
