import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { recordCopy, SourceOwners, usrMergedAlias } from '../../../src/engine/provenance.js';
import { Store } from '../../../src/store/index.js';
import { analyzeCopies, copiedPackages, copiedBytesByStage } from '../../../src/analyze/index.js';
import type { Digest } from '../../../src/util/index.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-prov-'));
after(() => rmSync(work, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string>): string {
  const root = path.join(work, name);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), c);
  }
  return root;
}

const builder = tree('builder', {
  'var/lib/dpkg/status':
    'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n',
  'var/lib/dpkg/info/zlib1g:amd64.list':
    '/.\n/lib\n/lib/x86_64-linux-gnu/libz.so.1.2.13\n/lib/x86_64-linux-gnu/libz.so.1\n',
  'usr/lib/x86_64-linux-gnu/libz.so.1.2.13': 'ELF',
  'usr/local/lib/python3.11/site-packages/flask/__init__.py': 'x',
  'usr/local/lib/python3.11/site-packages/flask/__pycache__/__init__.cpython-311.pyc': 'xx',
  'usr/local/lib/python3.11/site-packages/Flask-3.0.0.dist-info/METADATA':
    'Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.0\n',
  'usr/local/lib/python3.11/site-packages/Flask-3.0.0.dist-info/RECORD':
    'flask/__init__.py,sha256=x,1\nflask/__pycache__/__init__.cpython-311.pyc,,\n../../../bin/flask,sha256=y,2\n',
  'usr/local/bin/flask': 'script',
  'usr/local/include/python3.11/Python.h': 'hhhh',
  'app/node_modules/express/package.json': '{"name":"express","version":"4.18.2"}',
  'app/node_modules/express/index.js': 'module.exports=1',
  'app/node_modules/jest/package.json': '{"name":"jest","version":"29.0.0"}',
  'app/node_modules/jest/build/index.js': 'dev code here',
  'app/node_modules/@scope/pkg/package.json': '{"name":"@scope/pkg","version":"1.0.0"}',
  'app/node_modules/@scope/pkg/lib/a.js': 'a',
  'app/node_modules/.package-lock.json': JSON.stringify({
    packages: { 'node_modules/express': {}, 'node_modules/jest': { dev: true }, 'node_modules/@scope/pkg': {} },
  }),
});

describe('provenance: the owners of a source file system', () => {
  const owners = new SourceOwners(builder);
  test('dpkg lists, with /usr-merged aliases; packages not installed are not owners', () => {
    assert.deepEqual(owners.owner('usr/lib/x86_64-linux-gnu/libz.so.1.2.13'), {
      type: 'deb',
      name: 'zlib1g',
      version: '1:1.2.13.dfsg-1',
      arch: 'amd64',
    });
    assert.equal(owners.owner('lib/x86_64-linux-gnu/libz.so.1')?.name, 'zlib1g');
    assert.equal(owners.owner('usr/bin/nothing'), undefined);
    assert.equal(usrMergedAlias('usr/sbin/x'), 'sbin/x');
    assert.equal(usrMergedAlias('etc/x'), undefined);
  });
  test('Python RECORD, including scripts outside site-packages', () => {
    assert.equal(owners.owner('usr/local/lib/python3.11/site-packages/flask/__init__.py')?.name, 'Flask');
    assert.deepEqual(owners.owner('usr/local/bin/flask'), { type: 'python', name: 'Flask', version: '3.0.0' });
  });
  test('node_modules: the innermost package, scoped names, dev from the hidden lockfile', () => {
    assert.deepEqual(owners.owner('app/node_modules/express/index.js'), {
      type: 'npm',
      name: 'express',
      version: '4.18.2',
    });
    assert.equal(owners.owner('app/node_modules/@scope/pkg/lib/a.js')?.name, '@scope/pkg');
    assert.equal(owners.owner('app/node_modules/jest/build/index.js')?.dev, true);
    assert.equal(owners.owner('app/node_modules/.package-lock.json'), undefined);
  });
});

