import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateMounts, prepareMounts, mountsFile } from '../../../src/sandbox/mounts.js';
import { containerEnv, parseVolume } from '../../../src/sandbox/container.js';
import { needs } from '../../helpers/prereq.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-mounts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('mounts are checked before anything is set up', () => {
  const src = path.join(tmp, 'src');
  mkdirSync(src, { recursive: true });
  validateMounts([
    { type: 'bind', source: src, target: '/a' },
    { type: 'tmpfs', target: '/b' },
    { type: 'cache', source: path.join(tmp, 'cache-not-yet'), target: '/c' },
  ]);
  assert.throws(() => validateMounts([{ type: 'tmpfs', target: 'rel' }]), /must be an absolute path/);
  assert.throws(() => validateMounts([{ type: 'tmpfs', target: '/' }]), /over the root/);
  assert.throws(
    () =>
      validateMounts([
        { type: 'tmpfs', target: '/x' },
        { type: 'tmpfs', target: '/x/' },
      ]),
    /duplicate mount point: \/x/,
  );
  assert.throws(
    () => validateMounts([{ type: 'bind', source: path.join(tmp, 'nope'), target: '/x' }]),
    /bind source path does not exist/,
  );
  assert.throws(() => validateMounts([{ type: 'bind', source: 'relative', target: '/x' }]), /absolute host source/);
  assert.throws(() => validateMounts([{ type: 'volume' as 'bind', target: '/x' }]), /unknown mount type/);
});

test(
  'prepared mounts: cache dirs made with their owner and mode, writes-discarded binds copied without overlay, parents first',
  { skip: needs(process.getuid?.() !== 0 ? 'prepared mounts need root (chown): run the tests as root' : undefined) },
  async () => {
    const src = path.join(tmp, 'ctx');
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'f'), 'data');
    const file = path.join(tmp, 'secret');
    writeFileSync(file, 's');
    const runDir = mkdtempSync(path.join(tmp, 'run-'));
    const cache = path.join(tmp, 'caches', 'pip');
    const out = await prepareMounts(
      [
        { type: 'bind', source: src, target: '/x/y/ctx', discardWrites: true },
        { type: 'cache', source: cache, target: '/root/.cache', uid: 1000, gid: 1001, mode: 0o700 },
        { type: 'tmpfs', target: '/x', size: 1 << 20 },
        { type: 'bind', source: file, target: '/run/secrets/s', readonly: true },
      ],
      runDir,
      false,
      (t) => t,
    );
    assert.deepEqual(
      out.map((m) => m.target),
      ['/x', '/root/.cache', '/x/y/ctx', '/run/secrets/s'],
    );
    const st = statSync(cache);
    assert.equal(st.mode & 0o7777, 0o700);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
    const ctx = out.find((m) => m.target === '/x/y/ctx')!;
    assert.notEqual(ctx.source, src, 'writes go to a copy');
    assert.ok(ctx.source!.startsWith(runDir));
    assert.equal(readFileSync(path.join(ctx.source!, 'f'), 'utf8'), 'data');
    assert.equal(out.find((m) => m.target === '/run/secrets/s')?.readonly, true);
    assert.ok(mountsFile({ type: 'bind', source: file, target: '/s' }));
    assert.ok(!mountsFile({ type: 'bind', source: src, target: '/s' }));
  },
);

test('kiln run environment: HOSTNAME, the image ENV, then -e (later wins, KEY alone from here)', () => {
  assert.deepEqual(
    containerEnv(['PATH=/bin', 'A=1', 'HOSTNAME=img'], ['A=2', 'B=x=y', 'FROM_HOST', 'UNSET_HERE'], 'abc', {
      FROM_HOST: 'h',
    }),
    ['HOSTNAME=img', 'PATH=/bin', 'A=2', 'B=x=y', 'FROM_HOST=h'],
  );
  assert.throws(() => containerEnv([], ['=x'], 'h'), /the name is empty/);
});

test('kiln run -v: host:container[:ro|rw]', () => {
  assert.deepEqual(parseVolume('/data:/mnt:ro'), { type: 'bind', source: '/data', target: '/mnt', readonly: true });
  assert.deepEqual(parseVolume('/data:/mnt'), { type: 'bind', source: '/data', target: '/mnt', readonly: false });
  assert.equal(parseVolume('./here:/mnt:rw').source, path.resolve('here'));
  assert.throws(() => parseVolume('/data'), /expected \/host\/path:\/container\/path/);
  assert.throws(() => parseVolume('/data:/mnt:xx'), /expected/);
  assert.throws(() => parseVolume('/data:mnt'), /must be absolute/);
  assert.throws(() => parseVolume('named:/mnt'), /named volumes are not supported/);
});
