/**
 * Which OCI runtime kiln picks on this host, checked against the host itself: crun whenever crun
 * can start a container here (found out by starting one the way the host allows, independently of
 * kiln's probe), runc otherwise; crun makes no cgroup, on a hybrid host it is started with the
 * cgroup2 mount out of its sight, and `--runtime` forces either.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { selectRunner, type OciRunner } from '../../../src/sandbox/runtime.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-runtime-choice-'));
const root = path.join(work, 'store');

const which = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();

/** The cgroup2 mount of a hybrid host (cgroup v1 at /sys/fs/cgroup, cgroup2 below it), from the mount table. */
function hybridHost(): boolean {
  const types = new Map(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.split(' ')[4]!, l.split(' - ')[1]!.split(' ')[0]!] as const),
  );
  return types.get('/sys/fs/cgroup') === 'tmpfs' && types.get('/sys/fs/cgroup/unified') === 'cgroup2';
}

/**
 * Can crun start a container here? Checked without kiln: crun runs a missing program in an empty
 * root and, when it works, gets as far as saying the program is missing; on a hybrid host as the
 * host allows it (in a mount namespace without the cgroup2 mount).
 */
function crunWorksHere(crun: string): boolean {
  const dir = path.join(work, `crun-check-${process.pid}`);
  mkdirSync(path.join(dir, 'rootfs', 'dev'), { recursive: true });
  mkdirSync(path.join(dir, 'rootfs', 'proc'), { recursive: true });
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      ociVersion: '1.0.2',
      process: { user: { uid: 0, gid: 0 }, args: ['/missing-program'], env: [], cwd: '/' },
      root: { path: path.join(dir, 'rootfs') },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] },
    }),
  );
  const run = `${crun} --cgroup-manager=disabled --root ${dir}/state run --bundle ${dir} check`;
  const r = hybridHost()
    ? spawnSync(
        'unshare',
        ['--mount', '--propagation', 'private', 'sh', '-c', `umount -l /sys/fs/cgroup/unified && ${run}`],
        {
          encoding: 'utf8',
        },
      )
    : spawnSync('sh', ['-c', run], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  return /missing-program/.test(r.stderr) && /not found|no such file/i.test(r.stderr);
}

before(async () => {
  const missing = basesUnavailable();
  assert.ok(!missing, String(missing));
  const r = await runKiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm'], { root });
  assert.equal(r.code, 0, r.stderr);
});
after(() => rmSync(work, { recursive: true, force: true }));

test('crun is chosen wherever it can start a container here, with no cgroup, past a hybrid host; else runc', async () => {
  const crun = which('crun');
  const runc = which('runc');
  assert.ok(crun || runc, 'neither crun nor runc is installed (apt-get install crun runc)');
  const scratch = path.join(work, 'scratch');
  mkdirSync(scratch, { recursive: true });
  const runner = (await selectRunner({ scratch })) as OciRunner;
  assert.equal(runner.kind, 'oci');
  if (crun && crunWorksHere(crun)) {
    assert.equal(runner.program, crun, 'crun works here: kiln must pick it');
    assert.deepEqual(runner.invocation.options, ['--cgroup-manager=disabled']);
    assert.equal(runner.invocation.detachUnified, hybridHost(), 'the cgroup2 mount is unmounted on a hybrid host only');
  } else {
    assert.equal(runner.program, runc, 'crun cannot run here: runc');
  }
});

