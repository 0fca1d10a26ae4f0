/**
 * The no-op memo through the CLI (cli/noop-memo.ts, docs/caching.md): a rebuild of nothing changed
 * is answered before the CLI bundle loads, with the full path's output and image; every change
 * the memo watches sends the next build through the full path (KILN_PROFILE=FILE tells which
 * path ran: a hit's profile has the phase "no-op memo hit", the full path's has its build phases).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-noop-memo-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

interface Run {
  hit: boolean;
  id: string;
  stdout: string;
  stderr: string;
}

let runs = 0;
/** `kiln build` of the context; whether the memo answered (the profile says), and what it printed. */
async function build(ctx: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const profile = path.join(ws.dir, `profile-${++runs}.jsonl`);
  const r = await ws.kiln(['build', '--progress', 'plain', '-t', 'memo:test', ...extra, ctx], {
    env: { KILN_PROFILE: profile, ...env },
  });
  assert.equal(r.code, 0, `build failed: ${r.stderr}`);
  const record = JSON.parse(readFileSync(profile, 'utf8')) as { phases: { name: string }[] };
  const names = record.phases.map((p) => p.name);
  const hit = names.includes('no-op memo hit');
  // A hit runs nothing of the CLI; the full path always reads the Dockerfile and the store.
  assert.equal(names.includes('store opened'), !hit, names.join(', '));
  return { hit, id: r.stdout.trim(), stdout: r.stdout, stderr: r.stderr };
}

/** Builds until the memo answers (a build that ran steps records none; its no-op rebuild does): the hit. */
async function settle(ctx: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  let last: Run | undefined;
  for (let i = 0; i < 3; i++) {
    const r = await build(ctx, extra, env);
    if (r.hit) {
      // Exactly what the full build that recorded the memo printed (when this call saw it).
      if (last) assert.deepEqual([r.id, r.stdout, r.stderr], [last.id, last.stdout, last.stderr]);
      return r;
    }
    last = r;
  }
  assert.fail('the memo never answered three identical builds');
}

/** Times in the plain progress (the only part of it that may differ between two no-op builds). */
const untimed = (s: string) => s.replace(/\d+\.\ds/g, 'T');

