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
