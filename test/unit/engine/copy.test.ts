/**
 * planCopy's hard links and wildcards, on real directories: what BuildKit's layers hold for the
 * same COPY (checked against Debian's BuildKit, see test/integration/build/realworld.test.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planCopy, planCopyLayer, type CopiedFile, type CopyRequest } from '../../../src/engine/copy.js';
import { BuildContext, WalkListings } from '../../../src/context/index.js';
import { layerSkeleton, type EntrySpec } from '../../../src/layer/write.js';
import { topOf } from '../../../src/sandbox/index.js';
import { xattr } from '../../../src/util/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-copy-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A context: a, b and dir/c one inode; dir/d and dir/e another; f alone. */
function linkedContext(): string {
  const dir = mkdtempSync(path.join(tmp, 'ctx-'));
  mkdirSync(path.join(dir, 'dir'));
  writeFileSync(path.join(dir, 'a'), 'aaa\n');
  linkSync(path.join(dir, 'a'), path.join(dir, 'b'));
  linkSync(path.join(dir, 'a'), path.join(dir, 'dir', 'c'));
  writeFileSync(path.join(dir, 'dir', 'd'), 'ddd\n');
  linkSync(path.join(dir, 'dir', 'd'), path.join(dir, 'dir', 'e'));
  writeFileSync(path.join(dir, 'f'), 'f\n');
  return dir;
}

async function copy(
  ctxDir: string,
  patterns: string[],
  dest: string,
  extra: Partial<CopyRequest> = {},
): Promise<string[]> {
  const ctx = BuildContext.open(ctxDir);
  const destRoot = mkdtempSync(path.join(tmp, 'dest-'));
  const entries = await planCopy({
    sources: patterns.map((pattern) => ({ ctx, pattern })),
    dest,
    workdir: '/',
    destRoot,
    keepOwner: false,
    place: {},
    ...extra,
  });
  return entries.map(show);
}

function show(e: EntrySpec): string {
  return e.type === 'hardlink' ? `${e.path} => ${e.linkname}` : `${e.type} ${e.path}`;
}

test('a copied tree keeps its hard links: the first path (in order) is the file, the others link to it', async () => {
  assert.deepEqual(await copy(linkedContext(), ['.'], '/t/'), [
    'directory t',
    'file t/a',
    't/b => t/a',
    'directory t/dir',
    't/dir/c => t/a',
    'file t/dir/d',
    't/dir/e => t/dir/d',
    'file t/f',
  ]);
});

test('links are kept within each source, not across the sources of one COPY (BuildKit copies each on its own)', async () => {
  const ctx = linkedContext();
  assert.deepEqual(await copy(ctx, ['a', 'b'], '/two/'), ['directory two', 'file two/a', 'file two/b']);
  assert.deepEqual(await copy(ctx, ['a', 'dir'], '/mix/'), [
    'directory mix',
    'file mix/a',
    'file mix/c',
    'file mix/d',
    'mix/e => mix/d',
  ]);
});

test('an excluded first link leaves the next path as the file', async () => {
  assert.deepEqual(await copy(linkedContext(), ['.'], '/x/', { exclude: ['a', 'dir/d'] }), [
    'directory x',
    'file x/b',
    'directory x/dir',
    'x/dir/c => x/b',
    'file x/dir/e',
    'file x/f',
  ]);
});

test('a wildcard that matches nothing selects nothing; a literal that does not exist is an error', async () => {
  const ctx = linkedContext();
  assert.deepEqual(await copy(ctx, ['f', 'yarn.lock*', 'pnpm-lock.yaml*'], '/app/'), ['directory app', 'file app/f']);
  assert.deepEqual(await copy(ctx, ['nomatch*'], '/y/'), []);
  await assert.rejects(copy(ctx, ['nomatch'], '/w/'), /"nomatch" not found in the build context/);
});

