/**
 * `kiln build --squash` and `--squash-all`, checked against podman's and buildah's documented
 * behaviour (neither is installed here; BuildKit declined the flag, docker/buildx#4):
 *   podman-build(1): "--squash: Squash all of the image's new layers into a single new layer; any
 *   preexisting layers are not squashed." "--squash-all: Squash all of the image's new layers,
 *   along with all inherited layers, into a single new layer."
 * (https://docs.podman.io/en/latest/markdown/podman-build.1.html). The files are those of the
 * unsquashed build (deletions of base files included: the merged layer keeps their whiteouts),
 * every history entry is kept, the squashed ones as empty layers, plus one for the merged layer.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { basesUnavailable } from '../../helpers/bases.js';
import { Workspace, savedImage } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-squash-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const nonEmpty = (h: { empty_layer?: boolean }[]) => h.filter((e) => !e.empty_layer).length;

describe('build --squash', { skip }, () => {
  let ctx = '';
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('app', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN echo a > /a && mkdir -p /d/old && echo o > /d/old/f',
        'RUN rm /etc/issue /a && echo a2 > /a2',
        'RUN rm -rf /d && mkdir /d && echo y > /d/y',
        'COPY f /f',
        'RUN rm -rf /usr/share/doc && mkdir /usr/share/doc && echo new > /usr/share/doc/only',
        'ENV X=1',
        'CMD ["cat", "/f"]',
        '',
      ].join('\n'),
      f: 'f\n',
    });
  });

  const files =
    'cat /a2 /d/y /f /usr/share/doc/only; ls /d; ls /usr/share/doc; test -e /etc/issue || echo no-issue; test -e /a || echo no-a';
  const expected = 'a2\ny\nf\nnew\ny\nonly\nno-issue\nno-a\n';

  test('--squash: the base image layers, then one layer with what the build added; the same files', async () => {
    await ws.build(ctx, 'plain');
    await ws.build(ctx, 'squashed', ['--squash']);
    const base = await ws.inspect('debian-slim:bookworm');
    const plain = await ws.inspect('plain');
    const sq = await ws.inspect('squashed');
    const n = base.RootFS.Layers.length;
    assert.equal(plain.RootFS.Layers.length, n + 5);
    assert.equal(sq.RootFS.Layers.length, n + 1);
    assert.deepEqual(sq.RootFS.Layers.slice(0, n), base.RootFS.Layers);
    // History: every entry kept (the squashed ones empty), one more for the merged layer.
    assert.equal(sq.History.length, plain.History.length + 1);
    assert.deepEqual(
      sq.History.slice(0, -1).map((h) => h.created_by),
      plain.History.map((h) => h.created_by),
    );
    assert.equal(nonEmpty(sq.History), sq.RootFS.Layers.length);
    assert.equal(sq.History.at(-1)!.created_by, 'kiln build --squash');
    assert.deepEqual(sq.Config.Env, plain.Config.Env);
    assert.deepEqual(sq.Config.Cmd, ['cat', '/f']);
    assert.equal(await ws.sh('squashed', files), expected);
    assert.equal(await ws.sh('plain', files), expected);
    // The merged layer: nothing a later step removed, a whiteout for the base's deleted file.
    const img = await savedImage(ws, 'squashed');
    const top = img.layers.at(-1)!.map((e) => e.path);
    assert.ok(top.includes('/etc/.wh.issue'), top.join(' '));
    assert.ok(!top.includes('/a') && !top.some((p) => p.startsWith('/d/old')), top.join(' '));
    for (const [p, e] of (await savedImage(ws, 'plain')).fs) assert.deepEqual(img.fs.get(p), e, p);
  });

  test('--squash-all: one layer, no whiteouts, the same files', async () => {
    await ws.build(ctx, 'squashed-all', ['--squash-all']);
    const sq = await ws.inspect('squashed-all');
    assert.equal(sq.RootFS.Layers.length, 1);
    assert.equal(nonEmpty(sq.History), 1);
    assert.equal(sq.History.at(-1)!.created_by, 'kiln build --squash-all');
    assert.equal(await ws.sh('squashed-all', files), expected);
    const img = await savedImage(ws, 'squashed-all');
    assert.ok(!img.layers[0]!.some((e) => e.path.includes('.wh.')));
    const plain = await savedImage(ws, 'plain');
    assert.equal(img.fs.size, plain.fs.size);
    for (const [p, e] of plain.fs) assert.deepEqual(img.fs.get(p), e, p);
  });

  test('--squash with --squash-all is a usage error', async () => {
    const r = await ws.kiln(['build', '--squash', '--squash-all', ctx]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--squash and --squash-all: use one/);
  });
});
