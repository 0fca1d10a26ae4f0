import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, existsSync, promises as fsp } from 'node:fs';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { cliPath } from '../../helpers/paths.js';
import { Store, type LoadedImage } from '../../../src/store/store.js';
import { runStep, type RunOutcome } from '../../../src/sandbox/index.js';
import { applyLayer } from '../../../src/layer/apply.js';
import { readTar } from '../../../src/layer/tarstream.js';
import { openLayer } from '../../../src/layer/decompress.js';

const noBases = basesUnavailable();
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
after(() => rmSync(work, { recursive: true, force: true }));

const mounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(work)).length;

async function layerNames(out: RunOutcome): Promise<string[]> {
  const names: string[] = [];
  for await (const { header } of readTar(openLayer(store.openBlob(out.layer!.digest)))) names.push(`${header.type === 'directory' ? 'd' : header.type[0]}:${header.name}`);
  return names;
}

const script = [
  'set -e',
  'echo new > /new-file',
  'echo changed >> /etc/debian_version',
  'rm /etc/issue.net',
  'rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo x > /etc/apt/apt.conf.d/only',
  'chmod 700 /etc/motd',
  'mkdir -p /opt/app && cd /opt/app && ls -la / > /opt/app/seen.txt',
].join('\n');

describe('sandbox on an imported Debian base', { skip: noBases }, () => {
  for (const snapshotter of ['overlay', 'native'] as const) {
    test(`${snapshotter}: the layer holds exactly the changes, with whiteouts; applied on the base it gives what the process saw`, async () => {
      const seen: Buffer[] = [];
      const out = await runStep({ store, layers: base.manifest.layers, diffIds: base.config.rootfs.diff_ids, args: ['/bin/sh', '-c', `${script}\nfind / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -printf '%p %y %m %U %s\\n' | LC_ALL=C sort`], env: [], snapshotter, onStdout: (b) => seen.push(b) });
      assert.equal(out.exitCode, 0);
      assert.equal(out.snapshotter, snapshotter);
      const names = await layerNames(out);
      for (const want of ['f:new-file', 'f:etc/debian_version', 'f:etc/.wh.issue.net', 'f:etc/motd', 'f:opt/app/seen.txt', 'f:etc/apt/apt.conf.d/only']) assert.ok(names.includes(want), `${want} in ${names.join(' ')}`);
      if (snapshotter === 'overlay') assert.ok(names.includes('f:etc/apt/apt.conf.d/.wh..wh..opq'), 'a replaced directory is opaque');
      for (const never of ['f:etc/hosts', 'f:etc/resolv.conf', 'f:etc/hostname']) assert.ok(!names.includes(never), `${never} is never captured`);
      assert.ok(!names.some((n) => n.startsWith('f:usr/')), 'nothing unchanged is in the layer');
      // Apply base + layer and compare with what the process saw.
      const flat = path.join(work, `flat-${snapshotter}`);
      await applyLayer(store.openBlob(base.manifest.layers[0]!.digest), flat, { whiteouts: 'apply' });
      await applyLayer(store.openBlob(out.layer!.digest), flat, { whiteouts: 'apply', expectedDiffId: out.layer!.diffId });
      const insideView = Buffer.concat(seen).toString().trim().split('\n').filter((l) => !/^\/(proc|sys|dev)(\/| |$)/.test(l) && !/^\/etc\/(hosts|resolv\.conf|hostname) /.test(l));
      const outsideView = await new Promise<string>((resolve) => {
        const c = spawn('sh', ['-c', `cd ${flat} && find . -xdev -printf '%p %y %m %U %s\\n' | sed 's|^\\.||; s|^ |/ |' | LC_ALL=C sort`]);
        let s = '';
        c.stdout.on('data', (b: Buffer) => (s += b.toString()));
        c.on('close', () => resolve(s));
      });
      const outside = outsideView.trim().split('\n').filter((l) => !/^\/(proc|sys|dev)(\/| |$)/.test(l) && !/^\/etc\/(hosts|resolv\.conf|hostname) /.test(l) && !/^\/opt\/app\/seen\.txt /.test(l));
      const inside = insideView.filter((l) => !/^\/opt\/app\/seen\.txt /.test(l));
      assert.deepEqual(outside, inside);
      assert.equal(mounts(), 0, 'nothing left mounted');
      assert.deepEqual(await fsp.readdir(path.join(root, 'run')), [], 'no run state left');
    });
  }

  for (const backend of ['oci', 'chroot'] as const) {
    test(`${backend}: user, groups, working dir, env, network none, exit code, stdin closed, children`, async () => {
      const out: Buffer[] = [];
      const r = await runStep({
        store,
        layers: base.manifest.layers,
        diffIds: base.config.rootfs.diff_ids,
        args: ['/bin/sh', '-c', 'id; pwd; echo "FOO=$FOO"; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; read x || echo stdin-closed; (sleep 30 &) ; exit 7'],
        env: ['FOO=bar baz'],
        cwd: '/work/dir',
        user: 'nobody',
        network: 'none',
        backend,
        capture: false,
        onStdout: (b) => out.push(b),
      });
      assert.equal(r.exitCode, 7);
      assert.equal(r.backend, backend);
      const text = Buffer.concat(out).toString();
      assert.match(text, /uid=65534\(nobody\) gid=65534\(nogroup\) groups=65534\(nogroup\)/);
      assert.match(text, /^\/work\/dir$/m);
      assert.match(text, /^FOO=bar baz$/m);
      assert.match(text, /^lo$/m);
      assert.doesNotMatch(text, /^eth|^ens/m, 'network none: only lo');
      assert.match(text, /stdin-closed/);
      assert.equal(mounts(), 0);
    });
  }

  test('kiln run: entrypoint/cmd, -e, -u, -w, -v, exit code', async () => {
    const vol = path.join(work, 'vol');
    await fsp.mkdir(vol, { recursive: true });
    await fsp.writeFile(path.join(vol, 'in.txt'), 'from host');
    const r = await runKiln(['run', '--rm', '-e', 'X=1', '-u', '65534', '-w', '/tmp', '-v', `${vol}:/mnt:ro`, 'debian-slim:bookworm', 'sh', '-c', 'echo $X; id -u; pwd; cat /mnt/in.txt; exit 5'], { root });
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, '1\n65534\n/tmp\nfrom host');
    const none = await runKiln(['run', 'debian-slim:bookworm'], { root });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no command specified/);
  });

  test('interrupting kiln run leaves no mount, no process and no run state behind', async () => {
    const child = spawn(process.execPath, [cliPath, 'run', 'debian-slim:bookworm', 'sh', '-c', 'echo started; sleep 60'], { env: { ...process.env, KILN_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => child.stdout.on('data', (b: Buffer) => b.toString().includes('started') && resolve()));
    assert.ok(mounts() > 0, 'mounted while running');
    child.kill('SIGINT');
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    assert.equal(code, 130);
    assert.equal(mounts(), 0, 'no mount left');
    assert.deepEqual(await fsp.readdir(path.join(root, 'run')), []);
    const ps = await new Promise<string>((resolve) => {
      const c = spawn('ps', ['-eo', 'args']);
      let s = '';
      c.stdout.on('data', (b: Buffer) => (s += b.toString()));
      c.on('close', () => resolve(s));
    });
    assert.doesNotMatch(ps, /sleep 60/, 'no process left');
  });

  test('a killed kiln run is cleaned up by the next kiln', async () => {
    const child = spawn(process.execPath, [cliPath, 'run', 'debian-slim:bookworm', 'sh', '-c', 'echo started; sleep 60'], { env: { ...process.env, KILN_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => child.stdout.on('data', (b: Buffer) => b.toString().includes('started') && resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    spawn('pkill', ['-f', 'sleep 60']);
    assert.ok(mounts() > 0, 'the killed run left its mount');
    const r = await runKiln(['run', 'debian-slim:bookworm', 'true'], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(mounts(), 0, 'the next kiln cleaned it');
    assert.equal(existsSync(path.join(root, 'run')) ? (await fsp.readdir(path.join(root, 'run'))).length : 0, 0);
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
      const info = await encodeLayer(tarEntries([{ path: `deep/f${i}`, type: 'file', content: Buffer.from(`${i}\n`), mode: 0o644, uid: 0, gid: 0, mtime: 0 }, { path: 'deep/top', type: 'file', content: Buffer.from(`${i}\n`), mode: 0o644, uid: 0, gid: 0, mtime: 0 }]), w.stream, { compression: 'gzip' });
      await w.commit({ digest: info.digest, size: info.size });
      layers.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
      diffIds.push(info.diffId);
    }
    assert.equal(layers.length, 127);
    const out: Buffer[] = [];
    const r = await runStep({ store, layers, diffIds, args: ['/bin/sh', '-c', 'ls /deep | wc -l; cat /deep/top'], env: [], snapshotter: 'overlay', capture: false, onStdout: (b) => out.push(b) });
    assert.equal(r.exitCode, 0);
    assert.equal(Buffer.concat(out).toString(), '127\n126\n');
    assert.equal(mounts(), 0);
  });
});
