import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGitSource } from '../../../src/engine/add-git.js';

test("git sources: which ADD sources are repositories (BuildKit's rule) and their #ref:subdir", () => {
  assert.deepEqual(parseGitSource('https://github.com/moby/buildkit.git#v0.10.1'), {
    remote: 'https://github.com/moby/buildkit.git',
    ref: 'v0.10.1',
    subdir: undefined,
  });
  assert.deepEqual(parseGitSource('https://example.com/r.git#main:docs/site'), {
    remote: 'https://example.com/r.git',
    ref: 'main',
    subdir: 'docs/site',
  });
  assert.deepEqual(parseGitSource('https://example.com/r.git#:sub'), {
    remote: 'https://example.com/r.git',
    ref: undefined,
    subdir: 'sub',
  });
  assert.deepEqual(parseGitSource('git@github.com:moby/buildkit.git'), {
    remote: 'git@github.com:moby/buildkit.git',
    ref: undefined,
    subdir: undefined,
  });
  assert.deepEqual(parseGitSource('git://127.0.0.1:9418/repo#abc1234'), {
    remote: 'git://127.0.0.1:9418/repo',
    ref: 'abc1234',
    subdir: undefined,
  });
  assert.equal(parseGitSource('ssh://git@host/repo.git')?.remote, 'ssh://git@host/repo.git');
  // Not repositories: plain downloads, local paths.
  for (const s of [
    'https://example.com/file.tar.gz',
    'https://example.com/repo',
    'http://example.com/a.git.txt',
    'src/',
    'app.git',
    '/abs/x.git',
    'C:/x',
  ])
    assert.equal(parseGitSource(s), undefined, s);
});