// COPY --chmod and the directories the copy makes: current BuildKit gives fsutil's MkdirAll the
// mode (fsutil copy.go: `perm = *ci.Mode` for the destination's missing parents and for the
// destination of a directory's contents; tonistiigi/fsutil#228 for moby/buildkit#4945, applied
// without the umask since moby/buildkit#6801); copied directories take it too; existing parents
// keep theirs; an archive ADD unpacks is made without it (buildkit solver/llbsolver/file/backend.go).
test('--chmod: made parents and copied directories get its permission bits, existing parents keep theirs', async () => {
  const ctxDir = linkedContext();
  const modes = async (patterns: string[], dest: string, extra: Partial<CopyRequest>, destRoot?: string) => {
    const ctx = BuildContext.open(ctxDir);
    const root = destRoot ?? mkdtempSync(path.join(tmp, 'dest-'));
    const entries = await planCopy({
      sources: patterns.map((pattern) => ({ ctx, pattern })),
      dest,
      workdir: '/',
      destRoot: root,
      keepOwner: false,
      place: {},
      ...extra,
    });
    return Object.fromEntries(entries.map((e) => [e.path, (e.mode ?? 0).toString(8)]));
  };
  assert.deepEqual(await modes(['f'], '/a/b/f', { chmod: 0o640 }), { a: '640', 'a/b': '640', 'a/b/f': '640' });
  assert.deepEqual(await modes(['f'], '/a/f', { chmod: 0o4755 }), { a: '755', 'a/f': '4755' });
  assert.deepEqual(await modes(['f'], '/a/b/f', {}), { a: '755', 'a/b': '755', 'a/b/f': '644' });
  const d = await modes(['dir'], '/cm', { chmod: 0o700 });
  assert.deepEqual([d.cm, d['cm/d']], ['700', '700']);
  const sub = await modes(['.'], '/t/', { chmod: 0o750 });
  assert.deepEqual([sub.t, sub['t/dir'], sub['t/f']], ['750', '750', '750']);
  // An existing parent is repeated as it is.
  const root = mkdtempSync(path.join(tmp, 'dest-'));
  mkdirSync(path.join(root, 'etc'), { mode: 0o755 });
  const ex = await modes(['f'], '/etc/ssh/f', { chmod: 0o600 }, root);
  assert.deepEqual([ex.etc, ex['etc/ssh'], ex['etc/ssh/f']], ['755', '600', '600']);
  // --link's empty root: every parent is made, plainly 0755.
  assert.deepEqual(await modes(['f'], '/a/f', { chmod: 0o600, plainMadeDirs: true }), { a: '755', 'a/f': '600' });
});

/** Names whose order as whole paths differs from a walk's (a-b and a.c sort before a/…), links, empty directories. */
function awkwardTree(): string {
  const dir = mkdtempSync(path.join(tmp, 'awkward-'));
  const src = path.join(dir, 'src');
  for (const d of ['a', 'a/x', 'a/x/z', 'a-b', 'e', 'deep/only/one', 'sp ace', 'ü'])
    mkdirSync(path.join(src, d), { recursive: true });
  for (const f of [
    'a.c',
    'a0',
    'a/x-y',
    'a/x/z/f',
    'a/x.q',
    'a-b/g',
    'e-f',
    'deep/only/one/leaf',
    'sp ace/h',
    'ü/i',
    'a/x/z/f-2',
    'new\nline',
  ])
    writeFileSync(path.join(src, f), `${f}\n`);
  linkSync(path.join(src, 'a0'), path.join(src, 'a-b', 'a0-link'));
  linkSync(path.join(src, 'a0'), path.join(src, 'a', 'x', 'z', 'a0-link'));
  symlinkSync('a0', path.join(src, 'a', 'sym'));
  return dir;
}

async function drain(it: AsyncIterable<CopiedFile>): Promise<CopiedFile[]> {
  const out: CopiedFile[] = [];
  for await (const c of it) out.push(c);
  return out;
}

