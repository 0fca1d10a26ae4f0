/**
 * `kiln build --verify-reproducible` on real builds: a seed-like multi-stage build (a builder that
 * compiles and stamps with SOURCE_DATE_EPOCH, COPY --from, a user added) reproduces and is tagged;
 * `RUN date > /built` does not, and the report names /built, its layer and its step, the kind of
 * difference and a timestamp as the likely cause; a random file name is reported as missing.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-verify-repro-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

describe('build --verify-reproducible', { skip }, () => {
  before(() => ws.importDebian());

  test('a seed-like multi-stage build reproduces; the image is tagged; no scratch state is left', async () => {
    const ctx = ws.context('seed', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        'ARG SOURCE_DATE_EPOCH',
        'WORKDIR /src',
        'COPY app/ ./',
        'RUN mkdir -p /out/bin && cp main.sh /out/bin/app && chmod 755 /out/bin/app \\',
        '    && echo "built $(date -u -d @$SOURCE_DATE_EPOCH +%F)" > /out/stamp && ln -s bin/app /out/run',
        'FROM debian-slim:bookworm',
        'ARG SOURCE_DATE_EPOCH',
        'RUN useradd -m app',
        'COPY --from=builder /out /opt/app',
        'USER app',
        'CMD ["/opt/app/run"]',
      ].join('\n'),
      'app/main.sh': '#!/bin/sh\necho hello\n',
    });
    const r = await ws.kiln(['build', '--progress', 'plain', '--verify-reproducible', '-t', 'seed:1', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /SOURCE_DATE_EPOCH=\d+ \(none was given: chosen now\)/);
    assert.match(r.stderr, /reproducible: the two builds gave the same image/);
    const m = /first: +manifest (sha256:\w+), image (sha256:\w+)\n +second: +manifest (sha256:\w+)/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.equal(m[1], m[3]);
    assert.equal(r.stdout.trim(), m[2], 'stdout: the image id, as a build');
    assert.equal((await ws.inspect('seed:1')).Id, m[2], 'tagged in the store');
    assert.equal(
      await ws.sh('seed:1', '/opt/app/run && cat /opt/app/stamp'),
      `hello\nbuilt ${new Date().toISOString().slice(0, 10)}\n`,
    );
    const tmp = path.join(ws.root, 'tmp');
    assert.deepEqual(existsSync(tmp) ? readdirSync(tmp).filter((n) => n.startsWith('verify-')) : [], []);
  });

  test("the user's SOURCE_DATE_EPOCH is the one used", async () => {
    const ctx = ws.context('epoch', {
      Dockerfile: ['FROM debian-slim:bookworm', 'ARG SOURCE_DATE_EPOCH', 'RUN echo $SOURCE_DATE_EPOCH > /epoch'].join(
        '\n',
      ),
    });
    const r = await ws.kiln([
      'build',
      '--progress',
      'plain',
      '--verify-reproducible',
      '--source-date-epoch',
      '1700000000',
      '-t',
      'epoch:1',
      ctx,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /SOURCE_DATE_EPOCH=1700000000:/);
    assert.equal(await ws.sh('epoch:1', 'cat /epoch'), '1700000000\n');
    assert.equal((await ws.inspect('epoch:1')).Config.Env !== undefined, true);
  });

  test('RUN date > /built is reported with the file, its layer and step, the kind and a likely cause; exit 1', async () => {
    const ctx = ws.context('date', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN echo same > /same',
        // Nanoseconds: two builds in the same second would otherwise write the same date.
        'RUN date +%FT%T.%N > /built',
        'RUN echo after > /after',
      ].join('\n'),
    });
    const r = await ws.kiln(['build', '--progress', 'plain', '--verify-reproducible', '-t', 'date:1', ctx]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Dockerfile:3:1: the build is not reproducible/);
    assert.match(
      r.stderr,
      /first difference: \/built \(content\) in layer 3 \(sha256:\w+ vs sha256:\w+\), made by \S+Dockerfile:3\n +RUN date \+%FT%T\.%N > \/built/,
    );
    assert.match(r.stderr, /likely cause \(a heuristic guess\): a timestamp written by a tool/);
    assert.equal((await ws.kiln(['inspect', 'date:1'])).code, 1, 'not tagged');
  });

  test('a random file name is reported as missing, with its step', async () => {
    const ctx = ws.context('random', {
      Dockerfile: ['FROM debian-slim:bookworm', 'RUN mkdir /data && mktemp /data/tmp.XXXXXXXX'].join('\n'),
    });
    const r = await ws.kiln(['build', '--progress', 'plain', '--verify-reproducible', '-t', 'random:1', ctx]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /first difference: \/data\/tmp\.\w{8} \(missing\) in layer 2 .*made by \S+Dockerfile:2/);
    assert.match(r.stderr, /likely cause \(a heuristic guess\): a random name: the other build has \/data\/tmp\.\w{8}/);
  });

  test('an mtime a tool set (touch -d in the past) that differs is reported as mtime', async () => {
    const ctx = ws.context('mtime', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN echo x > /f && touch -d "@$(( $(date +%s%N) % 1000000 ))" /f',
      ].join('\n'),
    });
    const r = await ws.kiln([
      'build',
      '--progress',
      'plain',
      '--verify-reproducible',
      '--source-date-epoch',
      '1700000000',
      '-t',
      'mtime:1',
      ctx,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /first difference: \/f \(mtime\)/);
    assert.match(r.stderr, /first build: +mtime \d+\n +second build: +mtime \d+/);
  });

  test('with an output other than the store, or a cache flag: a usage error', async () => {
    const ctx = ws.context('usage', { Dockerfile: 'FROM debian-slim:bookworm\n' });
    const r = await ws.kiln(['build', '--verify-reproducible', '-o', 'type=local,dest=/tmp/x', ctx]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--verify-reproducible builds into the store/);
  });
});
