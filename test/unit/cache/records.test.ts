import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CacheIndex, type CacheRecord } from '../../../src/cache/records.js';
import { parseCacheSpec } from '../../../src/cache/registry.js';
import { parseKeepStorage } from '../../../src/cli/commands/prune.js';
import { digestHex, sha256, type Digest } from '../../../src/util/digest.js';
import { KilnError } from '../../../src/util/errors.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-records-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
let roots = 0;

/** A store-like root whose blobs/ holds the given blobs (content: the name). */
function storeRoot(): string {
  const root = path.join(tmp, `store-${++roots}`);
  mkdirSync(path.join(root, 'blobs', 'sha256'), { recursive: true });
  return root;
}

function blob(root: string, name: string, size: number): { digest: Digest; size: number } {
  const digest = sha256(name);
  writeFileSync(path.join(root, 'blobs', 'sha256', digestHex(digest)), name);
  return { digest, size };
}

/** A record whose state is `layers`; `added` (the last layer) is the one the step made. */
function record(key: string, layers: { digest: Digest; size: number }[], added = true, extra = ''): CacheRecord {
  const last = layers[layers.length - 1];
  return {
    v: 1,
    key: sha256(key),
    created: '2024-01-01T00:00:00Z',
    ...(added && last
      ? {
          layer: {
            mediaType: GZ,
            digest: last.digest,
            size: last.size,
            diffId: sha256(`diff ${last.digest}`),
            uncompressedSize: last.size * 2,
          },
        }
      : {}),
    state: {
      config: {
        architecture: 'amd64',
        os: 'linux',
        config: { Labels: { extra } },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(`diff ${l.digest}`)) },
        history: [],
      },
      layers: layers.map((l) => ({ mediaType: GZ, digest: l.digest, size: l.size })),
      cmdSet: false,
      shell: ['/bin/sh', '-c'],
    },
  };
}

async function used(idx: CacheIndex, rec: CacheRecord, secondsAgo: number): Promise<void> {
  const t = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(path.join(idx.recordsDir, `${digestHex(rec.key)}.json`), t, t);
}

test("put and get round-trip; the gc root lists the state's layers", async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const base = blob(root, 'base', 1000);
  const l1 = blob(root, 'l1', 10);
  const r = record('k1', [base, l1]);
  assert.equal(await idx.put(r), r);
  assert.deepEqual(await idx.get(r.key), r);
  assert.equal(
    readFileSync(path.join(root, 'gc-roots', `cache-${digestHex(r.key)}`), 'utf8'),
    `${base.digest}\n${l1.digest}\n`,
  );
  assert.deepEqual(readdirSync(path.join(root, 'gc-roots')), [`cache-${digestHex(r.key)}`], 'no temp files left');
  assert.equal(await idx.get(sha256('nothing')), undefined);
});

test('the first record of a key wins unless replace; a record whose blobs are gone is replaced', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const a = blob(root, 'a', 10);
  const b = blob(root, 'b', 10);
  const first = record('same', [a]);
  const second = record('same', [b]);
  await idx.put(first);
  const got = await idx.put(second);
  assert.deepEqual(got, first, 'a concurrent build that recorded first wins');
  assert.equal(
    readFileSync(path.join(root, 'gc-roots', `cache-${digestHex(first.key)}`), 'utf8'),
    `${a.digest}\n`,
    "the winner's root stays",
  );
  assert.equal(await idx.put(second, { replace: true }), second);
  assert.deepEqual(await idx.get(first.key), second);
  // The recorded blob disappears: a new result replaces the record.
  rmSync(path.join(root, 'blobs', 'sha256', digestHex(b.digest)));
  assert.equal(await idx.put(first), first);
  assert.deepEqual(await idx.get(first.key), first);
});

test('damaged records read as misses', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const r = record('dmg', [blob(root, 'x', 1)]);
  await idx.put(r);
  writeFileSync(path.join(idx.recordsDir, `${digestHex(r.key)}.json`), '{"v":1,');
  assert.equal(await idx.get(r.key), undefined);
  writeFileSync(path.join(idx.recordsDir, `${digestHex(r.key)}.json`), JSON.stringify({ ...r, key: sha256('other') }));
  assert.equal(await idx.get(r.key), undefined, 'a record under another key');
});

