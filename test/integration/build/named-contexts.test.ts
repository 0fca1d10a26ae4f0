/**
 * `kiln build --build-context NAME=VALUE` as BuildKit documents it (docs.docker.com/reference/cli/
 * docker/buildx/build/#build-context; Debian's docker 20.10 has no --build-context to compare
 * with): a directory, `docker-image://REF` or `oci-layout://PATH[:TAG|@DIGEST]`, reached by
 * `FROM NAME`, `COPY --from=NAME` and `RUN --mount from=NAME`; a name that is an image's
 * (`alpine`, in its familiar form without ":latest") replaces that image, a name that is a stage's
 * replaces the stage ("you can use --build-context to override a stage", ibid.).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { savedImage, Workspace } from './util.js';

const skip = basesUnavailable();
const ws = new Workspace('kiln-named-ctx-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

describe('named build contexts (--build-context)', { skip }, () => {
  before(() => ws.importDebian());

  test('a directory, docker-image:// and oci-layout:// in FROM, COPY --from and RUN --mount from=; an image name and a stage replaced', async () => {
    const extra = ws.context('extra', { 'sub/e.txt': 'e\n', 'skip.log': 'ignored\n', '.dockerignore': '*.log\n' });
    // An OCI layout directory with the Debian base, tagged "v1" (kiln save --format oci, unpacked).
    const layout = path.join(ws.dir, 'layout');
    mkdirSync(layout);
    const saved = await ws.kiln(['save', '--format', 'oci', '-o', `${layout}.tar`, 'debian-slim:bookworm']);
    assert.equal(saved.code, 0, saved.stderr);
    assert.equal(spawnSync('tar', ['-xf', `${layout}.tar`, '-C', layout]).status, 0);
    const ctx = ws.context('main', {
      Dockerfile: [
        // Never built: the stage is replaced by the context of its name.
        'FROM debian-slim:bookworm AS deps',
        'RUN exit 1',
        // `debian` is no image in this store: the context of that name stands for it.
        'FROM debian:latest AS base',
        'COPY --from=extra / /e/',
        'COPY --from=deps /sub /d/',
        'RUN --mount=from=extra,target=/m cat /m/sub/e.txt > /mounted && ls -a /m > /mlist',
        'FROM extra AS fromdir',
        'FROM base',
        'COPY --from=fromdir /sub/e.txt /fd.txt',
        'COPY --from=layout /etc/os-release /os-release',
        '',
      ].join('\n'),
    });
    const r = await ws.kiln([
      'build',
      '-q',
      '-t',
      'named:1',
      '--build-context',
      'debian=docker-image://debian-slim:bookworm',
      '--build-context',
      `extra=${extra}`,
      '--build-context',
      `deps=${extra}`,
      '--build-context',
      `layout=oci-layout://${layout}:bookworm`,
      ctx,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const img = await savedImage(ws, 'named:1');
    const e = img.fs.get('/e/sub/e.txt');
    assert.ok(e, 'COPY --from=<directory context>');
    assert.deepEqual([e.uid, e.gid], [0, 0], "files of a directory context are root's, as the main context's");
    assert.equal(img.fs.get('/e/skip.log'), undefined, "the context directory's own .dockerignore applies");
    assert.ok(img.fs.get('/d/e.txt'), 'the stage "deps" was replaced by the context (its RUN exit 1 never ran)');
    assert.equal(
      await ws.sh('named:1', 'cat /mounted /fd.txt; grep -c . /mlist; head -1 /os-release'),
      'e\ne\n4\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    );
    // Same directory, same layer: the steps after it stay cached.
    const again = await ws.kiln([
      'build',
      '--progress',
      'plain',
      '-t',
      'named:2',
      '--build-context',
      'debian=docker-image://debian-slim:bookworm',
      '--build-context',
      `extra=${extra}`,
      '--build-context',
      `deps=${extra}`,
      '--build-context',
      `layout=oci-layout://${layout}:bookworm`,
      ctx,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /#(\d+) \[base 1\/3\] COPY --from=extra[\s\S]*#\1 CACHED/, again.stderr);
    assert.equal((await ws.inspect('named:2')).Id, (await ws.inspect('named:1')).Id);
  });

  test('ONBUILD COPY --from=NAME of a base image and of a base stage see the named context, over a stage of that name', async () => {
    const extra = ws.context('ob-extra', { f: 'from the context\n' });
    const base = ws.context('ob-base', {
      Dockerfile: 'FROM debian-slim:bookworm\nONBUILD COPY --from=extra /f /from-image-trigger\n',
    });
    await ws.build(base, 'onbuild-base');
    const app = ws.context('ob-app', {
      Dockerfile: [
        // A stage named as the context: the context wins, as for a --from the planner sees.
        'FROM debian-slim:bookworm AS extra',
        'RUN echo from the stage > /f',
        'FROM debian-slim:bookworm AS b',
        'ONBUILD COPY --from=extra /f /from-stage-trigger',
        'FROM b AS withstage',
        'FROM onbuild-base',
        'COPY --from=withstage /from-stage-trigger /',
        '',
      ].join('\n'),
    });
    await ws.build(app, 'onbuild-app', ['--build-context', `extra=${extra}`]);
    assert.equal(
      await ws.sh('onbuild-app', 'cat /from-image-trigger /from-stage-trigger'),
      'from the context\nfrom the context\n',
    );
  });

  test('errors: a name that is no reference, a missing directory, a layout without the tag, a scheme kiln cannot fetch', async () => {
    const ctx = ws.context('err', { Dockerfile: 'FROM debian-slim:bookworm\nCOPY --from=other / /o/\n' });
    const cases: [string, number, RegExp][] = [
      ['Bad=.', 2, /invalid --build-context name "Bad"/],
      ['noequals', 2, /invalid --build-context "noequals"/],
      [`other=${path.join(ws.dir, 'nope')}`, 1, /--build-context other: .*nope is not a directory/],
      [`other=oci-layout://${ws.dir}`, 1, /is not an OCI image layout/],
      ['other=ftp://example.com/x', 2, /--build-context other=ftp:\/\/example.com\/x: not a context kiln can fetch/],
    ];
    for (const [spec, code, message] of cases) {
      const r = await ws.kiln(['build', '-q', '--build-context', spec, ctx]);
      assert.equal(r.code, code, `${spec}: ${r.stderr}`);
      assert.match(r.stderr, message, spec);
    }
    writeFileSync(path.join(ws.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const r = await ws.kiln(['build', '-q', '--build-context', `other=oci-layout://${ws.dir}:v9`, ctx]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no image tagged "v9" in the OCI layout/);
  });
});