test("a RUN under the default runtime stays in kiln's cgroups; --runtime runc gives it its own; both run alike", async () => {
  const script =
    'cat /proc/self/cgroup; echo; id -u; hostname; ulimit -n; cat /proc/sys/kernel/hostname >/dev/null; touch /sys/x 2>&1 || echo ro-sys';
  const own = readFileSync('/proc/self/cgroup', 'utf8').trim();
  const def = await runKiln(['run', '--network', 'none', 'debian-slim:bookworm', 'sh', '-c', script], { root });
  assert.equal(def.code, 0, def.stderr);
  const runc = which('runc');
  const forced = await runKiln(
    ['run', '--runtime', runc || 'runc', '--network', 'none', 'debian-slim:bookworm', 'sh', '-c', script],
    {
      root,
    },
  );
  assert.equal(forced.code, 0, forced.stderr);
  const [defCgroups, defRest] = def.stdout.split('\n\n');
  const [runcCgroups, runcRest] = forced.stdout.split('\n\n');
  if (which('crun') && crunWorksHere(which('crun'))) {
    // kiln's own memory cgroup (say) holds the RUN: a limit put on kiln holds for it.
    const mine = (s: string) =>
      s!
        .split('\n')
        .filter((l) => !l.startsWith('0::'))
        .sort();
    assert.deepEqual(mine(defCgroups!), mine(own), 'crun made no cgroup');
  }
  assert.match(runcCgroups!, /-run-[0-9a-f]+/, "runc's cgroup is named after the run");
  // The same process otherwise: root, the run's hostname (its id), docker's ulimits, a read-only /sys.
  const tidy = (s: string) => s!.replace(/^[0-9a-f]{12}$/m, 'HOST');
  assert.equal(tidy(defRest!), tidy(runcRest!));
  assert.match(defRest!, /^0\n[0-9a-f]{12}\n/);
  assert.match(defRest!, /ro-sys|Read-only/);
  // runc's cgroups went with its container, under every controller (other kilns' may be there).
  const id = /\/(\d+-run-[0-9a-f]+)$/m.exec(runcCgroups!)?.[1];
  assert.ok(id);
  assert.deepEqual(
    readdirSync('/sys/fs/cgroup').filter((c) => existsSync(path.join('/sys/fs/cgroup', c, id))),
    [],
  );
});

test("the runtime's own failures are told from the process's exit code, under either runtime", async () => {
  for (const runtime of [which('crun'), which('runc')].filter(Boolean)) {
    const missing = await runKiln(['run', '--runtime', runtime, 'debian-slim:bookworm', '/no/such/program'], { root });
    assert.equal(missing.code, 127, `${runtime}: ${missing.stderr}`);
    const denied = await runKiln(['run', '--runtime', runtime, 'debian-slim:bookworm', '/etc/passwd'], { root });
    assert.equal(denied.code, 126, `${runtime}: ${denied.stderr}`);
    const own = await runKiln(
      ['run', '--runtime', runtime, 'debian-slim:bookworm', 'sh', '-c', 'echo no such file >&2; exit 1'],
      {
        root,
      },
    );
    assert.equal(own.code, 1, `${runtime}: the process's own exit code`);
    assert.doesNotMatch(own.stderr, /could not start/);
    const broken = await runKiln(['run', '--runtime', runtime, '-w', '/etc/passwd', 'debian-slim:bookworm', 'true'], {
      root,
    });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, new RegExp(`error: ${path.basename(runtime)} could not start the process: .*passwd`));
    assert.match(broken.stderr, /hint: try --backend chroot, or another --runtime/);
  }
});

test("kiln build --runtime forces the RUN steps' runtime; one that is missing is a one-line error", async () => {
  const runc = which('runc');
  assert.ok(runc, 'runc is not installed (apt-get install runc)');
  const ctx = path.join(work, 'ctx');
  mkdirSync(ctx, { recursive: true });
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM debian-slim:bookworm\nRUN cat /proc/self/cgroup > /cgroup\n');
  const out = path.join(work, 'out-runc');
  const r = await runKiln(
    ['build', '-q', '--no-cache', '--runtime', 'runc', '--output', `type=local,dest=${out}`, ctx],
    {
      root,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(readFileSync(path.join(out, 'cgroup'), 'utf8'), /-run-[0-9a-f]+/, "runc's cgroup, named after the run");
  const missing = await runKiln(['build', '-q', '--no-cache', '--runtime', '/no/such/runtime', ctx], { root });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /OCI runtime not found: \/no\/such\/runtime/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
});
