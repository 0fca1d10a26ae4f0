import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ociSpec,
  chrootScript,
  cgroupMode,
  runtimeArgv,
  runtimeInvocation,
  DEFAULT_CAPS,
  type ProcessSpec,
} from '../../../src/sandbox/runtime.js';

const files = { hosts: '/etc/hosts', resolvConf: '/etc/resolv.conf', hostname: '/b/hostname' };
const base: ProcessSpec = {
  args: ['/bin/sh', '-c', 'echo "it\'s" $X'],
  env: ['PATH=/usr/bin:/bin', 'X=a b', "Q=it's"],
  cwd: '/w d',
  uid: 0,
  gid: 0,
  additionalGids: [],
  network: 'host',
};

type Spec = {
  process: {
    user: { uid: number; gid: number; additionalGids: number[] };
    capabilities: Record<string, string[]>;
    args: string[];
    env: string[];
    cwd: string;
    terminal: boolean;
  };
  mounts: { destination: string; type: string; source: string; options: string[] }[];
  linux: { namespaces: { type: string }[] };
  root: { path: string; readonly: boolean };
  hostname: string;
};

test('OCI spec: docker default capabilities for root, none effective for another user', () => {
  const root = ociSpec('/r', base, files) as unknown as Spec;
  assert.equal(DEFAULT_CAPS.length, 14);
  assert.deepEqual(root.process.capabilities.bounding, DEFAULT_CAPS);
  assert.deepEqual(root.process.capabilities.effective, DEFAULT_CAPS);
  assert.deepEqual(root.process.capabilities.permitted, DEFAULT_CAPS);
  assert.deepEqual(root.process.capabilities.inheritable, []);
  const user = ociSpec('/r', { ...base, uid: 1000, gid: 1000, additionalGids: [5, 2000] }, files) as unknown as Spec;
  assert.deepEqual(user.process.capabilities.bounding, DEFAULT_CAPS);
  assert.deepEqual(user.process.capabilities.effective, []);
  assert.deepEqual(user.process.capabilities.permitted, []);
  assert.deepEqual(user.process.user, { uid: 1000, gid: 1000, additionalGids: [5, 2000] });
});

test('OCI spec: process, root, namespaces, API file systems and host files', () => {
  const s = ociSpec('/r', base, files) as unknown as Spec;
  assert.deepEqual(s.process.args, base.args);
  assert.deepEqual(s.process.env, base.env);
  assert.equal(s.process.cwd, '/w d');
  assert.equal(s.process.terminal, false);
  assert.deepEqual(s.root, { path: '/r', readonly: false });
  assert.deepEqual(s.linux.namespaces.map((n) => n.type).sort(), ['ipc', 'mount', 'pid', 'uts']);
  const m = new Map(s.mounts.map((x) => [x.destination, x]));
  assert.equal(m.get('/proc')?.type, 'proc');
  assert.equal(m.get('/dev')?.type, 'tmpfs');
  assert.equal(m.get('/dev/pts')?.type, 'devpts');
  assert.equal(m.get('/dev/shm')?.type, 'tmpfs');
  assert.equal(m.get('/sys')?.type, 'bind');
  assert.ok(m.get('/sys')?.options.includes('ro'), 'read-only /sys');
  for (const [dst, src] of <[string, string][]>[
    ['/etc/hosts', '/etc/hosts'],
    ['/etc/resolv.conf', '/etc/resolv.conf'],
    ['/etc/hostname', '/b/hostname'],
  ]) {
    assert.equal(m.get(dst)?.source, src);
    assert.ok(m.get(dst)?.options.includes('ro'), `${dst} read-only`);
  }
  assert.equal(s.hostname, 'kiln');
});

test('OCI spec: network none adds a network namespace and a fresh read-only sysfs', () => {
  const s = ociSpec('/r', { ...base, network: 'none', hostname: 'h1' }, files) as unknown as Spec;
  assert.ok(s.linux.namespaces.some((n) => n.type === 'network'));
  const sys = s.mounts.find((x) => x.destination === '/sys')!;
  assert.equal(sys.type, 'sysfs');
  assert.ok(sys.options.includes('ro'));
  assert.equal(s.hostname, 'h1');
});

test('OCI spec: extra mounts after the standard ones, in the order given', () => {
  const s = ociSpec(
    '/r',
    {
      ...base,
      mounts: [
        { type: 'tmpfs', target: '/t', size: 1024 },
        { type: 'bind', source: '/h', target: '/t/b', readonly: true },
        { type: 'bind', source: '/c', target: '/cache' },
      ],
    },
    files,
  ) as unknown as Spec;
  const extra = s.mounts.slice(-3);
  assert.deepEqual(
    extra.map((x) => [x.destination, x.type, x.source]),
    [
      ['/t', 'tmpfs', 'tmpfs'],
      ['/t/b', 'bind', '/h'],
      ['/cache', 'bind', '/c'],
    ],
  );
  assert.ok(extra[0]!.options.includes('size=1024'));
  assert.ok(extra[1]!.options.includes('ro'));
  assert.ok(extra[2]!.options.includes('rw'));
});

const tools = { env: '/usr/bin/env', setpriv: '/usr/bin/setpriv', unshare: '/usr/bin/unshare', ip: '/sbin/ip' };

