/**
 * kiln inside an unprivileged container: kiln builds its own image (image/Dockerfile), pushes it
 * to a local registry, and the machine's Docker engine runs it without --privileged (Docker's
 * default capabilities, seccomp and AppArmor), --network host, to build the seed workloads
 * against that registry and push them; each result runs under docker and prints what it should.
 * Where user namespaces are refused, the chosen mode is in the progress output.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar, type BaseName } from '../../helpers/bases.js';
import { repoRoot, workloadsDir } from '../../helpers/paths.js';
import { dockerdUnavailable, startDockerd, type Dockerd } from '../../helpers/dockerd.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';

const workloads = workloadsDir;
const missing =
  dockerdUnavailable() ??
  registryUnavailable() ??
  basesUnavailable() ??
  (existsSync(workloads) ? undefined : `no ${workloads}`) ??
  (existsSync(path.join(repoRoot, 'node_modules', 'fs-xattr', 'build', 'Release', 'xattr.node'))
    ? undefined
    : 'node_modules/fs-xattr is not built: npm ci');
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-container-'));
const root = path.join(work, 'store');
const boxStore = path.join(work, 'box-store');
let dockerd: Dockerd | undefined;
let registry: Registry | undefined;
let kilnImage = '';

after(async () => {
  await dockerd?.stop();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

function scaled(w: string, replacements: [string, string][]): string {
  const dir = path.join(work, `ctx-${w}`);
  cpSync(path.join(workloads, w), dir, { recursive: true });
  const file = path.join(dir, 'Dockerfile');
  let text = readFileSync(file, 'utf8');
  for (const [from, to] of replacements) text = text.replace(from, to);
  writeFileSync(file, text);
  return dir;
}

describe('kiln in an unprivileged container', () => {
  before(async () => {
    if (missing) throw new Error(`container tests cannot run here: ${missing}`);
    registry = await startRegistry();
    const reg = registry.host;
    // The bases, in the registry under the names the workloads use (REGISTRY=reg).
    for (const b of ['python-full', 'python-slim', 'node-full', 'node-slim', 'debian-slim'] as BaseName[]) {
      const ref = `${reg}/${b}:bookworm`;
      const i = await runKiln(['import', await ensureBaseTar(b), ref], { root });
      assert.equal(i.code, 0, i.stderr);
      const p = await runKiln(['push', ref], { root });
      assert.equal(p.code, 0, p.stderr);
    }
    // A Node.js image: this machine's node (≥ 20.15) at /usr/local/bin/node, as the official image has it.
    const nodeRoot = path.join(work, 'node-root');
    mkdirSync(path.join(nodeRoot, 'usr', 'local', 'bin'), { recursive: true });
    cpSync(process.execPath, path.join(nodeRoot, 'usr', 'local', 'bin', 'node'));
    const tar = spawnSync('tar', ['-C', nodeRoot, '-cf', path.join(work, 'node.tar'), '.']);
    assert.equal(tar.status, 0);
    const n = await runKiln(['import', path.join(work, 'node.tar'), `${reg}/node:20`], { root });
    assert.equal(n.code, 0, n.stderr);
    // kiln builds its own image and pushes it. The context: what image/Dockerfile copies from the
    // repository (node_modules may be a link out of the worktree here; a context copies no link's target).
    const ctx = path.join(work, 'kiln-context');
    for (const p of [
      'package.json',
      'dist/bin',
      'node_modules/fs-xattr/package.json',
      'node_modules/fs-xattr/index.js',
      'node_modules/fs-xattr/build/Release/xattr.node',
      'node_modules/@balena/dockerignore',
    ]) {
      cpSync(path.join(repoRoot, p), path.join(ctx, p), { recursive: true, dereference: true });
    }
    // kiln's native helper, built by npm ci where node_modules/kiln-native links to (native/ of the
    // checkout whose node_modules it is); the image takes it from native/.
    const addon = path.join('build', 'Release', 'kiln_native.node');
    cpSync(path.join(repoRoot, 'node_modules', 'kiln-native', addon), path.join(ctx, 'native', addon), {
      dereference: true,
    });
    kilnImage = `${reg}/kiln:test`;
    const b = await runKiln(
      [
        'build',
        '-q',
        '-f',
        path.join(repoRoot, 'image', 'Dockerfile'),
        '--build-arg',
        `BASE=${reg}/debian-slim:bookworm`,
        '--build-arg',
        `NODE_IMAGE=${reg}/node:20`,
        '-t',
        kilnImage,
        '--push',
        ctx,
      ],
      { root, timeoutMs: 900_000 },
    );
    assert.equal(b.code, 0, `building the kiln image: ${b.stderr}`);
    dockerd = await startDockerd();
    const pull = dockerd.docker(['pull', '-q', kilnImage]);
    assert.equal(pull.code, 0, pull.stderr);
  });

  test('in the container (no --privileged), user namespaces and mounts are refused; kiln --version runs', () => {
    const r = dockerd!.docker([
      'run',
      '--rm',
      '--network',
      'host',
      '--entrypoint',
      'sh',
      kilnImage,
      '-c',
      'unshare --user --map-root-user true 2>&1; echo "userns=$?"; mkdir /m && mount -t tmpfs t /m 2>&1; echo "mount=$?"; kiln --version',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /userns=[1-9]/);
    assert.match(r.stdout, /mount=[1-9]/);
    assert.match(r.stdout, /^\d+\.\d+\.\d+$/m);
  });

  // The container has no overlayfs: its RUN layers come from the native snapshotter, root's on the
  // host from overlay; an overlay copy-up left unchanged (useradd's /etc/.pwd.lock) is no change,
  // so the layers are the same (docs/rootless.md).
  test('with SOURCE_DATE_EPOCH, the image built in the container (native snapshotter) is the image root builds on the host (overlay) (owners root, 65532, a useradded user)', async () => {
    const ctx = path.join(work, 'owners');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'f.txt'), 'copied\n');
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      [
        'ARG REGISTRY',
        'FROM ${REGISTRY}/debian-slim:bookworm',
        'RUN useradd -m -u 1234 app && mkdir /data && chown 65532:65532 /data && touch /home/app/f && chown app:app /home/app/f && echo hi > /x && rm -rf /var/log/apt',
        'COPY --chown=65532:65532 f.txt /data/f.txt',
        'USER app',
        'RUN id -u > /home/app/who && touch /home/app/g',
        '',
      ].join('\n'),
    );
    const reg = registry!.host;
    const host = await runKiln(
      [
        'build',
        '-q',
        '--snapshotter',
        'overlay',
        '--build-arg',
        `REGISTRY=${reg}`,
        '-t',
        `${reg}/owners-host:1`,
        '--push',
        ctx,
      ],
      { root, env: { SOURCE_DATE_EPOCH: '1700000000' } },
    );
    assert.equal(host.code, 0, host.stderr);
    const box = dockerd!.docker([
      'run',
      '--rm',
      '--network',
      'host',
      '-e',
      'SOURCE_DATE_EPOCH=1700000000',
      '-v',
      `${ctx}:/workspace`,
      kilnImage,
      'build',
      '-q',
      '--build-arg',
      `REGISTRY=${reg}`,
      '-t',
      `${reg}/owners-box:1`,
      '--push',
      '/workspace',
    ]);
    assert.equal(box.code, 0, box.stderr);
    const ids = ['owners-host', 'owners-box'].map((n) => {
      const p = dockerd!.docker(['pull', '-q', `${reg}/${n}:1`]);
      assert.equal(p.code, 0, p.stderr);
      return dockerd!.docker(['image', 'inspect', '-f', '{{.Id}}', `${reg}/${n}:1`]).stdout.trim();
    });
    assert.equal(ids[1], ids[0], 'the same image id (config digest: the same layers, the same history)');
    const run = dockerd!.docker([
      'run',
      '--rm',
      `${reg}/owners-box:1`,
      'sh',
      '-c',
      'stat -c "%u:%g %n" /data /data/f.txt /home/app/f /home/app/g /x',
    ]);
    assert.equal(
      run.stdout,
      '65532:65532 /data\n65532:65532 /data/f.txt\n1234:1234 /home/app/f\n1234:1234 /home/app/g\n0:0 /x\n',
    );
  });

  test('in the container, --snapshotter overlay fails with the reason overlayfs cannot be mounted', () => {
    const ctx = path.join(work, 'ovl');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${registry!.host}/debian-slim:bookworm\nRUN true\n`);
    const b = dockerd!.docker([
      'run',
      '--rm',
      '--network',
      'host',
      '-v',
      `${ctx}:/workspace`,
      kilnImage,
      'build',
      '--progress',
      'plain',
      '--snapshotter',
      'overlay',
      '/workspace',
    ]);
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /the overlay snapshotter cannot be used here: overlayfs cannot be mounted \(.+\)/);
    assert.match(b.stderr, /use --snapshotter fuse-overlayfs or native/);
    assert.doesNotMatch(b.stderr, /\n\s+at /, 'no stack trace');
  });

  const seeds: [string, [string, string][], string[], RegExp][] = [
    ['py-wheels', [], [], /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/],
    ['py-obfuscate', [], [], /hello, multi-stage/],
    ['py-venv', [], [], /hello, multi-stage/],
    ['py-usrlocal-user', [], [], /hello, multi-stage/],
    ['node-distroless', [], ['index.js', '--once'], /^hello from 65532 — 1,234,567 requests served/],
    ['single-stage-fat', [], [], /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/],
    ['many-files', [['/gen.py /out 30000', '/gen.py /out 3000']], [], /^3000\n$/],
    ['big-layer', [['head -c 300000000', 'head -c 30000000']], [], / 30000000 .* blob\.bin/],
  ];
  for (const [w, scale, runArgs, expected] of seeds) {
    test(`seed ${w}: built and pushed by kiln in the container, run by docker`, () => {
      const ctx = scaled(w, scale);
      const ref = `${registry!.host}/c-${w}:1`;
      // One store volume for the seeds, as a CI runner keeps one between jobs: the bases are
      // pulled once (each build still runs every step: the workloads share no step).
      const b = dockerd!.docker([
        'run',
        '--rm',
        '--network',
        'host',
        '-v',
        `${ctx}:/workspace`,
        '-v',
        `${boxStore}:/var/lib/kiln`,
        kilnImage,
        'build',
        '--progress',
        'plain',
        '--build-arg',
        `REGISTRY=${registry!.host}`,
        '-t',
        ref,
        '--push',
        '/workspace',
      ]);
      assert.equal(b.code, 0, `${w}: ${b.stderr.slice(-3000)}`);
      assert.match(b.stderr, /#0 sandbox: chroot only: no namespace can be made here/);
      assert.match(b.stderr, /native snapshotter \(copied root; overlay refused: [^)]+\)/);
      const run = dockerd!.docker(['run', '--rm', '--network', 'host', ref, ...runArgs]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, expected);
    });
  }

  // Where even chroot is refused (no CAP_SYS_CHROOT), kiln runs each RUN in the container's own /
  // after unpacking the stage's root there (kaniko's model), loudly labelled.
  test('without CAP_SYS_CHROOT: the host-root backend builds a seed in the container own /, and the image runs', () => {
    const probe = dockerd!.docker([
      'run',
      '--rm',
      '--cap-drop',
      'SYS_CHROOT',
      '--entrypoint',
      'sh',
      kilnImage,
      '-c',
      'chroot / true 2>&1; echo "chroot=$?"',
    ]);
    assert.match(probe.stdout, /chroot=[1-9]/, `chroot is refused: ${probe.stdout}${probe.stderr}`);
    const ctx = scaled('py-wheels', []);
    const ref = `${registry!.host}/h-py-wheels:1`;
    const b = dockerd!.docker([
      'run',
      '--rm',
      '--network',
      'host',
      '--cap-drop',
      'SYS_CHROOT',
      '-v',
      `${ctx}:/workspace`,
      kilnImage,
      'build',
      '--progress',
      'plain',
      '--build-arg',
      `REGISTRY=${registry!.host}`,
      '-t',
      ref,
      '--push',
      '/workspace',
    ]);
    assert.equal(b.code, 0, `host-root py-wheels: ${b.stderr.slice(-3000)}`);
    assert.match(b.stderr, /#0 sandbox: HOST ROOT \(kaniko-like\), NOT ISOLATED: .*use only in a throwaway container/);
    const run = dockerd!.docker(['run', '--rm', '--network', 'host', ref]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/);
  });
});
