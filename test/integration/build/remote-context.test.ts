/**
 * Contexts that are not a directory, as `docker build` takes them: `-` (a tar of the context on
 * stdin, or a Dockerfile alone), an http(s) URL of a tarball, a git repository
 * (`git://…/repo.git#ref:subdir`). The tar and URL cases are built by BuildKit too (Debian's
 * engine, a loopback HTTP server) and the images' files compared; git against a `git daemon` on
 * loopback.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { dockerdUnavailable, startDockerd, type Dockerd } from '../../helpers/dockerd.js';
import { readSavedImage } from '../../helpers/image-fs.js';
import { runKiln } from '../../helpers/kiln.js';
import { savedImage, Workspace } from './util.js';

const skip = dockerdUnavailable() ?? basesUnavailable();
const ws = new Workspace('kiln-remote-ctx-');
let d: Dockerd | undefined;
let server: Server | undefined;
let base = '';
let gitd: ChildProcess | undefined;

before(async () => {
  if (skip) return;
  const [engine] = await Promise.all([startDockerd(), ws.importDebian()]);
  d = engine;
  const tar = path.join(ws.dir, 'base.tar');
  assert.equal((await ws.kiln(['save', '-o', tar, 'debian-slim:bookworm'])).code, 0);
  assert.equal(d.docker(['load', '-i', tar]).code, 0);
  server = createServer((req, res) => {
    try {
      res.end(readFileSync(path.join(ws.dir, 'served', path.basename(req.url ?? ''))));
    } catch {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});
after(async () => {
  await d?.stop();
  server?.close();
  gitd?.kill();
  rmSync(ws.dir, { recursive: true, force: true });
});

const DOCKERFILE = 'FROM debian-slim:bookworm\nCOPY sub /s/\nCOPY top.txt /\nRUN cat /s/f > /copied\n';

function makeContext(): string {
  const ctx = ws.context('ctx', { 'sub/f': 'hello\n', 'top.txt': 'top\n', Dockerfile: DOCKERFILE });
  mkdirSync(path.join(ws.dir, 'served'), { recursive: true });
  assert.equal(spawnSync('tar', ['-czf', path.join(ws.dir, 'served', 'ctx.tgz'), '-C', ctx, '.']).status, 0);
  writeFileSync(
    path.join(ws.dir, 'served', 'Dockerfile.txt'),
    'FROM debian-slim:bookworm\nRUN echo only-a-dockerfile > /x\n',
  );
  return ctx;
}

function dockerAsync(args: string[], input?: Buffer): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/docker', args, { env: d!.env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-6000)));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    child.stdin!.end(input ?? '');
  });
}

/** The image's files outside the base, as "path type mode uid:gid size": for comparing builders. */
function filesOf(img: Awaited<ReturnType<typeof readSavedImage>>): string[] {
  return img.layers
    .slice(1)
    .flat()
    .filter((e) => !/^\/(etc|var|tmp)\b/.test(e.path))
    .map((e) => `${e.path} ${e.type} ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.size} ${e.sha256?.slice(0, 12) ?? ''}`)
    .sort();
}

describe('remote and streamed build contexts', { skip }, () => {
  test('- (a tar on stdin, or a Dockerfile alone) and an http URL (tarball, Dockerfile): the files BuildKit gives', async () => {
    makeContext();
    const tgz = readFileSync(path.join(ws.dir, 'served', 'ctx.tgz'));
    const cases: [string, string[], Buffer | undefined][] = [
      ['stdin-tar', ['-'], tgz],
      ['url-tar', [`${base}/ctx.tgz`], undefined],
      ['stdin-dockerfile', ['-'], readFileSync(path.join(ws.dir, 'served', 'Dockerfile.txt'))],
      ['url-dockerfile', [`${base}/Dockerfile.txt`], undefined],
    ];
    for (const [name, args, input] of cases) {
      const tag = `remote-${name}:1`;
      const k = await runKiln(['build', '-q', '-t', tag, ...args], { root: ws.root, input });
      assert.equal(k.code, 0, `${name}: ${k.stderr}`);
      // Not spawnSync: the daemon fetches the URL from this process's HTTP server.
      const r = await dockerAsync(['build', '-q', '--network', 'host', '-t', tag, ...args], input);
      assert.equal(r.code, 0, `BuildKit ${name}: ${r.stderr}`);
      const refTar = path.join(ws.dir, `${name}.tar`);
      assert.equal(d!.docker(['save', '-o', refTar, tag]).code, 0);
      assert.deepEqual(filesOf(await savedImage(ws, tag)), filesOf(await readSavedImage(refTar)), name);
    }
    assert.equal(await ws.sh('remote-stdin-tar:1', 'cat /copied /top.txt'), 'hello\ntop\n');
    assert.equal(await ws.sh('remote-url-dockerfile:1', 'cat /x'), 'only-a-dockerfile\n');
    // -f names a file inside a fetched context.
    const f = await runKiln(['build', '-q', '-f', 'sub/../Dockerfile', `${base}/ctx.tgz`], { root: ws.root });
    assert.equal(f.code, 0, f.stderr);
    // Nothing fetched is left behind.
    const left = spawnSync('sh', ['-c', `ls ${path.join(ws.root, 'tmp')} | grep context || true`], {
      encoding: 'utf8',
    }).stdout;
    assert.equal(left, '');
  });

  test('a git repository (git://…#ref:subdir) is a context; errors name what failed', async () => {
    const repo = path.join(ws.dir, 'repo');
    mkdirSync(path.join(repo, 'app'), { recursive: true });
    writeFileSync(path.join(repo, 'app', 'Dockerfile'), 'FROM debian-slim:bookworm\nCOPY . /src/\n');
    writeFileSync(path.join(repo, 'app', 'main.txt'), 'v1\n');
    const git = (...a: string[]) =>
      assert.equal(
        spawnSync('git', a, {
          cwd: repo,
          env: {
            ...process.env,
            GIT_AUTHOR_NAME: 't',
            GIT_AUTHOR_EMAIL: 't@e',
            GIT_COMMITTER_NAME: 't',
            GIT_COMMITTER_EMAIL: 't@e',
          },
        }).status,
        0,
        a.join(' '),
      );
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-q', '-m', 'one');
    git('tag', 'v1');
    const served = path.join(ws.dir, 'git');
    mkdirSync(served);
    assert.equal(spawnSync('git', ['clone', '-q', '--bare', repo, path.join(served, 'repo.git')]).status, 0);
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    gitd = spawn(
      'git',
      [
        'daemon',
        '--reuseaddr',
        '--export-all',
        `--base-path=${served}`,
        '--listen=127.0.0.1',
        `--port=${port}`,
        served,
      ],
      { stdio: 'ignore' },
    );
    const url = `git://127.0.0.1:${port}/repo.git`;
    for (let i = 0; i < 50 && spawnSync('git', ['ls-remote', url], { stdio: 'ignore' }).status !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    const r = await runKiln(['build', '-q', '-t', 'remote-git:1', `${url}#v1:app`], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      await ws.sh('remote-git:1', 'ls -a /src; cat /src/main.txt'),
      '.\n..\nDockerfile\nmain.txt\nv1\n',
      'the subdir, without .git',
    );
    const bad = await runKiln(['build', '-q', `${url}#nope`], { root: ws.root });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /#nope: git fetch failed/);
    const both = await runKiln(['build', '-f', '-', '-'], { root: ws.root });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /stdin cannot be both the build context and the Dockerfile/);
  });
});
