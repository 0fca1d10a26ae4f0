/**
 * Rootless kiln on the host: test users made here build and run as themselves, in a user namespace
 * mapped with their subordinate ids (newuidmap/newgidmap), into their own store
 * ($XDG_DATA_HOME/kiln). Every seed builds and runs; owners in the layers (root, 65532, a
 * useradd'ed user) equal a root build's, and with SOURCE_DATE_EPOCH the image is the same image.
 * A user without subordinate ids is told what to add and which mode kiln used.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar, type BaseName } from '../../helpers/bases.js';
import { workloadsDir } from '../../helpers/paths.js';
import {
  createTestUser,
  removeTestUser,
  rootlessPrerequisites,
  runKilnAs,
  type TestUser,
} from '../../helpers/users.js';

const workloads = workloadsDir;
const missing =
  rootlessPrerequisites() ?? basesUnavailable() ?? (existsSync(workloads) ? undefined : `no ${workloads}`);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-rootless-'));
chmodSync(work, 0o755);
const rootStore = path.join(work, 'root-store');
const tag = process.pid % 100000;
let withIds: TestUser | undefined;
let noIds: TestUser | undefined;
const SDE = { SOURCE_DATE_EPOCH: '1700000000' };

after(() => {
  for (const u of [withIds, noIds]) if (u) removeTestUser(u);
  rmSync(work, { recursive: true, force: true });
});

const userStoreBlobs = (u: TestUser) => path.join(u.home, '.local', 'share', 'kiln', 'blobs', 'sha256');

/** An image's manifest layer digests, its id, from `kiln inspect`. */
function inspectOut(stdout: string): { id: string; layers: string[] } {
  const [o] = JSON.parse(stdout) as { Id: string; Manifest: { Layers: { digest: string }[] } }[];
  return { id: o!.Id, layers: o!.Manifest.Layers.map((l) => l.digest) };
}

/** Every entry of a layer blob as "mode uid/gid path" (tar's listing), for comparing owners. */
function owners(blob: string): string[] {
  const r = spawnSync('tar', ['-tvf', blob, '--numeric-owner'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(/\s+/);
      return `${f[0]} ${f[1]} ${f.slice(5).join(' ')}`;
    });
}