// Records are written without fsync (records.ts writeTemp): a crash may leave one empty, as ext4
// does with a renamed file whose data never reached the disk. It must read as a miss and be
// replaced by the next build's record, even one that does not replace (the first record wins).
test('a record a crash left empty is a miss, and the next put replaces it', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const r = record('crash', [blob(root, 'y', 1)]);
  await idx.put(r);
  writeFileSync(path.join(idx.recordsDir, `${digestHex(r.key)}.json`), '');
  writeFileSync(path.join(root, 'gc-roots', `cache-${digestHex(r.key)}`), '');
  assert.equal(await idx.get(r.key), undefined);
  assert.equal(await idx.put(r), r);
  assert.deepEqual(await idx.get(r.key), r);
  assert.equal(
    readFileSync(path.join(root, 'gc-roots', `cache-${digestHex(r.key)}`), 'utf8'),
    `${r.state.layers[0]!.digest}\n`,
  );
});

test('prune --keep-storage: least recently used first, charging every cache-made layer a record pins', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const base = blob(root, 'base', 1_000_000); // a base image layer: not the cache's, never charged
  const x = blob(root, 'x', 300);
  const y = blob(root, 'y', 300);
  const xRun = record('x-run', [base, x]);
  const xCmd = record('x-cmd', [base, x], false, 'cmd'); // config-only step after x's RUN
  const yRun = record('y-run', [base, y]);
  const yCmd = record('y-cmd', [base, y], false, 'cmd');
  for (const r of [xRun, xCmd, yRun, yCmd]) await idx.put(r);
  await used(idx, xRun, 40);
  await used(idx, xCmd, 30);
  await used(idx, yRun, 20);
  await used(idx, yCmd, 10);
  // 400 bytes: y's chain (300) fits, x's would make 600; x-cmd may not keep x's layer for free.
  const r = await idx.prune({ keepBytes: 400 });
  assert.deepEqual(r, { records: 2, bytes: 300, keptBytes: 300 });
  assert.ok(await idx.get(yRun.key));
  assert.ok(await idx.get(yCmd.key));
  assert.equal(await idx.get(xRun.key), undefined);
  assert.equal(await idx.get(xCmd.key), undefined);
  assert.deepEqual(
    readdirSync(path.join(root, 'gc-roots')).sort(),
    [yRun, yCmd].map((k) => `cache-${digestHex(k.key)}`).sort(),
    "x's gc roots went with its records",
  );
  // Using x again makes it the most recent: now y goes.
  await idx.put(xRun);
  await idx.put(xCmd);
  const r2 = await idx.prune({ keepBytes: 400 });
  assert.equal(r2.records, 2);
  assert.ok(await idx.get(xCmd.key));
  assert.equal(await idx.get(yCmd.key), undefined);
  // 0: keeps only config-only records of states without cache-made layers (none here).
  assert.equal((await idx.prune({ keepBytes: 0 })).records, 2);
  // Everything, with the memos and file digests.
  await idx.put(yRun);
  await idx.putMemo(sha256('m'), sha256('v'));
  mkdirSync(idx.filesDir, { recursive: true });
  writeFileSync(path.join(idx.filesDir, 'ctx.json'), '{}');
  assert.equal((await idx.prune()).records, 1);
  assert.equal(await idx.getMemo(sha256('m')), undefined);
  assert.deepEqual(await idx.list(), []);
});

test('prune removes orphaned gc roots and temp files of killed writers, not fresh ones', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  mkdirSync(path.join(root, 'gc-roots'), { recursive: true });
  mkdirSync(idx.recordsDir, { recursive: true });
  const old = new Date(Date.now() - 3600_000);
  const files = {
    orphanOld: path.join(root, 'gc-roots', `cache-${'a'.repeat(64)}`),
    orphanNew: path.join(root, 'gc-roots', `cache-${'b'.repeat(64)}`),
    tmpRootOld: path.join(root, 'gc-roots', `.tmp-cache-${'c'.repeat(64)}-1-abc`),
    tmpRecOld: path.join(idx.recordsDir, `.tmp-${'d'.repeat(64)}.json-1-abc`),
    other: path.join(root, 'gc-roots', 'build-123'),
  };
  for (const f of Object.values(files)) writeFileSync(f, '');
  for (const f of [files.orphanOld, files.tmpRootOld, files.tmpRecOld, files.other]) utimesSync(f, old, old);
  await idx.prune({ keepBytes: 1 << 30 });
  const left = [...readdirSync(path.join(root, 'gc-roots')), ...readdirSync(idx.recordsDir)].sort();
  assert.deepEqual(left, ['build-123', `cache-${'b'.repeat(64)}`]);
});

test('--keep-storage sizes as docker takes them (1024-based)', () => {
  assert.equal(parseKeepStorage('1000'), 1000);
  assert.equal(parseKeepStorage('400kb'), 409600);
  assert.equal(parseKeepStorage('5GB'), 5 * 1024 ** 3);
  assert.equal(parseKeepStorage('1.5g'), 1.5 * 1024 ** 3);
  assert.equal(parseKeepStorage('2MiB'), 2 * 1024 ** 2);
  assert.equal(parseKeepStorage('0'), 0);
  for (const bad of ['', 'lots', '5XB', '-1', '1 GB GB']) assert.throws(() => parseKeepStorage(bad), KilnError, bad);
});