test('chroot script: enters the root as the user with groups, the bounding set and exactly the env', () => {
  const s = chrootScript('/run dir/rootfs', { ...base, uid: 1000, gid: 1001, additionalGids: [5, 2000] }, files, tools);
  const last = s.trim().split('\n').at(-1)!;
  assert.match(
    last,
    /^exec '\/usr\/bin\/env' -i -- 'PATH=\/usr\/bin:\/bin' 'X=a b' 'Q=it'\\''s' '\/usr\/bin\/setpriv' --regid=1001 --groups=5,2000 --bounding-set=-all,\+chown,\+dac_override,/,
  );
  assert.match(
    last,
    /--inh-caps=-all -- '\/usr\/bin\/unshare' --root=''?\/run dir\/rootfs'? --wd='\/w d' --setuid=1000 -- '\/bin\/sh' '-c' 'echo "it'\\''s" \$X'$/,
  );
  for (const cap of DEFAULT_CAPS) assert.ok(last.includes(`+${cap.slice(4).toLowerCase()}`), cap);
  const rootRun = chrootScript('/r', base, files, tools).trim().split('\n').at(-1)!;
  assert.doesNotMatch(rootRun, /--setuid/, 'root stays root (and keeps the bounded capabilities)');
  assert.match(rootRun, /--clear-groups/);
});

test('chroot script: API file systems, read-only host files, network none brings lo up', () => {
  const s = chrootScript(
    '/r',
    {
      ...base,
      network: 'none',
      mounts: [
        { type: 'tmpfs', target: '/t', size: 4096 },
        { type: 'bind', source: '/h', target: '/m', readonly: true },
      ],
    },
    files,
    tools,
  );
  assert.match(s, /^set -e$/m);
  assert.match(s, /mount -t proc .*'\/r\/proc'/);
  assert.match(s, /mount -t tmpfs .*'\/r\/dev'$/m);
  for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty'])
    assert.match(s, new RegExp(`mount --bind /dev/${d} '/r/dev/${d}'`));
  assert.match(s, /mount -t devpts .*'\/r\/dev\/pts'/);
  assert.match(s, /mount -t sysfs -o ro,.* sysfs '\/r\/sys'/);
  assert.match(s, /mount --bind '\/b\/hostname' '\/r\/etc\/hostname' && mount -o remount,bind,ro '\/r\/etc\/hostname'/);
  assert.match(s, /mount -t tmpfs -o nosuid,nodev,mode=1777,size=4096 tmpfs '\/r\/t'/);
  assert.match(s, /mount --rbind '\/h' '\/r\/m' && mount -o remount,bind,ro '\/r\/m'/);
  assert.match(s, /'\/sbin\/ip' link set lo up/);
  assert.doesNotMatch(chrootScript('/r', base, files, tools), /link set lo up/);
  assert.match(chrootScript('/r', base, files, tools), /mount --rbind \/sys '\/r\/sys' && mount -o remount,bind,ro/);
});

test('runtime invocation: crun makes no cgroup and, on a hybrid host only, unmounts cgroup2 first; runc as is', () => {
  assert.deepEqual(runtimeInvocation('/usr/sbin/runc', 'hybrid'), {
    program: '/usr/sbin/runc',
    options: [],
    detachUnified: false,
  });
  for (const mode of ['unified', 'legacy'] as const)
    assert.deepEqual(runtimeInvocation('/usr/bin/crun', mode), {
      program: '/usr/bin/crun',
      options: ['--cgroup-manager=disabled'],
      detachUnified: false,
    });
  const hybrid = runtimeInvocation('/usr/bin/crun', 'hybrid');
  assert.equal(hybrid.detachUnified, true);
  const args = ['--root', '/s', 'delete', '--force', 'x'];
  assert.deepEqual(runtimeArgv(runtimeInvocation('/usr/sbin/runc', 'hybrid'), args, 'host'), [
    '/usr/sbin/runc',
    ...args,
  ]);
  // In kiln's run wrapper (a private mount namespace already): the unmount, then the runtime.
  const inWrapper = runtimeArgv(hybrid, args, 'private');
  assert.deepEqual(inWrapper.slice(0, 2), ['sh', '-c']);
  assert.match(inWrapper[2]!, /^umount -l \/sys\/fs\/cgroup\/unified && exec "\$0" "\$@"$/);
  assert.deepEqual(inWrapper.slice(3), ['/usr/bin/crun', '--cgroup-manager=disabled', ...args]);
  // Elsewhere (probe, delete): in a private mount namespace of its own, never the host's.
  assert.deepEqual(runtimeArgv(hybrid, args, 'host'), ['unshare', '--mount', '--propagation', 'private', ...inWrapper]);
});

test("cgroupMode: this host's layout as its mount table tells it", () => {
  // Mount point and file system type of each mount (mountinfo: field 5, and the one after " - ").
  const mounts = new Map(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.split(' ')[4]!, l.split(' - ')[1]!.split(' ')[0]!] as const),
  );
  const expected =
    mounts.get('/sys/fs/cgroup') === 'cgroup2'
      ? 'unified'
      : mounts.get('/sys/fs/cgroup') === 'tmpfs' && mounts.get('/sys/fs/cgroup/unified') === 'cgroup2'
        ? 'hybrid'
        : 'legacy';
  assert.equal(cgroupMode(), expected);
});