// A few lookups are searched in the lists' text, many use the map of every listed path: the same
// answers either way, where lists disagree (a later list wins a path; an alias only fills a gap).
test('dpkg owners: searched one by one or from the whole map, the same answers', () => {
  const lists: Record<string, string> = {
    'var/lib/dpkg/status': ['a', 'b', 'c', 'd']
      .map((n) => `Package: ${n}\nStatus: install ok installed\nVersion: 1.${n}\n`)
      .join('\n'),
    // a and b both list /usr/bin/x (b is later: b wins it; bin/x, its alias, is a's, the first);
    // a lists /bin/y, c lists /usr/bin/y (each path its own list's, not the other's alias); d
    // lists /lib/z only (its alias usr/lib/z) and /etc/d/f; b's "/usr/bin/xx " has a blank.
    'var/lib/dpkg/info/a.list': '/.\n/usr\n/usr/bin\n/usr/bin/x\n/bin\n/bin/y\n',
    'var/lib/dpkg/info/b.list': '/.\n/usr\n/usr/bin\n/usr/bin/x\n/usr/bin/xx \n',
    'var/lib/dpkg/info/c.list': '/.\n/usr/bin/y\n',
    'var/lib/dpkg/info/d.list': '/.\n/lib\n/lib/z\n/etc\n/etc/d\n/etc/d/f\n',
    'var/lib/dpkg/info/gone.list': '/usr/bin/x\n',
  };
  const root = tree('dpkg-search', lists);
  const paths = ['usr/bin/x', 'bin/x', 'usr/bin/xx', 'usr/bin/y', 'bin/y', 'lib/z', 'usr/lib/z', 'etc/d/f', 'etc/d'];
  paths.push('usr', 'etc', '.', 'app/x', 'usr/bin/x/', 'usr/bin', 'sbin/q', 'usr/src/app/x', 'lib/none/q', 'etc/d/g');
  const searched = new SourceOwners(root);
  const one = paths.map((p) => searched.owner(p)?.name ?? '-');
  // Past the search limit every lookup is answered from the map. (A file of a directory no list
  // names, such as app/, is answered without a search and does not count: the warm-up is in usr/bin.)
  const mapped = new SourceOwners(root);
  for (let i = 0; i < 40; i++) mapped.owner(`usr/bin/warm-up-${i}`);
  // Many files of an application's directory: none owned, and the lookups after them still right.
  const app = new SourceOwners(root);
  for (let i = 0; i < 40; i++) assert.equal(app.owner(`usr/src/app/f${i}`), undefined);
  assert.deepEqual(
    paths.map((p) => app.owner(p)?.name ?? '-'),
    one,
  );
  const all = paths.map((p) => mapped.owner(p)?.name ?? '-');
  assert.deepEqual(one, all);
  // bin/x: a's alias came first and stays; bin/y: a's own path.
  assert.deepEqual(one.slice(0, 9), ['b', 'a', 'b', 'c', 'a', 'd', 'd', 'd', 'd']);
});

test("SourceOwners: a directory said to hold no dpkg-unpacked file (a builder's output) is not searched in the lists", () => {
  const root = tree('dpkg-undpkged', {
    'var/lib/dpkg/status': 'Package: a\nStatus: install ok installed\nVersion: 1\n',
    'var/lib/dpkg/info/a.list': '/.\n/usr\n/usr/bin\n/usr/bin/x\n/out\n/out/f\n',
    'out/f': 'f',
    'usr/bin/x': 'x',
  });
  assert.equal(new SourceOwners(root).owner('out/f')?.name, 'a');
  const owners = new SourceOwners(root, ['out']);
  assert.equal(owners.owner('out/f'), undefined);
  assert.equal(owners.owner('usr/bin/x')?.name, 'a', 'elsewhere the lists are searched');
  // A reader of the layers serves as the root directory does.
  const viaReader = new SourceOwners({
    readFile: (rel) => (existsSync(path.join(root, rel)) ? readFileSync(path.join(root, rel), 'utf8') : undefined),
    readdir: (rel) => readdirSync(path.join(root, rel)),
  });
  assert.equal(viaReader.owner('out/f')?.name, 'a');
});

