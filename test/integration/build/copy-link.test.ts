/**
 * `COPY --link` with BuildKit's meaning, checked against BuildKit's documentation (Debian's
 * dockerd has BuildKit 0.8, whose Dockerfile frontend predates --link, and a newer frontend cannot
 * be fetched offline). The Dockerfile reference, "COPY --link":
 *   "your source files are copied into an empty destination directory. That directory is turned
 *    into a layer that is linked on top of your previous state" … "reuse already built layers in
 *    subsequent builds with --cache-from even if the previous layers have changed" … "When using
 *    --link the COPY/ADD commands are not allowed to read any files from the previous state. This
 *    means that if in previous state the destination directory was a path that contained a
 *    symlink, COPY/ADD can not follow it. In the final image the destination path created with
 *    --link will always be a path containing only directories."
 * (https://docs.docker.com/reference/dockerfile/#copy---link). So: the --link layer has the same
 * diff_id whatever the base, a rebuild after a base change takes it from the cache, the image is
 * the new base's layers plus that layer, and a symlink of the base on the destination path is not
 * followed.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { basesUnavailable } from '../../helpers/bases.js';
import { Workspace } from './util.js';
import { parseJsonProgress, type Built } from './cache-helpers.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-link-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

let builds = 0;
async function build(ctx: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<Built> {
  const tag = `link-test:${++builds}`;
  const r = await ws.kiln(['build', '--progress', 'json', '-t', tag, ...extra, ctx], { env });
  assert.equal(r.code, 0, `build failed: ${r.stderr}\n${r.stdout.split('\n').slice(-5).join('\n')}`);
  return parseJsonProgress(r.stdout, r.stderr, tag);
}
const step = (b: Built, prefix: string) => {
  const s = b.steps.find((x) => x.text.startsWith(prefix));
  assert.ok(s, `no step ${prefix} in ${b.steps.map((x) => x.text).join(' | ')}`);
  return s;
};

describe('COPY --link', { skip }, () => {
  let app = '';
  before(async () => {
    await ws.importDebian();
    // Two bases: base-b has a different file, and /srv and /mnt as symlinks to /tmp.
    const a = ws.context('base-a', { Dockerfile: 'FROM debian-slim:bookworm\nRUN echo a > /base.txt\n' });
    const b = ws.context('base-b', {
      Dockerfile:
        'FROM debian-slim:bookworm\nRUN echo b > /base.txt && rmdir /srv /mnt && ln -s /tmp /srv && ln -s /tmp /mnt\n',
    });
    await ws.build(a, 'base-a');
    await ws.build(b, 'base-b');
    app = ws.context('app', {
      Dockerfile: [
        'ARG BASE=base-a',
        'FROM $BASE',
        'COPY --link app/ /srv/app/',
        'COPY --link --chmod=0755 tool /usr/local/bin/tool',
        'COPY plain.txt /mnt/plain/',
        '',
      ].join('\n'),
      'app/x.txt': 'x\n',
      'app/sub/y.txt': 'y\n',
      tool: '#!/bin/sh\necho tool\n',
      'plain.txt': 'plain\n',
    });
  });

  test('a base change reuses the --link layers (cached, same diff_id), rebased on the new base', async () => {
    const first = await build(app, ['--build-arg', 'BASE=base-a']);
    const second = await build(app, ['--build-arg', 'BASE=base-b']);
    for (const s of ['COPY --link app/', 'COPY --link --chmod']) {
      assert.equal(step(first, s).cached, false, `${s}: the first build copies`);
      assert.equal(step(second, s).cached, true, `${s}: the base change does not copy again`);
    }
    assert.equal(step(second, 'COPY plain.txt').cached, false, 'a COPY without --link depends on the base');
    const ia = await ws.inspect(first.tag);
    const ib = await ws.inspect(second.tag);
    const base = await ws.inspect('base-b');
    const n = base.RootFS.Layers.length;
    // The image is the new base's layers, then the two reused --link layers, then the plain COPY.
    assert.deepEqual(ib.RootFS.Layers.slice(0, n), base.RootFS.Layers);
    assert.deepEqual(ib.RootFS.Layers.slice(n, n + 2), ia.RootFS.Layers.slice(n, n + 2));
    assert.equal(ib.RootFS.Layers.length, n + 3);
    assert.equal(ib.History.filter((h) => /^COPY /.test(h.created_by)).length, 3);
    // The files: base-b's /srv symlink is not followed (the layer's /srv is a directory).
    assert.equal(
      await ws.sh(
        second.tag,
        'cat /base.txt /srv/app/x.txt /srv/app/sub/y.txt; tool; test -d /srv -a ! -L /srv && echo dir; test -e /tmp/app || echo no-app',
      ),
      'b\nx\ny\ntool\ndir\nno-app\n',
    );
    assert.equal(await ws.sh(second.tag, 'cat /mnt/plain/plain.txt; ls /tmp'), 'plain\nplain\n');
  });

  test("the --link layer's content does not depend on the base; a COPY without --link follows the base's symlink", async () => {
    const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
    const a = await build(app, ['--no-cache', '--build-arg', 'BASE=base-a'], env);
    const b = await build(app, ['--no-cache', '--build-arg', 'BASE=base-b'], env);
    assert.equal(step(b, 'COPY --link app/').cached, false);
    assert.equal(step(a, 'COPY --link app/').layer, step(b, 'COPY --link app/').layer);
    assert.equal(step(a, 'COPY --link --chmod').layer, step(b, 'COPY --link --chmod').layer);
    // Without --link the destination is resolved in the image: base-b's /mnt leads to /tmp.
    assert.notEqual(step(a, 'COPY plain.txt').layer, step(b, 'COPY plain.txt').layer);
  });

  test('a --chown by name reads the image (its layer depends on it), a numeric one does not', async () => {
    const ctx = ws.context('chown', {
      Dockerfile: [
        'ARG BASE=base-a',
        'FROM $BASE',
        'COPY --link --chown=nobody:nogroup f /by-name/',
        'COPY --link --chown=1234:5678 f /by-id/',
        '',
      ].join('\n'),
      f: 'f\n',
    });
    await build(ctx, ['--build-arg', 'BASE=base-a']);
    const b = await build(ctx, ['--build-arg', 'BASE=base-b']);
    assert.equal(step(b, 'COPY --link --chown=nobody').cached, false);
    assert.equal(step(b, 'COPY --link --chown=1234').cached, true);
    assert.equal(
      await ws.sh(b.tag, 'stat -c "%u:%g %a" /by-name /by-name/f /by-id /by-id/f'),
      '65534:65534 755\n65534:65534 644\n1234:5678 755\n1234:5678 644\n',
    );
  });
});
