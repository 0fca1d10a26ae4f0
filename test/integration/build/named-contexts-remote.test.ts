/**
 * `--build-context NAME=https://…/x.tar.gz` and `NAME=git-url#ref:subdir`, against BuildKit's
 * documented behaviour (Debian's BuildKit 0.8 has no --build-context; the buildx reference,
 * "--build-context": "the value can be a local source directory, local OCI layout compliant
 * directory, container image (with docker-image:// prefix), Git or HTTP URL", and a URL or git
 * context is a directory of files for `COPY --from=NAME` and `FROM NAME`,
 * https://docs.docker.com/reference/cli/docker/buildx/build/#build-context). A tarball on a
 * loopback HTTP server and a repository served by `git daemon` on loopback.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';
import { Workspace } from './util.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-named-remote-');
let server: Server | undefined;
let gitd: ChildProcess | undefined;
let http = '';
let gitUrl = '';

const env = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@e',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@e',
};
const git = (cwd: string, ...a: string[]) =>
  assert.equal(spawnSync('git', a, { cwd, env }).status, 0, `git ${a.join(' ')}`);

after(() => {
  server?.close();
  gitd?.kill();
  rmSync(ws.dir, { recursive: true, force: true });
});

describe('--build-context with a URL or a git repository', { skip }, () => {
  before(async () => {
    await ws.importDebian();
    // A tarball of a directory, served over HTTP.
    const tree = ws.context('tree', { 'lib/a.txt': 'from the tarball\n', 'top.txt': 'top\n' });
    const served = path.join(ws.dir, 'served');
    mkdirSync(served);
    assert.equal(spawnSync('tar', ['-czf', path.join(served, 'deps.tar.gz'), '-C', tree, '.']).status, 0);
    writeFileSync(path.join(served, 'plain.txt'), 'not an archive\n');
    server = createServer((req, res) => {
      try {
        res.end(readFileSync(path.join(served, path.basename(req.url ?? ''))));
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    http = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    // A repository with a tag and a subdirectory, served by git daemon.
    const repo = ws.context('repo', { 'conf/app.conf': 'v1\n', README: 'r\n' });
    git(repo, 'init', '-q', '-b', 'main');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'one');
    git(repo, 'tag', 'v1');
    writeFileSync(path.join(repo, 'conf', 'app.conf'), 'v2\n');
    git(repo, 'commit', '-q', '-am', 'two');
    const bare = path.join(ws.dir, 'git');
    mkdirSync(bare);
    assert.equal(spawnSync('git', ['clone', '-q', '--bare', repo, path.join(bare, 'repo.git')]).status, 0);
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    gitd = spawn(
      'git',
      ['daemon', '--reuseaddr', '--export-all', `--base-path=${bare}`, '--listen=127.0.0.1', `--port=${port}`, bare],
      { stdio: 'ignore' },
    );
    gitUrl = `git://127.0.0.1:${port}/repo.git`;
    for (let i = 0; i < 50 && spawnSync('git', ['ls-remote', gitUrl], { stdio: 'ignore' }).status !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
  });

  test('COPY --from=NAME and FROM NAME read an https tarball (unpacked) and a git ref:subdir (without .git)', async () => {
    const ctx = ws.context('app', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'COPY --from=deps /lib/ /opt/deps/',
        'COPY --from=deps top.txt /opt/',
        'COPY --from=conf / /etc/app/',
        'FROM conf AS confimage',
        'FROM debian-slim:bookworm',
        'COPY --from=0 /opt /opt',
        'COPY --from=0 /etc/app /etc/app',
        'COPY --from=confimage / /from-stage/',
        '',
      ].join('\n'),
    });
    const r = await ws.kiln([
      'build',
      '-q',
      '-t',
      'named-remote:1',
      '--build-context',
      `deps=${http}/deps.tar.gz`,
      '--build-context',
      `conf=${gitUrl}#v1:conf`,
      ctx,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      await ws.sh(
        'named-remote:1',
        'cat /opt/deps/a.txt /opt/top.txt /etc/app/app.conf /from-stage/app.conf; ls -A /etc/app',
      ),
      'from the tarball\ntop\nv1\nv1\napp.conf\n',
    );
    // Another ref of the same repository: the content changed, so the COPY runs again.
    const again = await ws.kiln([
      'build',
      '-q',
      '-t',
      'named-remote:2',
      '--build-context',
      `deps=${http}/deps.tar.gz`,
      '--build-context',
      `conf=${gitUrl}#main:conf`,
      ctx,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await ws.sh('named-remote:2', 'cat /etc/app/app.conf'), 'v2\n');
  });

  test('a URL that is not an archive, a missing file and a missing ref are one-line errors naming the context', async () => {
    const ctx = ws.context('err', { Dockerfile: 'FROM debian-slim:bookworm\nCOPY --from=x / /x/\n' });
    const plain = await ws.kiln(['build', '-q', '--build-context', `x=${http}/plain.txt`, ctx]);
    assert.equal(plain.code, 1);
    assert.match(
      plain.stderr,
      /--build-context x=http:\/\/127\.0\.0\.1:\d+\/plain\.txt: the URL gives a file, not an archive/,
    );
    const missing = await ws.kiln(['build', '-q', '--build-context', `x=${http}/nope.tgz`, ctx]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--build-context x=.*nope\.tgz/);
    const ref = await ws.kiln(['build', '-q', '--build-context', `x=${gitUrl}#nope`, ctx]);
    assert.equal(ref.code, 1);
    assert.match(ref.stderr, /--build-context x=git:.*#nope: .*git fetch failed/);
  });
});
