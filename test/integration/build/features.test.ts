/**
 * Build engine features as BuildKit has them: variables in RUN, stage inheritance, ONBUILD,
 * scratch, heredocs (RUN scripts and COPY files), history texts.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { basesUnavailable } from '../../helpers/bases.js';
import { savedImage, Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-features-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

describe('engine features', { skip }, () => {
  before(() => ws.importDebian());

  test('ARGs reach RUN but not the config; FROM <stage> inherits ENV/ARG; ONBUILD of a base stage runs first', async () => {
    const ctx = ws.context('vars', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS base',
        'ARG A=1',
        'ENV E=2',
        'ONBUILD RUN echo onbuild-ran > /onbuild.txt',
        'RUN test ! -e /onbuild.txt',
        'FROM base',
        'ARG B',
        'ENV E2=${E}x',
        'RUN echo "A=$A E=$E B=$B E2=$E2" > /vars.txt',
        'ENTRYPOINT ["cat"]',
      ].join('\n'),
    });
    await ws.build(ctx, 'vars:1', ['--build-arg', 'B=bee']);
    assert.equal(await ws.sh('vars:1', 'cat /vars.txt /onbuild.txt'), 'A=1 E=2 B=bee E2=2x\nonbuild-ran\n');
    const i = await ws.inspect('vars:1');
    const env = i.Config.Env as string[];
    assert.ok(env.includes('E=2') && env.includes('E2=2x'));
    assert.ok(!env.some((e) => /^(A|B)=/.test(e)), `ARG values stay out of the config: ${env.join(' ')}`);
    assert.equal(i.Config.OnBuild ?? null, null, 'triggers are cleared once run');
    assert.equal(i.Config.Cmd ?? null, null, 'ENTRYPOINT in the stage clears the inherited CMD');
    const hist = i.History.map((h) => h.created_by);
    assert.ok(!hist.some((h) => h.startsWith('ONBUILD')), 'ONBUILD has no history entry (BuildKit)');
    assert.ok(hist.includes('RUN |1 A=1 /bin/sh -c echo onbuild-ran > /onbuild.txt # buildkit'), hist.join('\n'));
    assert.ok(
      hist.includes('RUN |2 A=1 B=bee /bin/sh -c echo "A=$A E=$E B=$B E2=$E2" > /vars.txt # buildkit'),
      hist.join('\n'),
    );
    assert.ok(hist.includes('ENTRYPOINT ["cat"]'));
  });

  test('ONBUILD triggers of a base image run first in the stage built on it', async () => {
    const a = ws.context('onb-base', {
      Dockerfile:
        'FROM debian-slim:bookworm\nONBUILD COPY hello.txt /from-trigger.txt\nONBUILD RUN echo ran > /trigger-run.txt\n',
    });
    await ws.build(a, 'onb-base:1');
    const b = ws.context('onb-child', {
      Dockerfile: 'FROM onb-base:1\nRUN cat /from-trigger.txt /trigger-run.txt > /both.txt\n',
      'hello.txt': 'hello\n',
    });
    await ws.build(b, 'onb-child:1');
    assert.equal(await ws.sh('onb-child:1', 'cat /both.txt'), 'hello\nran\n');
    assert.equal((await ws.inspect('onb-child:1')).Config.OnBuild ?? null, null);
  });

  test('scratch: WorkingDir "/" and the default PATH, as BuildKit\'s empty image', async () => {
    const ctx = ws.context('scratch', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'x' });
    await ws.build(ctx, 'scratch:1');
    const i = await ws.inspect('scratch:1');
    assert.equal(i.Config.WorkingDir, '/');
    assert.deepEqual(i.Config.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  test('RUN heredocs: a #! body runs as a script file, a plain body through the shell; COPY heredocs expand unless quoted', async () => {
    const ctx = ws.context('heredoc', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'ARG NAME=world',
        'RUN <<EOF',
        '#!/bin/bash',
        'echo "script $0 ${BASH_VERSION:+bash}" > /script.txt',
        'EOF',
        'RUN <<EOF',
        'echo "plain $NAME" > /plain.txt',
        'EOF',
        'RUN cat <<A > /a.txt && cat <<-B > /b.txt',
        'first $NAME',
        'A',
        '\tsecond',
        '\tB',
        'COPY <<X <<"Y" /docs/',
        'hello $NAME',
        'X',
        'hello $NAME',
        'Y',
        'COPY --chmod=0600 --chown=1:2 <<Z /z.txt',
        'zz',
        'Z',
      ].join('\n'),
    });
    await ws.build(ctx, 'heredoc:1');
    const out = await ws.sh(
      'heredoc:1',
      'cat /script.txt /plain.txt /a.txt /b.txt /docs/X /docs/Y; stat -c "%a %u:%g %n" /docs/X /z.txt; cat /z.txt; test -e /dev/pipes && echo pipes-left || true',
    );
    assert.equal(
      out,
      'script /dev/pipes/EOF bash\nplain world\nfirst world\nsecond\nhello world\nhello $NAME\n644 0:0 /docs/X\n600 1:2 /z.txt\nzz\n',
    );
    const hist = (await ws.inspect('heredoc:1')).History.map((h) => h.created_by);
    assert.ok(hist.includes('COPY <<X <<Y /docs/ # buildkit'), hist.join('\n'));
    assert.ok(hist.includes('COPY --chown=1:2 --chmod=0600 <<Z /z.txt # buildkit'), hist.join('\n'));
    assert.ok(hist.includes('RUN |1 NAME=world /bin/sh -c /dev/pipes/EOF # buildkit'), hist.join('\n'));
    const img = await savedImage(ws, 'heredoc:1');
    const added = img.layers
      .slice(1)
      .flat()
      .map((e) => e.path);
    assert.ok(
      !added.some((p) => p === '/dev' || p.startsWith('/dev/')),
      `the script mount leaves nothing in a layer: ${added.join(' ')}`,
    );
  });
});
