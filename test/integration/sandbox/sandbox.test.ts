/**
 * The sandbox on an imported Debian base: exact layers from both snapshotters (and the same layer
 * from both), what a process sees with both backends, RUN --mount kinds, `kiln run`, and nothing
 * left behind after an interrupt, a kill or a deep image.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdtempSync,
  rmSync,
  readFileSync,
  existsSync,
  writeFileSync,
  mkdirSync,
  readdirSync,
  promises as fsp,
} from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { cliPath, repoRoot } from '../../helpers/paths.js';
import { Store, type LoadedImage } from '../../../src/store/store.js';
import { runStep, type RunOutcome, type RunStepOptions } from '../../../src/sandbox/index.js';
import { applyLayer } from '../../../src/layer/apply.js';
import { readTar } from '../../../src/layer/tarstream.js';
import { openLayer } from '../../../src/layer/decompress.js';
import type { Descriptor } from '../../../src/image/types.js';
import type { Digest } from '../../../src/util/digest.js';
import { needs } from '../../helpers/prereq.js';

const noBases = needs(basesUnavailable());
/** The oci backend needs runc or crun; without one its tests say so as a skip. */
const noRuntime = needs(
  ['runc', 'crun'].every((r) => spawnSync('sh', ['-c', `command -v ${r}`]).status !== 0)
    ? 'neither runc nor crun is installed (apt-get install runc)'
    : false,
);
const backendSkip = (backend: 'oci' | 'chroot') => ({ skip: backend === 'oci' ? noRuntime : false });
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-sandbox-'));
const root = path.join(work, 'store');
let store: Store;
let base: LoadedImage;

before(async () => {
  if (noBases) return;
  const r = await runKiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm'], { root });
  assert.equal(r.code, 0, r.stderr);
  store = await Store.open({ root });
  base = await store.resolveImage('debian-slim:bookworm');
});
/** Processes the tests start: killed at the end should a test fail half-way. */
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // Should a test fail half-way: nothing of ours stays mounted.
  for (const p of mountsUnderWork().sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', p]);
  rmSync(work, { recursive: true, force: true });
});

function mountsUnderWork(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(work));
}

/** Running processes whose command line is exactly `args` (e.g. "sleep 412345"). */
function processesWith(args: string): string[] {
  const r = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim().replace(/^\d+\s+/, '') === args);
}

function runDirs(): string[] {
  return existsSync(path.join(root, 'run')) ? readdirSync(path.join(root, 'run')) : [];
}

async function layerEntries(out: RunOutcome): Promise<string[]> {
  const names: string[] = [];
  for await (const { header } of readTar(openLayer(store.openBlob(out.layer!.digest))))
    names.push(
      `${header.type}:${header.name}${header.type === 'symlink' || header.type === 'hardlink' ? `->${header.linkname}` : ''}`,
    );
  return names;
}

