/**
 * Reproducible images: the same sources built on two empty stores (the base image loaded from one
 * file, as a pinned digest would give it) with SOURCE_DATE_EPOCH — from the environment on one,
 * from --source-date-epoch on the other — give the same image digest, RUN steps included. The two
 * builds use two copies of the context with different file mtimes (two checkouts), at different
 * times.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { runKiln } from '../../helpers/kiln.js';
import { parseJsonProgress } from './cache-helpers.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-repro-'));
after(() => rmSync(work, { recursive: true, force: true }));

const EPOCH = 1700000000;

const DOCKERFILE = [
  'FROM debian-slim:bookworm AS build',
  'ARG SOURCE_DATE_EPOCH',
  'WORKDIR /src',
  'COPY app/ ./',
  // Files, directories, symlinks, hard links, modes, a file older than the epoch, one in the future.
  'RUN mkdir -p /out/bin /out/share/doc && cp -r /src/. /out/share/ && echo "#!/bin/sh" > /out/bin/run && chmod 755 /out/bin/run \\',
  '    && ln -s ../share/main.txt /out/bin/main && ln /out/bin/run /out/bin/run-again && touch -d @1 /out/old && touch -d "2099-01-01" /out/future \\',
  '    && mkdir -m 700 /out/private && echo "built at $(date -u -d @$SOURCE_DATE_EPOCH +%F)" > /out/share/doc/stamp',
  'FROM debian-slim:bookworm AS side',
  'RUN mkdir /side && echo side > /side/f && chmod 600 /side/f',
  'FROM debian-slim:bookworm',
  'ARG SOURCE_DATE_EPOCH',
  'COPY --from=build /out /opt/app',
  'COPY --from=side /side /opt/side',
  // Changes to the base: an existing directory (/etc), a deleted file (a whiteout), a new user
  // (/etc/shadow holds the day of the change: shadow takes it from SOURCE_DATE_EPOCH).
  'RUN echo extra >> /etc/motd && rm -f /etc/issue.net && useradd -m -u 1234 app && mkdir -p /var/lib/app && chown app /var/lib/app',
  'COPY --chown=app:app --chmod=640 config.ini /etc/app/config.ini',
  'ENV APP_HOME=/opt/app',
  'LABEL org.opencontainers.image.title=repro',
  'USER app',
  'WORKDIR /var/lib/app',
  'CMD ["/opt/app/bin/run"]',
].join('\n');

describe('reproducible images', { skip }, () => {
  const baseTar = path.join(work, 'base.tar');
  const ctxA = path.join(work, 'ctx-a');
  const ctxB = path.join(work, 'ctx-b');
  before(async () => {
    // The base, as one file both stores load (a base pinned by digest).
    const seed = path.join(work, 'seed');
    let r = await runKiln(
      ['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm', '--change', 'CMD ["bash"]'],
      { root: seed },
    );
    assert.equal(r.code, 0, r.stderr);
    r = await runKiln(['save', '-o', baseTar, 'debian-slim:bookworm'], { root: seed });
    assert.equal(r.code, 0, r.stderr);
    mkdirSync(path.join(ctxA, 'app', 'lib'), { recursive: true });
    writeFileSync(path.join(ctxA, 'Dockerfile'), DOCKERFILE);
    writeFileSync(path.join(ctxA, 'app', 'main.txt'), 'main\n');
    writeFileSync(path.join(ctxA, 'app', 'lib', 'util.txt'), 'util\n');
    writeFileSync(path.join(ctxA, 'config.ini'), '[app]\nx=1\n');
    // Checkout B: same content, other mtimes (newer than the epoch on both sides: clamped).
    cpSync(ctxA, ctxB, { recursive: true });
    const later = new Date(Date.now() + 7200_000);
    for (const f of ['Dockerfile', 'app/main.txt', 'app/lib/util.txt', 'config.ini'])
      utimesSync(path.join(ctxB, f), later, later);
  });

  async function buildOn(name: string, ctx: string, extra: string[], env: NodeJS.ProcessEnv) {
    const root = path.join(work, name);
    const l = await runKiln(['load', '-i', baseTar], { root });
    assert.equal(l.code, 0, l.stderr);
    const r = await runKiln(['build', '--progress', 'json', '-t', 'repro:1', ...extra, ctx], { root, env });
    assert.equal(r.code, 0, r.stderr);
    const done = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((x) => JSON.parse(x) as { type: string; manifestDigest?: string })
      .find((e) => e.type === 'done')!;
    const built = parseJsonProgress(r.stdout, r.stderr, 'repro:1');
    // An empty store: every RUN runs (the final stage's `ARG SOURCE_DATE_EPOCH` may reuse the first
    // stage's: same base, same step).
    assert.deepEqual(
      built.steps.filter((s) => s.cached && !s.text.startsWith('ARG')),
      [],
      'an empty store: every step runs',
    );
    return { root, id: built.id, manifest: done.manifestDigest! };
  }

  test('SOURCE_DATE_EPOCH: two empty stores give the same image digest', async () => {
    const a = await buildOn('store-a', ctxA, [], { SOURCE_DATE_EPOCH: String(EPOCH) });
    await new Promise((r) => setTimeout(r, 1100)); // another second on the clock
    const b = await buildOn('store-b', ctxB, ['--source-date-epoch', String(EPOCH)], { SOURCE_DATE_EPOCH: '' });
    assert.equal(b.id, a.id, 'same config digest');
    assert.equal(b.manifest, a.manifest, 'same manifest digest');

    const inspect = JSON.parse((await runKiln(['inspect', 'repro:1'], { root: a.root })).stdout) as {
      Created: string;
      History?: { created?: string }[];
    }[];
    assert.equal(inspect[0]!.Created, new Date(EPOCH * 1000).toISOString());
    const run = await runKiln(
      [
        'run',
        '-u',
        '0',
        '--entrypoint',
        '',
        'repro:1',
        'sh',
        '-c',
        'cat /opt/app/share/doc/stamp; grep ^app: /etc/shadow | cut -d: -f3; stat -c %Y /opt/app/old /opt/app/future /etc/motd',
      ],
      { root: a.root },
    );
    assert.equal(run.code, 0, run.stderr);
    const [stamp, day, old, future, motd] = run.stdout.trim().split('\n');
    assert.equal(stamp, 'built at 2023-11-14', 'ARG SOURCE_DATE_EPOCH reaches RUN');
    assert.equal(Number(day), Math.floor(EPOCH / 86400), "useradd's day is the epoch's");
    assert.equal(old, '1', 'an mtime older than the epoch is kept');
    assert.equal(future, String(EPOCH), 'a newer one is clamped');
    assert.equal(motd, String(EPOCH));
  });

  test('without SOURCE_DATE_EPOCH the images differ (the test above can fail)', async () => {
    const a = await buildOn('store-c', ctxA, [], { SOURCE_DATE_EPOCH: '' });
    await new Promise((r) => setTimeout(r, 1100));
    const b = await buildOn('store-d', ctxA, [], { SOURCE_DATE_EPOCH: '' });
    assert.notEqual(b.id, a.id);
  });
});
