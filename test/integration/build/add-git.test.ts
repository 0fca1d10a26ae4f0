/**
 * ADD of a git repository, served on 127.0.0.1 by a real `git daemon` the test starts: a tag, a
 * branch, a commit id, a subdir, --keep-git-dir, --checksum (the commit), modes and symlinks kept,
 * owner 0:0, every mtime the commit's time; errors name the ref and the line.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, symlinkSync, chmodSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { savedImage, Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

function gitUnavailable(): string | undefined {
  if (spawnSync('git', ['--version']).status !== 0) return 'git is not installed (apt-get install git)';
  if (spawnSync('git', ['daemon', '-h']).status === null) return 'git daemon is not available';
  return undefined;
}

const skip = needs(basesUnavailable(), gitUnavailable());
const ws = new Workspace('kiln-addgit-');
let daemon: ChildProcess | undefined;
let url = '';
const commits: Record<string, string> = {};
const COMMIT_TIME = 1600000000;

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@e',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@e',
      GIT_AUTHOR_DATE: `@${COMMIT_TIME} +0000`,
      GIT_COMMITTER_DATE: `@${COMMIT_TIME} +0000`,
    },
  });
  assert.equal(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

before(async () => {
  if (skip) return;
  const work = path.join(ws.dir, 'src-repo');
  mkdirSync(path.join(work, 'sub'), { recursive: true });
  git(work, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(work, 'README'), 'version one\n');
  writeFileSync(path.join(work, 'sub', 'tool.sh'), '#!/bin/sh\necho tool\n');
  chmodSync(path.join(work, 'sub', 'tool.sh'), 0o755);
  symlinkSync('sub/tool.sh', path.join(work, 'link'));
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'one');
  git(work, 'tag', 'v1');
  commits.v1 = git(work, 'rev-parse', 'HEAD');
  writeFileSync(path.join(work, 'README'), 'version two\n');
  git(work, 'commit', '-q', '-am', 'two');
  commits.main = git(work, 'rev-parse', 'HEAD');
  const served = path.join(ws.dir, 'served');
  mkdirSync(served);
  git(ws.dir, 'clone', '-q', '--bare', work, path.join(served, 'repo.git'));
  const port = await freePort();
  daemon = spawn(
    'git',
    ['daemon', '--reuseaddr', '--export-all', `--base-path=${served}`, '--listen=127.0.0.1', `--port=${port}`, served],
    { stdio: 'ignore' },
  );
  // Ready when it answers ls-remote.
  url = `git://127.0.0.1:${port}/repo.git`;
  for (let i = 0; i < 50; i++) {
    if (spawnSync('git', ['ls-remote', url], { stdio: 'ignore' }).status === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await ws.importDebian();
});
after(() => {
  daemon?.kill();
  rmSync(ws.dir, { recursive: true, force: true });
});

describe('ADD <git repository>', { skip }, () => {
  test('a tag, the default branch, a commit, a subdir and --keep-git-dir; modes, links, owner and mtimes', async () => {
    const ctx = ws.context('add-git', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        `ADD ${url}#v1 /tagged`,
        `ADD ${url} /head/`,
        `ADD --checksum=${commits.v1} ${url}#${commits.v1}:sub /subdir`,
        `ADD --keep-git-dir=true ${url}#main /withgit`,
        '',
      ].join('\n'),
    });
    // Under a umask of 077, git would check out 0600/0700: the checkout runs under BuildKit's 022.
    const old = process.umask(0o077);
    try {
      await ws.build(ctx, 'addgit:1');
    } finally {
      process.umask(old);
    }
    const img = await savedImage(ws, 'addgit:1');
    const e = (p: string) => {
      const x = img.fs.get(p);
      assert.ok(x, `${p} is in the image`);
      return x;
    };
    assert.equal(
      await ws.sh('addgit:1', 'cat /tagged/README /head/README /withgit/README'),
      'version one\nversion two\nversion two\n',
    );
    const tool = e('/tagged/sub/tool.sh');
    assert.equal(tool.mode & 0o777, 0o755, 'the executable bit survives');
    assert.deepEqual([tool.uid, tool.gid], [0, 0]);
    assert.equal(tool.mtime, COMMIT_TIME, 'mtime is the commit time');
    assert.equal(e('/tagged/README').mode & 0o777, 0o644);
    assert.equal(e('/tagged/sub').mode & 0o777, 0o755, "directories 0755 whatever kiln's umask");
    const link = e('/tagged/link');
    assert.equal(link.type, 'symlink');
    assert.equal(link.linkname, 'sub/tool.sh');
    assert.equal(img.fs.get('/tagged/.git'), undefined, 'no .git without --keep-git-dir');
    assert.ok(e('/subdir/tool.sh'), "the subdir's content");
    assert.equal(img.fs.get('/subdir/README'), undefined);
    assert.equal(e('/withgit/.git').type, 'directory');
    assert.equal(await ws.sh('addgit:1', 'cat /withgit/.git/HEAD'), `${commits.main}\n`);
    const hist = (img.config.history ?? []).map((h) => h.created_by);
    assert.ok(hist.includes(`ADD ${url}#v1 /tagged # buildkit`), hist.join('\n'));
  });

  test('the same commit gives the same layer; an unknown ref, a wrong --checksum and a missing subdir are errors naming the line', async () => {
    const df = `FROM debian-slim:bookworm\nADD ${url}#v1 /src\n`;
    await ws.build(ws.context('git-same-a', { Dockerfile: df }), 'addgit:a', ['--no-cache']);
    // A second later: the directory the copy makes (/src) takes the commit's time, not the clock's.
    await new Promise((r) => setTimeout(r, 1100));
    await ws.build(ws.context('git-same-b', { Dockerfile: df }), 'addgit:b', ['--no-cache']);
    const layer = async (t: string) => (await ws.inspect(t)).RootFS.Layers.at(-1);
    assert.equal(await layer('addgit:a'), await layer('addgit:b'), 'same layer from two checkouts of one commit');

    const cases: [string, RegExp][] = [
      [
        `ADD ${url}#no-such-branch /x`,
        /Dockerfile:3.*ADD git:\/\/127\.0\.0\.1:\d+\/repo\.git#no-such-branch: git fetch failed/,
      ],
      [
        `ADD --checksum=${commits.main} ${url}#v1 /x`,
        new RegExp(`Dockerfile:3.*the checkout is commit ${commits.v1}, not --checksum ${commits.main}`),
      ],
      [`ADD ${url}#v1:nope /x`, /Dockerfile:3.*no directory "nope" in the repository/],
    ];
    for (const [line, re] of cases) {
      const r = await ws.kiln([
        'build',
        ws.context(`git-bad-${cases.findIndex((c) => c[0] === line)}`, {
          Dockerfile: `FROM debian-slim:bookworm\nRUN true\n${line}\n`,
        }),
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
    }
  });
});