test('--cache-to / --cache-from specs as BuildKit writes them', () => {
  assert.deepEqual(parseCacheSpec('type=registry,ref=reg.example/app:cache,mode=max', '--cache-to'), {
    type: 'registry',
    ref: 'reg.example/app:cache',
    mode: 'max',
    ignoreError: false,
  });
  assert.deepEqual(parseCacheSpec('type=registry,ref=reg.example/app:cache', '--cache-from'), {
    type: 'registry',
    ref: 'reg.example/app:cache',
    mode: 'min',
    ignoreError: false,
  });
  assert.deepEqual(parseCacheSpec('reg.example/app:cache', '--cache-from'), {
    type: 'registry',
    ref: 'reg.example/app:cache',
    mode: 'min',
    ignoreError: false,
  });
  assert.deepEqual(
    parseCacheSpec('ref=r.example/a:c,type=registry,ignore-error=true,oci-mediatypes=true', '--cache-to').ignoreError,
    true,
  );
  const bad: [string, '--cache-to' | '--cache-from', RegExp][] = [
    ['type=local,dest=/tmp/c', '--cache-to', /type=local is not supported/],
    ['type=gha', '--cache-from', /type=gha is not supported/],
    ['type=registry', '--cache-to', /needs ref=REF/],
    ['type=registry,ref=r.example/a:c,mode=all', '--cache-to', /mode "all"/],
    ['type=registry,ref=r.example/a:c,mode=max', '--cache-from', /takes no mode/],
    ['type=registry,ref=r.example/a:c,foo=1', '--cache-to', /unknown --cache-to option "foo"/],
    ['type=registry,ref=UPPER/Case:x', '--cache-to', /invalid --cache-to ref/],
    ['type=registry,ref', '--cache-to', /not KEY=VALUE/],
  ];
  for (const [spec, flag, msg] of bad) {
    assert.throws(
      () => parseCacheSpec(spec, flag),
      (e: unknown) => e instanceof KilnError && e.code === 'USAGE' && msg.test(e.message),
      spec,
    );
  }
});

// The engine's rebuildRecords trusts a record file still at the inode this process read or wrote
// (records.ts `seen`): a record replaced since is another file, and is read again.
test('inodeOf: the inode of the record file this process last read or wrote; a replaced record is another inode', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const r = record('inode', [blob(root, 'i', 1)]);
  assert.equal(idx.inodeOf(r.key), undefined);
  await idx.put(r);
  const file = path.join(idx.recordsDir, `${digestHex(r.key)}.json`);
  const written = idx.inodeOf(r.key);
  assert.equal(written, String(statSync(file, { bigint: true }).ino));
  assert.equal(idx.recordFile(r.key), file);
  // Another process replaces it (a --no-cache build): a fresh index reads the new file's inode.
  const other = new CacheIndex(root);
  await other.put(r, { replace: true });
  assert.notEqual(other.inodeOf(r.key), written);
  assert.equal(idx.readWithInode(r.key)?.ino, other.inodeOf(r.key));
  assert.equal(idx.inodeOf(r.key), other.inodeOf(r.key), 'what this process read last');
  // No temp file is left beside the records or the gc roots.
  assert.deepEqual(
    readdirSync(idx.recordsDir).filter((f) => f.startsWith('.tmp-')),
    [],
  );
  assert.deepEqual(
    readdirSync(path.join(root, 'gc-roots')).filter((f) => f.startsWith('.tmp-')),
    [],
  );
});

test('content memos: written and read back, a damaged or absent one reads as none, no temp file left', async () => {
  const root = storeRoot();
  const idx = new CacheIndex(root);
  const key = sha256('chain + sources');
  assert.equal(await idx.getMemo(key), undefined, 'absent (and no cache directory yet)');
  await idx.putMemo(key, sha256('content'));
  assert.equal(await idx.getMemo(key), sha256('content'));
  const dir = path.join(idx.dir, 'content');
  assert.deepEqual(readdirSync(dir), [digestHex(key)], 'only the memo: its temp file was renamed');
  // Written again (a concurrent build): the same answer.
  await idx.putMemo(key, sha256('content'));
  assert.equal(await idx.getMemo(key), sha256('content'));
  // A crash's empty or cut-short file: no digest in it, so none (the paths are hashed again).
  writeFileSync(path.join(dir, digestHex(key)), '');
  assert.equal(await idx.getMemo(key), undefined);
  writeFileSync(path.join(dir, digestHex(key)), sha256('content').slice(0, 30));
  assert.equal(await idx.getMemo(key), undefined);
});
