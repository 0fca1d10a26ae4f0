/**
 * Bad input and hostile sizes at the CLI: one clear message, the documented exit code, never a
 * stack trace; deep stage graphs and closed pipes do not crash.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { cliPath } from '../../helpers/paths.js';
import { craftTar } from '../../helpers/craft-tar.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-cli-hard-'));
after(() => rmSync(work, { recursive: true, force: true }));
const root = path.join(work, 'store');

function clean(r: { stderr: string }): void {
  assert.doesNotMatch(r.stderr, /\n\s+at |node:internal|Unhandled/, `no stack trace: ${r.stderr}`);
}

function chainDockerfile(n: number): string {
  const lines = ['FROM scratch AS s0'];
  for (let i = 0; i < n; i++) lines.push(`FROM s${i} AS s${i + 1}`);
  return `${lines.join('\n')}\n`;
}

test('a chain of 4,000 stages plans without overflowing the stack', async () => {
  const ctx = path.join(work, 'chain');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'Dockerfile'), chainDockerfile(4000));
  const r = await runKiln(['plan', '--format', 'json', ctx], { root });
  assert.equal(r.code, 0, r.stderr.slice(0, 2000));
  const plan = JSON.parse(r.stdout) as { order: number[] };
  assert.equal(plan.order.length, 4001);
  assert.equal(plan.order[0], 0, 'the first stage first');
});

test('a 64 MiB Dockerfile is refused at once with a clear message', async () => {
  const ctx = path.join(work, 'huge');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'Dockerfile'), `FROM scratch\n${'RUN echo x \\\n'.repeat((64 << 20) / 12)}`);
  const t0 = Date.now();
  const r = await runKiln(['plan', ctx], { root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the Dockerfile is \d+\.\d MiB; kiln reads Dockerfiles of at most 4 MiB/);
  clean(r);
  assert.ok(Date.now() - t0 < 3000, `refused in ${Date.now() - t0} ms`);
  const piped = await runKiln(['plan', '-f', '-', ctx], { root, input: `FROM scratch\n${'#'.repeat(5 << 20)}\n` });
  assert.equal(piped.code, 1);
  assert.match(piped.stderr, /kiln reads Dockerfiles of at most 4 MiB/);
});

test('a closed stdout (kiln … | head -1) ends quietly', async () => {
  const ctx = path.join(work, 'chain');
  const child = spawn(process.execPath, [cliPath, 'plan', '--format', 'json', ctx], {
    env: { ...process.env, KILN_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 0, err);
  assert.equal(err, '');
});

test('bad values: one clear message, exit code 2 for usage, 1 otherwise', async () => {
  const ctx = path.join(work, 'ctx');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\n');
  const tarFile = path.join(work, 'r.tar');
  writeFileSync(tarFile, craftTar([{ name: 'f', content: 'x' }]));
  assert.equal((await runKiln(['import', tarFile, 'img:1'], { root })).code, 0);
  const cases: [string[], number, RegExp][] = [
    [
      ['build', '--snapshotter', 'bogus', ctx],
      2,
      /unknown --snapshotter "bogus": use overlay, fuse-overlayfs or native/,
    ],
    [['build', '--backend', 'bogus', ctx], 2, /unknown --backend "bogus": use oci, chroot, bare or host-root/],
    [['images', '--format', '{{.Bogus}}'], 2, /--format "\{\{\.Bogus\}\}": no field \.Bogus/],
    [['pull', 'localhost:99999/x'], 1, /registry port 99999 is out of range \(1-65535\)/],
    [['build', '/etc/passwd'], 2, /^error: \/etc\/passwd: the build context is not a directory/],
    [
      ['save', '-o', '/missing/x.tar', 'img:1'],
      1,
      /cannot write \/missing\/x\.tar: the directory \/missing does not exist/,
    ],
    [
      ['export', 'img:1', '-o', '/missing/dir/x'],
      1,
      /cannot write \/missing\/dir\/x: the directory \/missing\/dir does not exist/,
    ],
  ];
  for (const [args, code, message] of cases) {
    const r = await runKiln(args, { root });
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /\.tmp-/, 'no temp name in the message');
    clean(r);
  }
  const images = await runKiln(['images', '--format', 'table {{.Repository}}\\t{{.Tag}}'], { root });
  assert.equal(images.code, 0, images.stderr);
  assert.equal(images.stdout, 'REPOSITORY\tTAG\nimg\t1\n');
});