describe('provenance: a record, and what reads it', async () => {
  const store = await Store.open({ root: path.join(work, 'store') });
  const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}` as Digest;
  const step = (line: number, text: string, stage: number, name?: string) => ({
    file: 'Dockerfile',
    line,
    text,
    stage: { index: stage, ...(name ? { name } : {}) },
  });
  const files = [
    'usr/local/lib/python3.11/site-packages/flask/__init__.py',
    'usr/local/lib/python3.11/site-packages/flask/__pycache__/__init__.cpython-311.pyc',
    'usr/local/bin/flask',
    'usr/local/include/python3.11/Python.h',
  ];
  const sources = new Map(files.map((f) => [f, path.join(builder, f)]));
  const entries = files.map((f) => ({
    path: f,
    type: 'file' as const,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    size: 10,
  }));

  test('recordCopy: source paths and owners, stored by diff_id and read back', async () => {
    const rec = await recordCopy({
      store,
      diffId: d(1),
      kind: 'COPY',
      step: step(9, 'COPY --from=builder /usr/local/ /usr/local/', 1),
      from: { kind: 'stage', index: 0, name: 'builder' },
      entries,
      sources,
      sourceRoot: builder,
      owners: new SourceOwners(builder),
    });
    assert.deepEqual(await store.provenance(d(1)), rec);
    assert.equal(rec.files.length, 4);
    assert.equal(rec.files[2]!.source, 'usr/local/bin/flask');
    assert.equal(rec.packages[rec.files[2]!.pkg!]!.name, 'Flask');
    assert.equal(rec.files[3]!.pkg, undefined);
  });

  test('a COPY --from of a stage whose file came by a copy there: the chain, and its package', async () => {
    const rec = await recordCopy({
      store,
      diffId: d(2),
      kind: 'COPY',
      step: step(14, 'COPY --from=mid /usr/local/bin/flask /bin/', 2),
      from: { kind: 'stage', index: 1, name: 'mid' },
      entries: [{ path: 'bin/flask', type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 6 }],
      sources: new Map([['bin/flask', path.join(work, 'mid', 'usr/local/bin/flask')]]),
      sourceRoot: path.join(work, 'mid'),
      sourceDiffIds: [d(3), d(1)],
    });
    const f = rec.files[0]!;
    assert.equal(f.source, 'usr/local/bin/flask');
    assert.equal(f.via?.[0]?.line, 9);
    assert.deepEqual(f.via?.[0]?.from, { kind: 'stage', index: 0, name: 'builder' });
    assert.equal(rec.packages[f.pkg!]!.name, 'Flask');
  });

  test('the same layer by the same step from the same source: the stored record, owners not looked up again', async () => {
    const copy = (sourceDiffIds: Digest[], owners: SourceOwners) =>
      recordCopy({
        store,
        diffId: d(5),
        kind: 'COPY',
        step: step(20, 'COPY --from=builder /usr/local/ /usr/local/', 3),
        from: { kind: 'stage', index: 0, name: 'builder' },
        entries,
        sources,
        sourceRoot: builder,
        owners,
        sourceDiffIds,
      });
    const first = await copy([d(7)], new SourceOwners(builder));
    assert.equal(first.packages[first.files[2]!.pkg!]!.name, 'Flask');
    // Owners over an empty tree would find none: the record comes from the store, not from them.
    const empty = tree('empty-source', { 'etc/hostname': 'x' });
    assert.deepEqual(await copy([d(7)], new SourceOwners(empty)), first);
    // Another source (its chain id differs): looked up again, in that source.
    const other = await copy([d(8)], new SourceOwners(empty));
    assert.equal(other.files[2]!.pkg, undefined);
    assert.deepEqual(await store.provenance(d(5)), other);
  });

  test('analyzeCopies: sizes, what a runtime rarely needs, the saving', async () => {
    const [r] = analyzeCopies([undefined, await store.provenance(d(1))]);
    assert.equal(r!.layer, 1);
    assert.equal(r!.bytes, 40);
    assert.deepEqual(
      r!.findings.map((f) => [f.kind, f.bytes, f.suggestion]),
      [
        ['__pycache__', 10, '--exclude=**/__pycache__'],
        ['headers', 10, '--exclude=**/include'],
      ],
    );
    assert.equal(r!.saving, 20);
    assert.deepEqual(
      r!.narrower?.map((n) => n.path),
      ['/usr/local/lib', '/usr/local/bin', '/usr/local/include'],
    );
    assert.deepEqual(
      [...copiedBytesByStage([await store.provenance(d(1))])],
      [
        ['0', 40],
        ['builder', 40],
      ],
    );
  });

  test('copiedPackages: only what the image does not catalog itself, marked copied', async () => {
    const recs = [await store.provenance(d(1))];
    const pkgs = copiedPackages(recs, [], {});
    assert.equal(pkgs.length, 1);
    assert.equal(pkgs[0]!.name, 'Flask');
    assert.deepEqual(pkgs[0]!.copied?.files, [
      '/usr/local/lib/python3.11/site-packages/flask/__init__.py',
      '/usr/local/lib/python3.11/site-packages/flask/__pycache__/__init__.cpython-311.pyc',
      '/usr/local/bin/flask',
    ]);
    assert.equal(pkgs[0]!.copied?.from, 'stage builder');
    const cataloged = { ...pkgs[0]!, copied: undefined };
    assert.equal(copiedPackages(recs, [cataloged], {}).length, 0);
  });
});

test("recordCopied: a layer whose record is known (same step, same source chain) reads none of the source layers' records", async () => {
  const { recordCopied } = await import('../../../src/engine/provenance.js');
  const store = await Store.open({ root: path.join(work, 'known-store') });
  const diffId = `sha256:${'1'.repeat(64)}` as Digest;
  const sourceDiffIds = [`sha256:${'2'.repeat(64)}`, `sha256:${'3'.repeat(64)}`] as Digest[];
  const input = {
    store,
    tmpDir: store.tmpDir,
    diffId,
    kind: 'COPY' as const,
    step: {
      file: 'Dockerfile',
      line: 9,
      text: 'COPY --from=base /app/node_modules /app/node_modules',
      stage: { index: 1 },
    },
    from: { kind: 'stage' as const, index: 0, name: 'base' },
    exclude: undefined,
    sourceRoot: '/nonexistent',
    owners: undefined,
    sourceDiffIds,
  };
  async function* copied() {
    yield { path: '/app/node_modules/x.js', abs: '/nonexistent/app/node_modules/x.js', size: 1, link: false };
  }
  let reads = 0;
  const provenance = store.provenance.bind(store);
  store.provenance = async (d: Digest) => {
    reads++;
    return provenance(d);
  };
  await recordCopied({ ...input, copied: copied() });
  assert.equal(reads, sourceDiffIds.length, 'a new record looks for upstream copies in every source layer');
  assert.equal((await store.provenanceHead(diffId))?.sourceChain !== undefined, true);
  reads = 0;
  await recordCopied({ ...input, copied: copied() });
  assert.equal(reads, 0, 'the same record again: no source layer read');
});
