import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cliPath } from '../../helpers/paths.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';

const noBases = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-build-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), content);
  }
  return dir;
}

async function inspect(name: string) {
  const r = await runKiln(['inspect', name], { root });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout)[0] as {
    Config: Record<string, unknown>;
    RootFS: { Layers: string[] };
    History: { created_by: string; empty_layer?: boolean }[];
  };
}

async function inImage(name: string, script: string): Promise<string> {
  const r = await runKiln(['run', '--entrypoint', '', name, 'sh', '-c', script], { root });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('kiln build on the Debian base', { skip: noBases }, () => {
  before(async () => {
    const r = await runKiln(
      ['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm', '--change', 'CMD ["bash"]'],
      { root },
    );
    assert.equal(r.code, 0, r.stderr);
  });

  test('multi-stage: only what the final stage copies ships; config and history like docker', async () => {
    const ctx = context('multi', {
      Dockerfile: [
        'ARG GREETING=hello',
        'FROM debian-slim:bookworm AS builder',
        'ARG GREETING',
        'WORKDIR /src',
        'COPY . .',
        'RUN echo "$GREETING from $(cat msg.txt)" > out.txt && echo secret > build-only.txt',
        'FROM debian-slim:bookworm AS unused',
        'RUN exit 1',
        'FROM debian-slim:bookworm',
        'RUN useradd -u 1234 app',
        'COPY --from=builder --chown=app:app /src/out.txt /app/',
        'COPY --chmod=0750 msg.txt /app/msg.txt',
        'ENV A=1 B="two words"',
        'LABEL org.example=yes',
        'EXPOSE 8000 53/udp',
        'USER app',
        'WORKDIR /app',
        'ENTRYPOINT ["cat"]',
        'CMD ["/app/out.txt"]',
      ].join('\n'),
      'msg.txt': 'the context',
      '.dockerignore': 'ignored.txt\n',
      'ignored.txt': 'no',
    });
    const r = await runKiln(['build', '-t', 'multi:1', '--build-arg', 'GREETING=hi', ctx], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
    assert.doesNotMatch(r.stderr, /\[unused/, 'a stage nothing needs never runs');
    const run = await runKiln(['run', 'multi:1'], { root });
    assert.equal(run.stdout, 'hi from the context\n');
    const i = await inspect('multi:1');
    assert.deepEqual(i.Config.Entrypoint, ['cat']);
    assert.deepEqual(i.Config.Cmd, ['/app/out.txt']);
    assert.equal(i.Config.User, 'app');
    assert.equal(i.Config.WorkingDir, '/app');
    assert.deepEqual(i.Config.ExposedPorts, { '8000/tcp': {}, '53/udp': {} });
    assert.deepEqual(i.Config.Labels, { 'org.example': 'yes' });
    assert.ok((i.Config.Env as string[]).includes('A=1') && (i.Config.Env as string[]).includes('B=two words'));
    assert.ok(!(i.Config.Env as string[]).some((e) => e.startsWith('GREETING=')), 'ARG values are not in the config');
    assert.equal(i.RootFS.Layers.length, 4, 'base + useradd + two COPYs (WORKDIR /app exists already)');
    assert.ok(i.History.some((h) => h.created_by === 'USER app' && h.empty_layer));
    const files = await inImage('multi:1', 'ls -ln /app; ls /src 2>&1 || true; id -u');
    assert.match(files, /-rw-r--r-- +1 1234 +1234 .* out\.txt/);
    assert.match(files, /-rwxr-x--- +1 +0 +0 .* msg\.txt/);
    assert.match(files, /No such file/, 'the builder stage does not ship');
  });

  test('ENTRYPOINT in a stage clears the inherited CMD; shell form runs through /bin/sh -c', async () => {
    const ctx = context('ep', { Dockerfile: 'FROM debian-slim:bookworm\nENTRYPOINT echo from-entrypoint\n' });
    assert.equal((await runKiln(['build', '-t', 'ep:1', ctx], { root })).code, 0);
    const i = await inspect('ep:1');
    assert.equal(i.Config.Cmd ?? null, null);
    assert.deepEqual(i.Config.Entrypoint, ['/bin/sh', '-c', 'echo from-entrypoint']);
  });

  test('COPY rules: directory contents, trailing slash, wildcards, a symlink source followed', async () => {
    const ctx = context('copy', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'COPY dir /d1',
        'COPY dir /d2/',
        'COPY *.txt /t/',
        'COPY a.txt /renamed',
        'COPY link /links/',
      ].join('\n'),
      'dir/x/y.txt': 'y',
      'a.txt': 'a',
      'b.txt': 'b',
    });
    symlinkSync('a.txt', path.join(ctx, 'link'));
    const r = await runKiln(['build', '-t', 'copy:1', ctx], { root });
    assert.equal(r.code, 0, r.stderr);
    // A named source that is a link is followed (BuildKit's FollowSymlinks): the file, under the link's name.
    const out = await inImage(
      'copy:1',
      'cat /d1/x/y.txt /d2/x/y.txt /t/a.txt /t/b.txt /renamed; echo; cat /links/link; test -L /links/link || echo not-a-link',
    );
    assert.equal(out, 'yyaba\nanot-a-link\n');
  });

  test('errors: a failing RUN names the stage, line, command, exit code and output', async () => {
    const ctx = context('fail', { Dockerfile: 'FROM debian-slim:bookworm AS b\nRUN echo about to fail && exit 3\n' });
    const r = await runKiln(['build', ctx], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Dockerfile:2:1: stage b: RUN failed with exit code 3: echo about to fail && exit 3/);
    assert.match(r.stderr, /about to fail/);
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
  });

  test('errors: the first stage to fail stops the others (their RUN killed, shown CANCELED), as BuildKit', async () => {
    const ctx = context('fail-fast', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS slow',
        'RUN sleep 60 && touch /slow',
        'FROM debian-slim:bookworm AS bad',
        'RUN sleep 1 && exit 4',
        'FROM debian-slim:bookworm',
        'COPY --from=slow /slow /slow',
        'COPY --from=bad /etc/hostname /bad',
      ].join('\n'),
    });
    const t0 = Date.now();
    const r = await runKiln(['build', '--progress', 'plain', ctx], { root });
    const took = Date.now() - t0;
    assert.equal(r.code, 1);
    // The first failure is the error, not the "interrupted" of the stage it stopped.
    assert.match(r.stderr, /Dockerfile:4:1: stage bad: RUN failed with exit code 4: sleep 1 && exit 4/);
    assert.match(r.stderr, /^#\d+ CANCELED$/m);
    assert.doesNotMatch(r.stderr, /interrupted/);
    // Not the sibling's 60 s (a generous bound: a loaded CI machine).
    assert.ok(took < 40_000, `the build took ${took} ms: the sibling stage was not stopped`);
    // The slow stage's process is gone and its run dir cleaned up.
    const left = spawnSync('pgrep', ['-f', 'sleep 60 && touch /slow'], { encoding: 'utf8' });
    assert.equal(left.stdout, '', 'the stopped stage left its process running');
    assert.deepEqual(readdirSync(path.join(root, 'run')), []);
  });

  test('errors: missing source, unknown base image, unknown instruction, bad build arg, missing context', async () => {
    const missing = await runKiln(
      ['build', context('miss', { Dockerfile: 'FROM debian-slim:bookworm\nCOPY nope.txt /\n' })],
      { root },
    );
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Dockerfile:2:1: .*"nope\.txt" not found in the build context/);
    const nobase = await runKiln(['build', context('nobase', { Dockerfile: 'FROM no-such-image:1\n' })], { root });
    assert.equal(nobase.code, 1);
    assert.match(nobase.stderr, /base image no-such-image:1 is not in the store/);
    const unknown = await runKiln(['build', context('unk', { Dockerfile: 'FROM debian-slim:bookworm\nCOPPY a b\n' })], {
      root,
    });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /Dockerfile:2:1: unknown instruction: COPPY/);
    const badArg = await runKiln(
      ['build', '--build-arg', '=x', context('arg', { Dockerfile: 'FROM debian-slim:bookworm\n' })],
      { root },
    );
    assert.equal(badArg.code, 2);
    const noCtx = await runKiln(['build', path.join(work, 'does-not-exist')], { root });
    assert.equal(noCtx.code, 1);
    assert.match(noCtx.stderr, /build context does not exist/);
  });

  test('--target, -f -, --iidfile, --output type=docker', async () => {
    const ctx = context('target', { 'a.txt': 'a' });
    const iid = path.join(work, 'iid');
    const out = path.join(work, 'out.tar');
    const r = await runKiln(
      [
        'build',
        '-f',
        '-',
        '--target',
        'first',
        '--iidfile',
        iid,
        '--output',
        `type=docker,dest=${out}`,
        '-t',
        'target:1',
        ctx,
      ],
      { root, input: 'FROM debian-slim:bookworm AS first\nCOPY a.txt /\nFROM first\nRUN exit 9\n' },
    );
    assert.equal(r.code, 0, r.stderr);
    const other = path.join(work, 'store-load');
    const l = await runKiln(['load', '-i', out], { root: other });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /target:1/);
  });

  test('two builds on one store at once both succeed', async () => {
    const a = context('conc-a', {
      Dockerfile: 'FROM debian-slim:bookworm\nRUN echo a > /a && sleep 1\nCOPY x /x\n',
      x: 'a',
    });
    const b = context('conc-b', {
      Dockerfile: 'FROM debian-slim:bookworm\nRUN echo b > /b && sleep 1\nCOPY x /x\n',
      x: 'b',
    });
    const [ra, rb] = await Promise.all([
      runKiln(['build', '-q', '-t', 'conc:a', a], { root }),
      runKiln(['build', '-q', '-t', 'conc:b', b], { root }),
    ]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(await inImage('conc:a', 'cat /a /x'), 'a\na');
    assert.equal(await inImage('conc:b', 'cat /b /x'), 'b\nb');
  });

  test('Ctrl-C during a RUN step: exit 130, nothing mounted or left running, the store still works', async () => {
    const ctx = context('intr', { Dockerfile: 'FROM debian-slim:bookworm\nRUN echo started && sleep 30\n' });
    const child = spawn(process.execPath, [cliPath, 'build', ctx], {
      env: { ...process.env, KILN_ROOT: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve) =>
      child.stderr.on('data', (b: Buffer) => b.toString().includes('started') && resolve()),
    );
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    assert.equal(code, 130);
    assert.ok(Date.now() - t0 < 15000, `the step is stopped at once, not waited for (${Date.now() - t0} ms)`);
    assert.equal(
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(root)).length,
      0,
      'no mount left',
    );
    assert.deepEqual(readdirSync(path.join(root, 'run')), [], 'no run state left');
    const t1 = Date.now();
    const again = await runKiln(
      ['build', '-q', context('after', { Dockerfile: 'FROM debian-slim:bookworm\nRUN true\n' })],
      { root },
    );
    assert.ok(Date.now() - t1 < 15000, `the next build does not wait for the interrupted one (${Date.now() - t1} ms)`);
    assert.equal(again.code, 0, again.stderr);
  });

  test('ADD unpacks a local tar archive (gzip) keeping its ownership; other files are copied', async () => {
    const ctx = context('add', {
      Dockerfile: 'FROM debian-slim:bookworm\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/\n',
      'plain.txt': 'p',
      'src/pkg/file.txt': 'inside',
    });
    const { spawnSync } = await import('node:child_process');
    const t = spawnSync('tar', [
      '-czf',
      path.join(ctx, 'bundle.tar.gz'),
      '--owner=1000',
      '--group=1000',
      '-C',
      path.join(ctx, 'src'),
      'pkg',
    ]);
    assert.equal(t.status, 0);
    const r = await runKiln(['build', '-q', '-t', 'add:1', ctx], { root });
    assert.equal(r.code, 0, r.stderr);
    const out = await inImage(
      'add:1',
      'cat /opt/pkg/file.txt /opt/plain.txt; stat -c %u:%g /opt/pkg/file.txt; ls /opt',
    );
    assert.equal(out, 'insidep1000:1000\npkg\nplain.txt\n');
  });
});