function run(
  o: Partial<RunStepOptions> & { args: string[] },
  image: { layers: Descriptor[]; diffIds: Digest[] } = {
    layers: base.manifest.layers,
    diffIds: base.config.rootfs.diff_ids,
  },
) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const p = runStep({
    store,
    ...image,
    env: [],
    listChanges: true,
    onStdout: (b) => out.push(b),
    onStderr: (b) => err.push(b),
    ...o,
  });
  return p.then((r) => ({ ...r, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
}

// Writes, edits, deletes a file and a directory tree, replaces a directory, changes metadata only,
// makes links; then lists the whole tree as the process sees it.
const CHANGES = [
  'set -e',
  'echo new > /new-file',
  'echo changed >> /etc/debian_version',
  'rm /etc/issue.net',
  'rm -rf /usr/share/doc/apt',
  'rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo x > /etc/apt/apt.conf.d/only',
  'chmod 700 /etc/motd',
  'mkdir -p /opt/app && echo a > /opt/app/a && ln /opt/app/a /opt/app/hard && ln -s ../../new-file /opt/app/soft',
].join('\n');
const LIST =
  "find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -printf '%p|%y|%m|%U|%G|%s|%l\\n' | LC_ALL=C sort; find / -xdev -type f -exec md5sum {} + | LC_ALL=C sort -k2";

const EXPECTED_CHANGES = [
  'add etc',
  'add etc/apt',
  'add etc/apt/apt.conf.d',
  'opaque etc/apt/apt.conf.d',
  'add etc/apt/apt.conf.d/only',
  'add etc/debian_version',
  'delete etc/issue.net',
  'add etc/motd',
  'add new-file',
  'add opt',
  'add opt/app',
  'add opt/app/a',
  'add opt/app/hard',
  'add opt/app/soft',
  'add usr',
  'add usr/share',
  'add usr/share/doc',
  'delete usr/share/doc/apt',
];

function outsideView(dir: string): string {
  const r = spawnSync(
    'sh',
    [
      '-c',
      `cd "$1" && find . -xdev \\( -path ./proc -o -path ./sys -o -path ./dev \\) -prune -o -printf '%p|%y|%m|%U|%G|%s|%l\\n' | sed 's|^\\.|/|; s|^//|/|' | LC_ALL=C sort; find . -xdev -type f -exec md5sum {} + | sed 's|  \\./|  /|' | LC_ALL=C sort -k2`,
      'sh',
      dir,
    ],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  return r.stdout;
}

/** The process's listing without what is never part of the filesystem (API mounts, host files). */
function comparable(listing: string): string[] {
  return listing
    .trim()
    .split('\n')
    .filter(
      (l) =>
        !/^\/(proc|sys|dev)[|/]/.test(l) &&
        !/^\/etc\/(hosts|resolv\.conf|hostname)\|/.test(l) &&
        !/ \/(etc\/(hosts|resolv\.conf|hostname)|proc|sys|dev)(\/|$)/.test(l),
    )
    .map((l) => l.replace(/^\/\|d\|\d+\|/, '/|d|ROOT|')); // the root dir's own mode differs by where it is unpacked
}

describe('sandbox on an imported Debian base', { skip: noBases }, () => {
  const layers: Record<string, RunOutcome> = {};
  for (const snapshotter of ['overlay', 'native'] as const) {
    test(`${snapshotter}: the layer holds exactly the changes, with whiteouts; applied on the base it gives the tree the process saw, file by file`, async () => {
      const out = await run({ args: ['/bin/sh', '-c', `${CHANGES}\n${LIST}`], snapshotter, sourceDateEpoch: 1 });
      assert.equal(out.exitCode, 0, out.stderr);
      assert.equal(out.snapshotter, snapshotter);
      layers[snapshotter] = out;
      assert.deepEqual(
        out.changes.map((c) => `${c.kind} ${c.path}`),
        EXPECTED_CHANGES,
      );
      const names = await layerEntries(out);
      assert.deepEqual(names, [
        'directory:etc',
        'directory:etc/apt',
        'directory:etc/apt/apt.conf.d',
        'file:etc/apt/apt.conf.d/.wh..wh..opq',
        'file:etc/apt/apt.conf.d/only',
        'file:etc/debian_version',
        'file:etc/.wh.issue.net',
        'file:etc/motd',
        'file:new-file',
        'directory:opt',
        'directory:opt/app',
        'file:opt/app/a',
        'hardlink:opt/app/hard->opt/app/a',
        'symlink:opt/app/soft->../../new-file',
        'directory:usr',
        'directory:usr/share',
        'directory:usr/share/doc',
        'file:usr/share/doc/.wh.apt',
      ]);
      const flat = path.join(work, `flat-${snapshotter}`);
      await applyLayer(store.openBlob(base.manifest.layers[0]!.digest), flat, { whiteouts: 'apply' });
      await applyLayer(store.openBlob(out.layer!.digest), flat, {
        whiteouts: 'apply',
        expectedDiffId: out.layer!.diffId,
      });
      const inside = comparable(out.stdout);
      const outside = comparable(outsideView(flat));
      assert.ok(inside.length > 3000, `a whole tree listed (${inside.length} lines)`);
      assert.deepEqual(outside, inside);
      await fsp.rm(flat, { recursive: true, force: true });
      assert.deepEqual(mountsUnderWork(), [], 'nothing left mounted');
      assert.deepEqual(runDirs(), [], 'no run state left');
    });
  }

  test('native gives the same layer as overlay for the same process (byte for byte with SOURCE_DATE_EPOCH)', () => {
    assert.ok(layers.overlay && layers.native, 'both snapshotter runs happened');
    assert.equal(layers.native!.layer!.diffId, layers.overlay!.layer!.diffId);
    assert.equal(layers.native!.layer!.digest, layers.overlay!.layer!.digest);
  });

  test("overlay: the upper kept as the snapshot has none of overlayfs's bookkeeping xattrs (origin, impure, uuid); opaque markers stay", async () => {
    // Copy-ups (an edited file, a moved one, a directory gaining entries) are what the kernel marks.
    const out = await run({
      args: [
        '/bin/sh',
        '-c',
        'echo x >> /etc/debian_version && mkdir /etc/new && mv /etc/host.conf /etc/new/ && rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d',
      ],
      snapshotter: 'overlay',
    });
    assert.equal(out.exitCode, 0, out.stderr);
    const snap = store.snapshotPath([...base.config.rootfs.diff_ids, out.layer!.diffId]);
    assert.ok(existsSync(snap), 'the upper became the snapshot');
    const { createRequire } = await import('node:module');
    const xattr = createRequire(import.meta.url)('fs-xattr') as { listAttributesSync(p: string): string[] };
    const found: string[] = [];
    for (const rel of [
      '',
      'etc',
      'etc/debian_version',
      'etc/new',
      'etc/new/host.conf',
      'etc/apt',
      'etc/apt/apt.conf.d',
    ]) {
      for (const n of xattr.listAttributesSync(path.join(snap, rel))) found.push(`${rel || '/'} ${n}`);
    }
    assert.deepEqual(found, ['etc/apt/apt.conf.d trusted.overlay.opaque']);
  });

  test("overlay, recordListings: the listings of the directories a RUN made are what a walk of the committed snapshot reads; none where a moved file lost its overlay xattrs, a whiteout, or a lower layer's", async () => {
    // Loaded, as a RUN of many files has it: the differ reads these few entries with it too.
    (await import('../../../src/util/native-fs.js')).nativeFs();
    const out = await run({
      args: [
        '/bin/sh',
        '-c',
        [
          'set -e',
          'mkdir -p /out/a/lib /out/b /out/empty && echo 1 > /out/a/lib/x.js && echo 22 > /out/a/y.js && ln -s x.js /out/a/lib/l',
          'echo q > /out/b/q && mkfifo /out/b/fifo && chmod 700 /out/b',
          'mkdir /etc/new && mv /etc/host.conf /etc/new/',
          'rm /etc/issue.net && rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo o > /etc/apt/apt.conf.d/only',
        ].join(' && '),
      ],
      snapshotter: 'overlay',
      snapshotOnly: true,
      recordFileDigests: true,
      recordListings: true,
    });
    assert.equal(out.exitCode, 0, out.stderr);
    const snap = store.snapshotPath([...base.config.rootfs.diff_ids, out.layer!.diffId]);
    const { LeanStats } = await import('../../../src/util/lean-stats.js');
    const { lstatSync } = await import('node:fs');
    assert.deepEqual([...(out.listings?.keys() ?? [])].sort(), ['out', 'out/a', 'out/a/lib', 'out/b', 'out/empty']);
    for (const [rel, l] of out.listings!) {
      const names = readdirSync(path.join(snap, rel)).sort();
      assert.deepEqual(l.names, names, rel);
      const fresh = new Float64Array(names.length * LeanStats.PACKED);
      names.forEach((n, i) => new LeanStats(lstatSync(path.join(snap, rel, n))).pack(fresh, i));
      assert.deepEqual([...l.stats], [...fresh], rel);
    }
    // The same layer again (its snapshot is there already): the upper is not adopted, nothing is handed on.
    const again = await run({
      args: ['/bin/sh', '-c', 'mkdir -p /out && echo x > /out/x && touch -d @0 /out/x /out'],
      snapshotter: 'overlay',
      snapshotOnly: true,
      recordListings: true,
    });
    const twice = await run({
      args: ['/bin/sh', '-c', 'mkdir -p /out && echo x > /out/x && touch -d @0 /out/x /out'],
      snapshotter: 'overlay',
      snapshotOnly: true,
      recordListings: true,
    });
    assert.equal(twice.layer!.diffId, again.layer!.diffId);
    assert.deepEqual([...(again.listings?.keys() ?? [])], ['out']);
    assert.equal(twice.listings, undefined);
  });

  test("overlay: the RUN's root and its throw-away RUN --mount overlays are mounted volatile (their unmount syncs nothing); the upper kept as the snapshot carries this boot", async () => {
    const ctx = mkdtempSync(path.join(work, 'rwbind-'));
    writeFileSync(path.join(ctx, 'f'), 'context');
    const out = await run({
      args: ['/bin/sh', '-c', "grep -E ' (/|/ctx) rw' /proc/self/mountinfo | sed 's/.* - //' && touch /made"],
      snapshotter: 'overlay',
      mounts: [{ type: 'bind', source: ctx, target: '/ctx', discardWrites: true }],
    });
    assert.equal(out.exitCode, 0, out.stderr);
    const lines = out.stdout.trim().split('\n');
    const overlays = lines.filter((l) => l.startsWith('overlay '));
    assert.equal(overlays.length, 2, `the root and the rw bind mount's overlay: ${out.stdout}`);
    for (const l of overlays) assert.match(l, /,(fsync=)?volatile(,|$)/, l);
    const snap = store.snapshotPath([...base.config.rootfs.diff_ids, out.layer!.diffId]);
    assert.ok(existsSync(path.join(snap, 'made')), 'the upper became the snapshot');
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    assert.equal(readFileSync(`${snap}.boot`, 'utf8'), boot, 'marked as made without a sync in this boot');
    assert.deepEqual(mountsUnderWork(), [], 'nothing left mounted');
    assert.deepEqual(runDirs(), [], 'no run state left');
  });

  test('tearDownLater: runStep returns with the layer and its snapshot whole, the run dir torn down after it; a run that throws tears it down first', async () => {
    let tornDown: Promise<void> | undefined;
    const out = await run({
      args: ['/bin/sh', '-c', 'echo later > /later'],
      snapshotter: 'overlay',
      snapshotOnly: true,
      tearDownLater: (p) => void (tornDown = p),
    });
    assert.equal(out.exitCode, 0, out.stderr);
    assert.ok(tornDown, 'the teardown was handed over before runStep returned');
    const snap = store.snapshotPath([...base.config.rootfs.diff_ids, out.layer!.diffId]);
    assert.equal(readFileSync(path.join(snap, 'later'), 'utf8'), 'later\n', 'the upper became the snapshot');
    await tornDown;
    assert.deepEqual(mountsUnderWork(), [], 'nothing left mounted');
    assert.deepEqual(runDirs(), [], 'no run state left');
    let handed = false;
    await assert.rejects(
      run({
        args: ['/bin/true'],
        snapshotter: 'overlay',
        signal: AbortSignal.abort(),
        tearDownLater: () => void (handed = true),
      }),
      /interrupted/,
    );
    assert.equal(handed, false);
    assert.deepEqual(mountsUnderWork(), [], 'nothing left mounted');
    assert.deepEqual(runDirs(), [], 'no run state left');
  });

  let withUser: { layers: Descriptor[]; diffIds: Digest[] };
  test("a captured layer is the next step's base: a user with supplementary groups", async () => {
    const out = await run({
      args: ['/bin/sh', '-c', 'groupadd -g 2000 extra && useradd -m -u 1500 -U -G extra,tty app'],
    });
    assert.equal(out.exitCode, 0, out.stderr);
    assert.ok(out.changes.some((c) => c.path === 'etc/passwd'));
    assert.ok(out.changes.some((c) => c.path === 'home/app'));
    withUser = {
      layers: [
        ...base.manifest.layers,
        { mediaType: out.layer!.mediaType, digest: out.layer!.digest, size: out.layer!.size },
      ],
      diffIds: [...base.config.rootfs.diff_ids, out.layer!.diffId],
    };
  });

  for (const backend of ['oci', 'chroot'] as const) {
    test(
      `${backend}: user and groups, working dir (made), env, HOME, network none, exit code, stdin closed, PID 1, no capabilities for a user, children killed`,
      backendSkip(backend),
      async () => {
        const marker = `3${randomBytes(3).readUIntBE(0, 3) % 100000}`;
        const out = await run(
          {
            args: [
              '/bin/sh',
              '-c',
              `id; pwd; echo "FOO=$FOO"; echo "HOME=$HOME"; echo "PATH=$PATH"; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; cat /sys/class/net/lo/operstate; read x || echo stdin-closed; echo pid=$$; grep CapEff /proc/self/status; (sleep ${marker} &); exit 7`,
            ],
            env: ['FOO=bar baz'],
            cwd: '/work/dir',
            user: 'app',
            network: 'none',
            backend,
          },
          withUser,
        );
        assert.equal(out.exitCode, 7, out.stderr);
        assert.equal(out.backend, backend);
        const lines = out.stdout.split('\n');
        assert.equal(lines[0], 'uid=1500(app) gid=1500(app) groups=1500(app),5(tty),2000(extra)');
        assert.equal(lines[1], '/work/dir');
        assert.equal(lines[2], 'FOO=bar baz');
        assert.equal(lines[3], 'HOME=/home/app');
        assert.equal(lines[4], 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
        assert.equal(lines[5], 'lo', 'network none: only lo');
        assert.equal(lines[6], 'unknown', 'lo is up');
        assert.equal(lines[7], 'stdin-closed');
        assert.equal(lines[8], 'pid=1');
        assert.equal(lines[9], 'CapEff:\t0000000000000000');
        assert.deepEqual(
          out.changes.map((c) => `${c.kind} ${c.path}`),
          ['add work', 'add work/dir'],
          'the made working dir is in the layer',
        );
        assert.deepEqual(processesWith(`sleep ${marker}`), [], 'what the process left running is gone');
        assert.deepEqual(mountsUnderWork(), []);
      },
    );

    test(
      `${backend}: root has docker's capabilities; hostname, hosts, resolv.conf from the host, read-only, not in the layer; /dev; read-only /sys; host network`,
      backendSkip(backend),
      async () => {
        const out = await run({
          args: [
            '/bin/sh',
            '-c',
            'grep -E "CapEff|CapBnd" /proc/self/status; hostname; cat /etc/hostname; md5sum /etc/hosts /etc/resolv.conf; ls /dev | tr "\\n" " "; echo; echo x > /etc/hosts || echo hosts-ro; touch /sys/x || echo sys-ro; tail -n +3 /proc/net/dev | wc -l',
          ],
          backend,
        });
        assert.equal(out.exitCode, 0, out.stderr);
        const lines = out.stdout.split('\n');
        assert.equal(lines[0], 'CapEff:\t00000000a80425fb');
        assert.equal(lines[1], 'CapBnd:\t00000000a80425fb');
        assert.equal(lines[2], 'kiln');
        assert.equal(lines[3], 'kiln');
        const md5 = (f: string) => spawnSync('md5sum', [f], { encoding: 'utf8' }).stdout.split(' ')[0];
        assert.equal(lines[4], `${md5('/etc/hosts')}  /etc/hosts`);
        assert.equal(lines[5], `${md5('/etc/resolv.conf')}  /etc/resolv.conf`);
        for (const d of ['full', 'null', 'pts', 'random', 'shm', 'tty', 'urandom', 'zero'])
          assert.ok(lines[6]!.split(' ').includes(d), `/dev/${d} in ${lines[6]}`);
        assert.ok(lines.includes('hosts-ro'));
        assert.ok(lines.includes('sys-ro'));
        assert.ok(Number(lines.at(-2)) > 1, 'host network: more than lo');
        assert.equal(out.layer, undefined, 'nothing changed: no layer');
        assert.deepEqual(out.changes, []);
      },
    );

    test(`${backend}: a command that cannot be run exits 127, as in a shell`, backendSkip(backend), async () => {
      const out = await run({ args: ['/no/such/program'], backend, capture: false });
      assert.equal(out.exitCode, 127, out.stderr);
    });

    test(
      `${backend}: RUN --mount kinds — bind read-only, bind with writes discarded, tmpfs, cache kept between runs — none of them in the layer`,
      backendSkip(backend),
      async () => {
        const src = path.join(work, `ctx-${backend}`);
        mkdirSync(src, { recursive: true });
        writeFileSync(path.join(src, 'in.txt'), 'context\n');
        const cache = path.join(work, `cache-${backend}`);
        const mounts = [
          { type: 'bind' as const, source: src, target: '/ctx-ro', readonly: true },
          { type: 'bind' as const, source: src, target: '/ctx-rw', discardWrites: true },
          { type: 'tmpfs' as const, target: '/scratch', size: 8 << 20 },
          { type: 'cache' as const, source: cache, target: '/root/.cache/tool', uid: 1500, gid: 1500, mode: 0o750 },
        ];
        const first = await run({
          args: [
            '/bin/sh',
            '-c',
            'cat /ctx-ro/in.txt; echo w > /ctx-ro/w 2>/dev/null || echo ro; echo changed > /ctx-rw/in.txt && cat /ctx-rw/in.txt; df -k /scratch | tail -1 | awk \'{print $2}\'; echo kept > /root/.cache/tool/c; stat -c "%u %g %a" /root/.cache/tool; echo done > /result',
          ],
          mounts,
          backend,
        });
        assert.equal(first.exitCode, 0, first.stderr);
        assert.deepEqual(first.stdout.trim().split('\n'), ['context', 'ro', 'changed', '8192', '1500 1500 750']);
        assert.equal(
          readFileSync(path.join(src, 'in.txt'), 'utf8'),
          'context\n',
          'writes to the rw bind were discarded',
        );
        assert.deepEqual(
          first.changes.map((c) => `${c.kind} ${c.path}`),
          ['add result'],
          'no mount point, no mount content in the layer',
        );
        const second = await run({ args: ['/bin/cat', '/root/.cache/tool/c'], mounts, backend, capture: false });
        assert.equal(second.stdout, 'kept\n', 'the cache persists');
        assert.deepEqual(mountsUnderWork(), []);
      },
    );
  }

  test('kiln run: entrypoint/cmd, -e, -u, -w, -v, exit code', async () => {
    const vol = path.join(work, 'vol');
    await fsp.mkdir(vol, { recursive: true });
    await fsp.writeFile(path.join(vol, 'in.txt'), 'from host');
    const r = await runKiln(
      [
        'run',
        '--rm',
        '-e',
        'X=1',
        '-u',
        '65534',
        '-w',
        '/tmp',
        '-v',
        `${vol}:/mnt:ro`,
        'debian-slim:bookworm',
        'sh',
        '-c',
        'echo $X; id -u; pwd; cat /mnt/in.txt; echo $HOSTNAME | grep -cE "^[0-9a-f]{12}$"; exit 5',
      ],
      { root },
    );
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, '1\n65534\n/tmp\nfrom host1\n');
    const rw = await runKiln(
      [
        'run',
        '--backend',
        'chroot',
        '-v',
        `${vol}:/mnt`,
        'debian-slim:bookworm',
        'sh',
        '-c',
        'echo out > /mnt/out.txt',
      ],
      { root },
    );
    assert.equal(rw.code, 0, rw.stderr);
    assert.equal(readFileSync(path.join(vol, 'out.txt'), 'utf8'), 'out\n', '-v without :ro writes to the host');
    const none = await runKiln(['run', 'debian-slim:bookworm'], { root });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no command specified/);
    const bad = await runKiln(['run', '-w', 'rel', 'debian-slim:bookworm', 'true'], { root });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /needs to be an absolute path/);
  });

  test('runtime probing: a runtime that cannot start containers here is refused with its reason', async () => {
    const crun = spawnSync('sh', ['-c', 'command -v crun'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(crun, 'crun is not installed (apt-get install crun)');
    const probe = await runKiln(['run', '--runtime', crun, 'debian-slim:bookworm', 'echo', 'crun-works'], { root });
    if (probe.code === 0) {
      assert.equal(probe.stdout, 'crun-works\n');
      return;
    }
    assert.equal(probe.code, 1);
    assert.match(probe.stderr, /OCI runtime .*crun cannot start containers on this host: .+/);
    const auto = await runKiln(['run', 'debian-slim:bookworm', 'echo', 'picked'], { root });
    assert.equal(auto.code, 0, auto.stderr);
    assert.equal(auto.stdout, 'picked\n', 'the default picks a runtime that works');
  });

  test('interrupting kiln run (SIGINT) leaves no mount, no process and no run state behind', async () => {
    const marker = `4${randomBytes(3).readUIntBE(0, 3) % 100000}`;
    const child = spawn(
      process.execPath,
      [cliPath, 'run', 'debian-slim:bookworm', 'sh', '-c', `echo started; sleep ${marker}`],
      { env: { ...process.env, KILN_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (b: Buffer) => b.toString().includes('started') && resolve()),
    );
    assert.ok(mountsUnderWork().length > 0, 'mounted while running');
    // "started" is printed just before the shell starts sleep: on a loaded machine give it a moment.
    for (let i = 0; i < 50 && processesWith(`sleep ${marker}`).length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal(processesWith(`sleep ${marker}`).length, 1);
    child.kill('SIGINT');
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    assert.equal(code, 130);
    assert.deepEqual(mountsUnderWork(), [], 'no mount left');
    assert.deepEqual(runDirs(), []);
    assert.deepEqual(processesWith(`sleep ${marker}`), [], 'no process left');
  });

  test('a SIGKILLed kiln run takes its processes along; the next kiln removes its mounts, runtime state and cgroups', async () => {
    const marker = `5${randomBytes(3).readUIntBE(0, 3) % 100000}`;
    const child = spawn(
      process.execPath,
      [cliPath, 'run', 'debian-slim:bookworm', 'sh', '-c', `echo started; sleep ${marker}`],
      { env: { ...process.env, KILN_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (b: Buffer) => b.toString().includes('started') && resolve()),
    );
    const [dir] = runDirs();
    assert.ok(dir);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    for (let i = 0; i < 50 && processesWith(`sleep ${marker}`).length; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(processesWith(`sleep ${marker}`), [], 'the container died with kiln');
    assert.ok(mountsUnderWork().length > 0, 'the killed run left its mount');
    const cgroups = () => readdirSync('/sys/fs/cgroup').filter((c) => existsSync(path.join('/sys/fs/cgroup', c, dir!)));
    const r = await runKiln(['run', 'debian-slim:bookworm', 'true'], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(mountsUnderWork(), [], 'the next kiln cleaned the mounts');
    assert.deepEqual(runDirs(), []);
    assert.deepEqual(cgroups(), [], "and the runtime's cgroups");
  });

  test('runStep without a signal of its caller: SIGTERM tears the run down, then the process ends by SIGTERM', async () => {
    const marker = `6${randomBytes(3).readUIntBE(0, 3) % 100000}`;
    const script = `
      import { Store } from ${JSON.stringify(path.join(repoRoot, 'dist/src/store/store.js'))};
      import { runStep } from ${JSON.stringify(path.join(repoRoot, 'dist/src/sandbox/index.js'))};
      const store = await Store.open({ root: ${JSON.stringify(root)} });
      const img = await store.resolveImage('debian-slim:bookworm');
      await runStep({ store, layers: img.manifest.layers, diffIds: img.config.rootfs.diff_ids, args: ['sh', '-c', 'echo started; sleep ${marker}'], env: [], onStdout: (b) => process.stdout.write(b) });
      console.log('not reached');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
        if (stdout.includes('started')) resolve();
      }),
    );
    child.kill('SIGTERM');
    const sig = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, s) => resolve(s)));
    assert.equal(sig, 'SIGTERM');
    assert.doesNotMatch(stdout, /not reached/);
    assert.deepEqual(mountsUnderWork(), []);
    assert.deepEqual(runDirs(), []);
    assert.deepEqual(processesWith(`sleep ${marker}`), []);
  });
});

describe('deep images', { skip: noBases }, () => {
  test('127 layers mount as one overlay (lowerdir fits the mount option limit) and the top layer wins', async () => {
    const { tarEntries } = await import('../../../src/layer/write.js');
    const { encodeLayer } = await import('../../../src/layer/compress.js');
    const layers = [...base.manifest.layers];
    const diffIds = [...base.config.rootfs.diff_ids];
    for (let i = 1; i < 127; i++) {
      const w = await store.createBlobWriter();
      const info = await encodeLayer(
        tarEntries([
          { path: `deep/f${i}`, type: 'file', content: Buffer.from(`${i}\n`), mode: 0o644, uid: 0, gid: 0, mtime: 0 },
          { path: 'deep/top', type: 'file', content: Buffer.from(`${i}\n`), mode: 0o644, uid: 0, gid: 0, mtime: 0 },
        ]),
        w.stream,
        { compression: 'gzip' },
      );
      await w.commit({ digest: info.digest, size: info.size });
      layers.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
      diffIds.push(info.diffId);
    }
    assert.equal(layers.length, 127);
    const out = await run(
      { args: ['/bin/sh', '-c', 'ls /deep | wc -l; cat /deep/top; echo more > /deep/top'], snapshotter: 'overlay' },
      { layers, diffIds },
    );
    assert.equal(out.exitCode, 0, out.stderr);
    assert.equal(out.stdout, '127\n126\n');
    assert.deepEqual(
      out.changes.map((c) => `${c.kind} ${c.path}`),
      ['add deep', 'add deep/top'],
    );
    assert.deepEqual(mountsUnderWork(), []);
  });
});