async function rootBuild(
  context: string,
  t: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<void> {
  const r = await runKiln(['build', '-q', '-t', t, ...args, context], { root: rootStore, env });
  assert.equal(r.code, 0, `root build of ${context}: ${r.stderr}`);
}

/** A workload's context, scaled down as in seeds.test.ts. */
function scaled(w: string, replacements: [string, string][]): string {
  const dir = path.join(work, `ctx-${w}`);
  cpSync(path.join(workloads, w), dir, { recursive: true });
  const file = path.join(dir, 'Dockerfile');
  let text = readFileSync(file, 'utf8');
  for (const [from, to] of replacements) text = text.replace(from, to);
  writeFileSync(file, text);
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  return dir;
}

describe('rootless kiln on the host', () => {
  before(async () => {
    if (missing) throw new Error(`rootless tests cannot run here: ${missing}`);
    withIds = createTestUser(`kilnrl${tag}`, { subids: true });
    noIds = createTestUser(`kilnni${tag}`, { subids: false });
    // The bases, imported once by root and loaded by the users: the same images (same ids).
    const names: BaseName[] = ['python-full', 'python-slim', 'node-full', 'node-slim', 'debian-slim'];
    for (const b of names) {
      const r = await runKiln(['import', await ensureBaseTar(b), `localhost:5000/${b}:bookworm`], { root: rootStore });
      assert.equal(r.code, 0, r.stderr);
    }
    const archive = path.join(work, 'bases.tar');
    const s = await runKiln(['save', '-o', archive, ...names.map((b) => `localhost:5000/${b}:bookworm`)], {
      root: rootStore,
    });
    assert.equal(s.code, 0, s.stderr);
    chmodSync(archive, 0o644);
    for (const u of [withIds, noIds]) {
      const l = await runKilnAs(u, ['load', '-q', '-i', archive]);
      assert.equal(l.code, 0, `${u.name}: ${l.stderr}`);
    }
  });

  test('a user with subordinate ids keeps owners (root, 65532, a useradded user): with SOURCE_DATE_EPOCH, the image of a root build', async () => {
    const ctx = path.join(work, 'owners');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'f.txt'), 'copied\n');
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      [
        'FROM localhost:5000/debian-slim:bookworm',
        'RUN useradd -m -u 1234 app && mkdir /data && chown 65532:65532 /data && touch /home/app/f && chown app:app /home/app/f && echo hi > /x',
        'COPY --chown=65532:65532 f.txt /data/f.txt',
        'USER app',
        'RUN id -u > /home/app/who && touch /home/app/g',
        '',
      ].join('\n'),
    );
    spawnSync('chmod', ['-R', 'a+rX', ctx]);
    await rootBuild(ctx, 'owners:1', [], SDE);
    const r = await runKilnAs(withIds!, ['build', '--progress', 'plain', '-t', 'owners:1', ctx], { env: SDE });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /#0 sandbox: rootless \(user namespace, 65537 ids mapped\)/);
    const asRoot = inspectOut((await runKiln(['inspect', 'owners:1'], { root: rootStore })).stdout);
    const asUser = inspectOut((await runKilnAs(withIds!, ['inspect', 'owners:1'])).stdout);
    assert.equal(asUser.id, asRoot.id, 'the same image id as root');
    assert.deepEqual(asUser.layers, asRoot.layers);
    // The store is the user's ($XDG_DATA_HOME/kiln), and runs show the owners.
    assert.ok(existsSync(path.join(userStoreBlobs(withIds!), asUser.layers.at(-1)!.slice(7))));
    const run = await runKilnAs(withIds!, [
      'run',
      'owners:1',
      'sh',
      '-c',
      'id -u; stat -c "%u:%g %n" /data /data/f.txt /home/app/f /home/app/g /x; cat /home/app/who',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      '1234\n65532:65532 /data\n65532:65532 /data/f.txt\n1234:1234 /home/app/f\n1234:1234 /home/app/g\n0:0 /x\n1234\n',
    );
  });

  // Each seed as in seeds.test.ts (scaled down): [workload, build args, scaling, run args, expected output].
  const seeds: [string, string[], [string, string][], string[], RegExp][] = [
    ['py-wheels', [], [], [], /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/],
    ['py-obfuscate', [], [], [], /hello, multi-stage/],
    ['py-venv', [], [], [], /hello, multi-stage/],
    [
      'py-usrlocal-user',
      [],
      [],
      ['sh', '-c', './entrypoint.sh && id -un && stat -c %U /microblog/entrypoint.sh'],
      /hello, multi-stage[^]*\nmicroblog\nmicroblog\n$/,
    ],
    ['node-distroless', [], [], ['index.js', '--once'], /^hello from 65532 — 1,234,567 requests served/],
    ['single-stage-fat', [], [], [], /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/],
    ['many-files', [], [['/gen.py /out 30000', '/gen.py /out 3000']], [], /^3000\n$/],
    ['big-layer', [], [['head -c 300000000', 'head -c 30000000']], [], / 30000000 .* blob\.bin/],
  ];
  for (const [w, args, scale, runArgs, expected] of seeds) {
    test(`seed ${w}: built and run by the user, the owners of every layer as root's`, async () => {
      const ctx = scaled(w, scale);
      await rootBuild(ctx, `${w}:1`, args);
      const b = await runKilnAs(withIds!, ['build', '-q', '-t', `${w}:1`, ...args, ctx]);
      assert.equal(b.code, 0, `${w}: ${b.stderr}`);
      const run = await runKilnAs(withIds!, [
        'run',
        ...(runArgs[0] === 'sh' ? ['--entrypoint', ''] : []),
        `${w}:1`,
        ...runArgs,
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, expected);
      const asRoot = inspectOut((await runKiln(['inspect', `${w}:1`], { root: rootStore })).stdout);
      const asUser = inspectOut((await runKilnAs(withIds!, ['inspect', `${w}:1`])).stdout);
      assert.equal(asUser.layers.length, asRoot.layers.length);
      for (const [i, d] of asUser.layers.entries()) {
        const mine = owners(path.join(userStoreBlobs(withIds!), d.slice(7)));
        const roots = owners(path.join(rootStore, 'blobs', 'sha256', asRoot.layers[i]!.slice(7)));
        assert.deepEqual(mine, roots, `${w}: layer ${i}: entries, modes and owners as root's`);
      }
    });
  }

  test('a user without subordinate ids is told what to add, and builds in the single-id mode', async () => {
    const ctx = path.join(work, 'single');
    mkdirSync(ctx);
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      'FROM localhost:5000/debian-slim:bookworm\nRUN useradd -m app && echo hi > /x\nUSER app\nRUN id -u > /tmp/who\n',
    );
    spawnSync('chmod', ['-R', 'a+rX', ctx]);
    const r = await runKilnAs(noIds!, ['build', '--progress', 'plain', '-t', 'single:1', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`single-id mode \\(no subordinate ids for ${noIds!.name} in /etc/subuid and /etc/subgid\\)`),
    );
    assert.match(r.stderr, new RegExp(`add "${noIds!.name}:100000:65536" to /etc/subuid and /etc/subgid`));
    assert.match(r.stderr, /#0 sandbox: rootless, single-id mode/);
    const run = await runKilnAs(noIds!, ['run', 'single:1', 'sh', '-c', 'cat /tmp/who; stat -c %u /x /home/app']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '0\n0\n0\n', 'RUN as root; every file root-owned');
  });
});