test('a copy of one directory, streamed in the layer order: the same entries, facts and sources as planCopy', async () => {
  const ctxDir = awkwardTree();
  const existing = mkdtempSync(path.join(tmp, 'dest-'));
  mkdirSync(path.join(existing, 'etc', 'app'), { recursive: true, mode: 0o750 });
  const cases: [string, string, Partial<CopyRequest>][] = [
    ['src', '/t/', {}],
    ['src', '/', {}],
    ['src', '/etc/app', {}],
    ['src/', '/etc/app/sub/', { chmod: 0o700, owner: { uid: 5, gid: 6 } }],
    ['src', '/p/', { parents: true, keepOwner: true }],
    ['src/deep', '/d', {}],
    ['src/a/x', '/x', { plainMadeDirs: true, chmod: 0o640 }],
  ];
  for (const [pattern, dest, extra] of cases)
    for (const listed of [false, true]) {
      const ctx = () => {
        if (!listed) return BuildContext.open(ctxDir);
        // From a walk's listings, as a `COPY --from` after its key's walk (drained as the copy reads them).
        const listings = new WalkListings();
        for (const _ of BuildContext.plain(ctxDir, listings).walk('')) void _;
        listings.draining = true;
        return BuildContext.plain(ctxDir, listings);
      };
      const req = (c: BuildContext): CopyRequest => ({
        sources: [{ ctx: c, pattern }],
        dest,
        workdir: '/',
        destRoot: existing,
        keepOwner: false,
        createdTime: 1000,
        place: {},
        ...extra,
      });
      const provenance = new Map<string, string>();
      const want = await planCopy({ ...req(ctx()), provenance });
      const plan = await planCopyLayer(req(ctx()), tmp);
      const what = `${pattern} → ${dest}${listed ? ' (listed)' : ''}`;
      assert.equal(plan.empty, false, what);
      assert.deepEqual([...plan.entries], want, what);
      const opts = { sourceDateEpoch: 1500 };
      assert.deepEqual(
        plan.facts(opts),
        { tops: [...new Set(want.map((e) => topOf(e.path)))].sort(), skeleton: layerSkeleton(want, opts) },
        what,
      );
      const sources = want
        .filter((e) => e.type !== 'directory' && provenance.has(e.path))
        .map((e) => ({
          path: e.path,
          abs: provenance.get(e.path)!,
          size: e.type === 'file' ? (e.size ?? 0) : 0,
          link: e.type === 'symlink' || e.type === 'hardlink',
        }));
      assert.deepEqual(await drain(plan.copied()), sources, what);
    }
});

test('a streamed copy of an empty directory into one that exists has no entries; into a new one, that directory', async () => {
  const ctxDir = mkdtempSync(path.join(tmp, 'empty-'));
  mkdirSync(path.join(ctxDir, 'none'));
  const destRoot = mkdtempSync(path.join(tmp, 'dest-'));
  mkdirSync(path.join(destRoot, 'there'));
  const plan = (dest: string) =>
    planCopyLayer(
      {
        sources: [{ ctx: BuildContext.open(ctxDir), pattern: 'none' }],
        dest,
        workdir: '/',
        destRoot,
        keepOwner: false,
        createdTime: 7,
        place: {},
      },
      tmp,
    );
  assert.equal((await plan('/there')).empty, true);
  const made = await plan('/new/dir');
  assert.deepEqual([...made.entries].map(show), ['directory new', 'directory new/dir']);
  assert.deepEqual(made.facts({}).skeleton?.root, 'new/dir');
});

// BuildKit's copier keeps a file's xattrs: checked on docker 20.10's BuildKit, `COPY --from` of a
// file with security.capability and user.note set (a directory's contents and the file alone)
// gives both, same values.
test('a copy keeps the xattrs a layer carries (file capabilities, user.*), streamed or not; a link has none', async () => {
  const ctxDir = mkdtempSync(path.join(tmp, 'xattr-'));
  mkdirSync(path.join(ctxDir, 'out', 'd'), { recursive: true });
  const file = path.join(ctxDir, 'out', 'ping');
  writeFileSync(file, 'hi\n');
  const cap = Buffer.from('0100000200040000000000000000000000000000', 'hex');
  xattr().setAttributeSync(file, 'security.capability', cap);
  xattr().setAttributeSync(file, 'user.note', 'x');
  xattr().setAttributeSync(path.join(ctxDir, 'out', 'd'), 'user.dir', 'y');
  linkSync(file, path.join(ctxDir, 'out', 'pong'));
  symlinkSync('ping', path.join(ctxDir, 'out', 'sym'));
  const destRoot = mkdtempSync(path.join(tmp, 'dest-'));
  const req = (pattern: string, dest: string): CopyRequest => ({
    sources: [{ ctx: BuildContext.open(ctxDir), pattern }],
    dest,
    workdir: '/',
    destRoot,
    keepOwner: true,
    place: {},
  });
  const xattrsOf = (entries: EntrySpec[]) =>
    Object.fromEntries(
      entries.map((e) => [
        e.path,
        Object.fromEntries(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, v.toString('hex')])),
      ]),
    );
  const want = {
    app: {},
    'app/d': { 'user.dir': Buffer.from('y').toString('hex') },
    'app/ping': { 'security.capability': cap.toString('hex'), 'user.note': Buffer.from('x').toString('hex') },
    'app/pong': {},
    'app/sym': {},
  };
  assert.deepEqual(xattrsOf(await planCopy(req('out', '/app'))), want);
  assert.deepEqual(xattrsOf([...(await planCopyLayer(req('out', '/app'), tmp)).entries]), want);
  assert.deepEqual(xattrsOf(await planCopy(req('out/ping', '/single'))), { single: want['app/ping'] });
});