describe('no-op memo', { skip }, () => {
  let ctx: string;
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('ctx', {
      Dockerfile: 'FROM debian-slim:bookworm\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n',
      '.dockerignore': '*.log\n',
      'a.txt': 'hello\n',
      'ignored.log': 'x\n',
    });
    // Older than the builds by more than the memo's clock margin.
    await new Promise((r) => setTimeout(r, 50));
  });

  test('a rebuild of nothing changed is a memo hit: the full no-op output and image; -q and --iidfile too', async () => {
    const cold = await build(ctx);
    assert.equal(cold.hit, false);
    const full = await build(ctx);
    assert.equal(full.hit, false, 'the first no-op rebuild takes the full path (and records the memo)');
    assert.match(full.stderr, /#2 CACHED/);
    const hit = await build(ctx);
    assert.equal(hit.hit, true);
    assert.deepEqual([hit.id, hit.stdout, hit.stderr], [full.id, full.stdout, full.stderr]);
    assert.equal(hit.id, cold.id);
    // The full path, told not to use the memo, prints the same.
    const off = await build(ctx, [], { KILN_NO_MEMO: '1' });
    assert.equal(off.hit, false);
    assert.equal(off.stdout, hit.stdout);
    assert.equal(untimed(off.stderr), untimed(hit.stderr));
    // -q: its own memo (another argv), the id alone.
    const quiet = await settle(ctx, ['-q']);
    assert.equal(quiet.stdout, `${cold.id}\n`);
    assert.equal(quiet.stderr, '');
    const iid = path.join(ws.dir, 'iid');
    await settle(ctx, ['--iidfile', iid]);
    rmSync(iid);
    assert.equal((await build(ctx, ['--iidfile', iid])).hit, true);
    assert.equal(readFileSync(iid, 'utf8'), cold.id);
  });

  test('each change the memo watches sends the build through the full path, which gives its image', async () => {
    const before = await settle(ctx);
    const a = path.join(ctx, 'a.txt');

    // An ignored file touched: the context the build sees is the same.
    const now = new Date();
    utimesSync(path.join(ctx, 'ignored.log'), now, now);
    assert.equal((await build(ctx)).hit, true, 'an ignored file touched');

    // A file added, then removed: the image stays the same (a.txt alone is copied).
    writeFileSync(path.join(ctx, 'new.txt'), 'new\n');
    let r = await build(ctx);
    assert.equal(r.hit, false, 'a file added');
    assert.equal(r.id, before.id);
    await settle(ctx);
    unlinkSync(path.join(ctx, 'new.txt'));
    r = await build(ctx);
    assert.equal(r.hit, false, 'a file removed');
    assert.equal(r.id, before.id);
    await settle(ctx);

    // .dockerignore changed.
    writeFileSync(path.join(ctx, '.dockerignore'), '*.log\n*.tmp\n');
    r = await build(ctx);
    assert.equal(r.hit, false, '.dockerignore changed');
    assert.equal(r.id, before.id);
    await settle(ctx);

    // A context file edited with its size and mtime kept (utimes back; its ctime still moves). Whole
    // seconds first: a time utimes puts back to the nanosecond; then a memo of that state.
    utimesSync(a, 1_700_000_000, 1_700_000_000);
    await settle(ctx);
    const st = statSync(a, { bigint: true });
    writeFileSync(a, 'HELLO\n');
    utimesSync(a, 1_700_000_000, 1_700_000_000);
    const after = statSync(a, { bigint: true });
    assert.deepEqual([after.size, after.mtimeNs, after.ino], [st.size, st.mtimeNs, st.ino]);
    r = await build(ctx);
    assert.equal(r.hit, false, 'a.txt edited, size and mtime kept');
    assert.notEqual(r.id, before.id);
    const edited = await settle(ctx);
    assert.equal(edited.id, r.id);

    // The Dockerfile: a RUN-only change, then back.
    const dockerfile = path.join(ctx, 'Dockerfile');
    const text = readFileSync(dockerfile, 'utf8');
    writeFileSync(dockerfile, text.replace('> /b.txt', '> /c.txt'));
    r = await build(ctx);
    assert.equal(r.hit, false, 'a RUN-only change');
    assert.notEqual(r.id, edited.id);
    assert.match(r.stderr, /RUN cat \/a.txt > \/c.txt/);
    await settle(ctx);
    writeFileSync(dockerfile, text);
    r = await build(ctx);
    assert.equal(r.hit, false, 'the Dockerfile changed back');
    assert.equal(r.id, edited.id);
    await settle(ctx);

    // A --build-arg, SOURCE_DATE_EPOCH: other keys.
    assert.equal((await build(ctx, ['--build-arg', 'X=1'])).hit, false, 'a --build-arg');
    assert.equal((await settle(ctx, ['--build-arg', 'X=1'])).id, edited.id);
    assert.equal((await build(ctx, [], { SOURCE_DATE_EPOCH: '1700000000' })).hit, false, 'SOURCE_DATE_EPOCH');
    await settle(ctx, [], { SOURCE_DATE_EPOCH: '1700000000' });
    // That build moved the tag to its own image: the earlier invocation's memo no longer holds.
    r = await build(ctx);
    assert.equal(r.hit, false, 'the tag moved by another build');
    assert.equal(r.id, edited.id);
    await settle(ctx);

    // The image removed: the full path tags it again.
    assert.equal((await ws.kiln(['rmi', 'memo:test'])).code, 0);
    r = await build(ctx);
    assert.equal(r.hit, false, 'kiln rmi');
    assert.equal(r.id, edited.id);
    assert.equal((await ws.inspect('memo:test')).Id, edited.id);
    await settle(ctx);

    // The base re-imported with another config: another base, another image.
    const imp = await ws.kiln([
      'import',
      await ensureBaseTar('debian-slim'),
      'debian-slim:bookworm',
      '--change',
      'ENV MEMO_TEST=1',
    ]);
    assert.equal(imp.code, 0, imp.stderr);
    r = await build(ctx);
    assert.equal(r.hit, false, 'the base re-imported');
    assert.notEqual(r.id, edited.id);
    const rebased = await settle(ctx);

    // The build cache pruned: the full path runs the steps again.
    assert.equal((await ws.kiln(['prune', '--cache', '--all-ages'])).code, 0);
    r = await build(ctx);
    assert.equal(r.hit, false, 'prune --cache --all-ages');
    assert.match(r.stderr, /#3 DONE/);
    assert.doesNotMatch(r.stderr, /#3 CACHED/);
    assert.equal((await ws.inspect('memo:test')).Id, r.id);
    assert.equal((await settle(ctx)).id, r.id);
    assert.notEqual(rebased.id, edited.id);

    // Turned off.
    assert.equal((await build(ctx, [], { KILN_NO_MEMO: '1' })).hit, false, 'KILN_NO_MEMO=1');
    assert.ok(existsSync(ctx));
  });

  test('builds the memo cannot answer faithfully take the full path every time', async () => {
    for (const extra of [['--no-cache'], ['--progress', 'json'], ['--explain']]) {
      for (let i = 0; i < 3; i++) {
        const profile = path.join(ws.dir, `profile-x-${++runs}.jsonl`);
        const r = await ws.kiln(['build', '-t', 'memo:test', ...extra, ctx], { env: { KILN_PROFILE: profile } });
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(readFileSync(profile, 'utf8'), /no-op memo hit/, extra.join(' '));
      }
    }
  });
});

/**
 * The memo recorded by a build that ran steps, for its next run: the same argv (-q), or a
 * --no-cache build's argv without the flag. What proves it right: that next run answered by the
 * memo prints what the full path prints (KILN_NO_MEMO=1) and names the same image, which is the
 * image the build made — with RUN steps whose output differs at each run (a time), so a step that
 * ran again would give another image.
 */
describe('no-op memo recorded by a build that ran steps', { skip }, () => {
  let ctx: string;
  const tag = ['-t', 'memo:ran'];
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('ran', {
      // Two stages in parallel; an ARG's default in ENV; a RUN whose layer is empty; WORKDIR's layer.
      Dockerfile: [
        'FROM debian-slim:bookworm AS build',
        'COPY a.txt /a.txt',
        'RUN cat /a.txt > /b.txt && date +%s%N > /stamp',
        'FROM debian-slim:bookworm AS other',
        'RUN date +%s%N > /other',
        'FROM debian-slim:bookworm',
        'ARG V=1',
        'ENV X=$V',
        'COPY --from=build /b.txt /stamp /',
        'COPY --from=other /other /',
        'RUN true',
        'WORKDIR /w',
        '',
      ].join('\n'),
      'a.txt': 'hello\n',
    });
    await new Promise((r) => setTimeout(r, 50));
  });

  /** The next run (`extra`), answered by the memo, then the full path told not to use it: the same. */
  async function hitMatchesFullPath(extra: string[], made: Run): Promise<void> {
    const hit = await build(ctx, [...tag, ...extra]);
    assert.equal(hit.hit, true, `the run after the build is a memo hit: ${extra.join(' ')}`);
    assert.equal(hit.id, made.id, 'the image the build made');
    const full = await build(ctx, [...tag, ...extra], { KILN_NO_MEMO: '1' });
    assert.equal(full.hit, false);
    assert.deepEqual([full.stdout, full.stderr], [hit.stdout, hit.stderr], 'the full path prints the same');
    assert.equal(full.id, made.id);
    assert.equal((await ws.inspect('memo:ran')).Id, made.id);
  }

  test('a cold --no-cache -q build: the same build without --no-cache is a memo hit, its image', async () => {
    const cold = await build(ctx, [...tag, '-q', '--no-cache']);
    assert.equal(cold.hit, false);
    assert.match(cold.stdout, /^sha256:[a-f0-9]{64}\n$/);
    assert.equal(cold.stderr, '');
    await hitMatchesFullPath(['-q'], cold);
    // The --no-cache invocation itself is never answered: it runs its steps again (another image).
    const again = await build(ctx, [...tag, '-q', '--no-cache']);
    assert.equal(again.hit, false);
    assert.notEqual(again.id, cold.id);
    await hitMatchesFullPath(['-q'], again);
    // --iidfile with -q: written by the hit as by the full path.
    const iid = path.join(ws.dir, 'iid-ran');
    const withIid = await build(ctx, [...tag, '-q', '--no-cache', '--iidfile', iid]);
    rmSync(iid);
    const hit = await build(ctx, [...tag, '-q', '--iidfile', iid]);
    assert.equal(hit.hit, true);
    assert.equal(readFileSync(iid, 'utf8'), withIid.id);
  });

  test('a -q build that ran some steps (one file changed): its rerun is a memo hit, its image', async () => {
    const a = path.join(ctx, 'a.txt');
    writeFileSync(a, 'changed\n');
    const ran = await build(ctx, [...tag, '-q']);
    assert.equal(ran.hit, false);
    await hitMatchesFullPath(['-q'], ran);
    // A file changed after that build: the full path, which runs the steps the change reaches.
    writeFileSync(a, 'changed again\n');
    const changed = await build(ctx, [...tag, '-q']);
    assert.equal(changed.hit, false, 'a.txt changed after the build');
    assert.notEqual(changed.id, ran.id);
    await hitMatchesFullPath(['-q'], changed);
    writeFileSync(a, 'hello\n');
  });

  test('a build that ran steps with plain progress records nothing for its next run', async () => {
    const a = path.join(ctx, 'a.txt');
    writeFileSync(a, 'plain\n');
    await new Promise((r) => setTimeout(r, 50));
    const ran = await build(ctx, tag);
    assert.match(ran.stderr, /#\d+ DONE/);
    // Its progress is not the no-op's (DONE, not CACHED): the next run takes the full path …
    const next = await build(ctx, tag);
    assert.equal(next.hit, false, 'the run after a plain build that ran steps');
    assert.equal(next.id, ran.id);
    assert.doesNotMatch(next.stderr.replace(/#\d+ DONE \d+\.\ds\n/g, ''), /DONE/);
    // … which was a no-op and records the memo of its own output.
    const hit = await build(ctx, tag);
    assert.equal(hit.hit, true);
    assert.deepEqual([hit.stdout, hit.stderr], [next.stdout, next.stderr]);
    // --no-cache with plain progress: its next run takes the full path too.
    await build(ctx, [...tag, '--no-cache']);
    assert.equal((await build(ctx, tag)).hit, false, 'the run after a plain --no-cache build');
  });

  test('--squash: each build dates its merged layer, so no rebuild is the same image: never a memo', async () => {
    const first = await build(ctx, ['-t', 'memo:squash', '-q', '--squash']);
    // (the history's `created` has milliseconds: two builds never share it)
    const second = await build(ctx, ['-t', 'memo:squash', '-q', '--squash']);
    assert.equal(second.hit, false);
    assert.notEqual(second.id, first.id, 'a fully cached --squash rebuild makes another image');
    assert.equal((await build(ctx, ['-t', 'memo:squash', '-q', '--squash'])).hit, false);
  });

  test('a step two stages ran under --no-cache, whose record keeps one of the two results: no memo', async () => {
    const twin = ws.context('twin', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS a',
        'RUN date +%s%N > /t',
        'FROM debian-slim:bookworm AS b',
        'RUN date +%s%N > /t',
        'FROM debian-slim:bookworm',
        'COPY --from=a /t /a',
        'COPY --from=b /t /b',
        '',
      ].join('\n'),
    });
    await new Promise((r) => setTimeout(r, 50));
    const cold = await build(twin, ['-t', 'memo:twin', '-q', '--no-cache']);
    // The record of the twin RUN holds the result of the stage that recorded last: the rebuild
    // takes it for both stages, another image than the --no-cache build's — which no memo may claim.
    const next = await build(twin, ['-t', 'memo:twin', '-q']);
    assert.equal(next.hit, false, 'no memo for a build whose records do not give its image');
    assert.notEqual(next.id, cold.id);
    // That rebuild took every step from the cache: its rerun is a hit with its image.
    const hit = await build(twin, ['-t', 'memo:twin', '-q']);
    assert.equal(hit.hit, true);
    assert.equal(hit.id, next.id);
  });
});
