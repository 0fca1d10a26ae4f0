import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { MultiSearch } from '../../../src/util/byte-search.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type CacheRecord } from '../../../src/cache/index.js';
import { canonicalJSON } from '../../../src/image/index.js';
import { Store } from '../../../src/store/index.js';
import { type Digest } from '../../../src/util/index.js';
import {
  base64Inner,
  describeHit,
  MIN_SECRET_BYTES,
  searchForSecrets,
  secretPatterns,
} from '../../../src/engine/secret-proof.js';

/** Which encodings of the secret the patterns find in `hay`. */
function found(secret: string | Buffer, hay: Buffer | string): string[] {
  const { patterns } = secretPatterns([{ name: 's', bytes: Buffer.from(secret) }]);
  const m = new MultiSearch(patterns.map((p) => p.bytes));
  return [...new Set(m.findAll(Buffer.from(hay)).map((x) => patterns[x.pattern]!.encoding))].sort();
}

const secret = `tok-${randomBytes(9).toString('hex')}`;

test('base64Inner: the characters that depend on the value alone, for each alignment', () => {
  const v = Buffer.from('abcdefgh');
  for (const before of ['', 'x', 'xy', 'xyz', 'wxyz']) {
    const whole = Buffer.from(before + 'abcdefgh' + 'tail').toString('base64');
    assert.ok(whole.includes(base64Inner(v, before.length % 3)), `prefix "${before}"`);
  }
});

test('the value is found as-is and in every encoding a RUN might write, at any offset in the file', () => {
  for (const pre of ['', 'a', 'ab', 'abc']) {
    const raw = Buffer.from(pre + secret + '\n');
    assert.deepEqual(found(secret, raw), ['as-is']);
    assert.deepEqual(found(secret, raw.toString('base64')), ['base64'], `base64 after "${pre}"`);
    assert.ok(found(secret, raw.toString('base64url')).length > 0, `base64url after "${pre}"`);
    assert.deepEqual(found(secret, raw.toString('hex')), ['hex']);
    // Pieces of only digits are the same in both cases.
    assert.ok(found(secret, raw.toString('hex').toUpperCase()).includes('HEX'));
  }
});

test('the output of base64(1) (76-column lines) and xxd -p (60) of a long value is found', () => {
  const long = randomBytes(120).toString('hex');
  const b64 = execFileSync('base64', { input: `${long}\n` });
  assert.ok(b64.includes(10), 'wrapped');
  assert.deepEqual(found(long, b64), ['base64']);
  const hex = execFileSync('xxd', ['-p'], { input: `${long}\n` });
  assert.deepEqual(found(long, hex), ['hex']);
});

test('URL-encoded and JSON-escaped forms of a value with special characters', () => {
  const s = 'p@ss/w0rd "quoted"\tand+more';
  assert.deepEqual(found(s, `https://u:${encodeURIComponent(s)}@host/`), ['url-encoded']);
  assert.deepEqual(found(s, JSON.stringify({ password: s })), ['json-escaped']);
});

test("a secret file's trailing newline does not hide a value written without it", () => {
  assert.deepEqual(found(`${secret}\n`, `TOKEN=${secret}`), ['as-is']);
});

test('a long value (a private key) is searched by windows of its middle, not its generic ends', () => {
  const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${randomBytes(300).toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  assert.deepEqual(found(key, `copied: ${key}`), ['as-is']);
  const other = `-----BEGIN OPENSSH PRIVATE KEY-----\n${randomBytes(300).toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  assert.deepEqual(found(key, other), [], 'another key of the same kind is no hit');
  const { patterns } = secretPatterns([{ name: 'k', bytes: Buffer.from(key) }]);
  assert.ok(
    patterns.every((p) => p.bytes.length <= 64),
    'patterns stay short',
  );
});

test(`values shorter than ${MIN_SECRET_BYTES} bytes are not searched (they would match by chance)`, () => {
  const r = secretPatterns([
    { name: 'short', bytes: Buffer.from('abc\n') },
    { name: 'ok', bytes: Buffer.from('abcdefgh') },
  ]);
  assert.deepEqual(
    r.tooShort.map((v) => v.name),
    ['short'],
  );
  assert.ok(r.patterns.every((p) => p.secret === 'ok'));
});

test('unrelated data does not match', () => {
  assert.deepEqual(found(secret, randomBytes(100000)), []);
});

test('TarWalker names the file an offset of a layer lies in: data, long names (PAX), xattrs, any chunking', async () => {
  const { tarEntries } = await import('../../../src/layer/write.js');
  const { TarWalker } = await import('../../../src/engine/secret-proof.js');
  const longDir = `deep/${'d'.repeat(150)}`;
  const marker = (s: string) => Buffer.from(`<<${s}>>`);
  const entries = [
    { path: 'etc', type: 'directory' as const, mode: 0o755, uid: 0, gid: 0, mtime: 1 },
    {
      path: 'etc/a',
      type: 'file' as const,
      content: Buffer.concat([randomBytes(700), marker('a')]),
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 1,
    },
    { path: `${longDir}/b`, type: 'file' as const, content: marker('b'), mode: 0o644, uid: 0, gid: 0, mtime: 1 },
    {
      path: 'x',
      type: 'file' as const,
      content: Buffer.alloc(0),
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 1,
      xattrs: { 'user.k': marker('x') },
    },
    {
      path: 'z',
      type: 'file' as const,
      content: Buffer.concat([marker('z'), randomBytes(5000)]),
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 1,
    },
  ];
  const parts: Buffer[] = [];
  for await (const c of tarEntries(entries)) parts.push(c as Buffer);
  const tar = Buffer.concat(parts);
  const want: Record<string, string> = { a: '/etc/a', b: `/${longDir}/b`, x: '/x', z: '/z' };
  for (const size of [1, 100, 512, 513, 4096, tar.length]) {
    const w = new TarWalker();
    for (let i = 0; i < tar.length; i += size) w.push(tar.subarray(i, i + size));
    for (const [k, p] of Object.entries(want)) {
      const at = tar.indexOf(marker(k));
      assert.ok(at > 0, k);
      assert.equal(w.pathAt(at), p, `${k} with chunks of ${size}`);
    }
  }
});

test('an exported cache config is searched as serialized: the record, its stage and step, the field, any encoding', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'kiln-proof-'));
  try {
    const store = await Store.open({ root: path.join(work, 'store') });
    const quoted = `q"${secret}`; // a value with a quote: JSON-escaped in the document, found as such
    const rec = (key: string, env: string[], labels: Record<string, string>, history: string[]): CacheRecord => ({
      v: 1,
      key: `sha256:${key.repeat(64)}` as Digest,
      created: '2024-01-01T00:00:00Z',
      state: {
        config: {
          architecture: 'amd64',
          os: 'linux',
          config: { Env: env, Labels: labels },
          rootfs: { type: 'layers', diff_ids: [] },
          history: history.map((created_by) => ({ created_by, empty_layer: true })),
        },
        layers: [],
        cmdSet: false,
        shell: ['/bin/sh', '-c'],
      },
    });
    const records = [
      rec('a', ['PATH=/bin'], {}, ['ARG TOKEN']),
      rec('b', ['PATH=/bin', `TOKEN_ENV=${quoted}`], {}, ['ARG TOKEN', `ENV TOKEN_ENV=${quoted}`]),
      rec('c', ['PATH=/bin', `TOKEN_ENV=${quoted}`], { enc: Buffer.from(quoted).toString('base64') }, [
        'ARG TOKEN',
        `ENV TOKEN_ENV=${quoted}`,
        'LABEL enc=…',
      ]),
      rec('d', ['PATH=/bin'], {}, ['RUN true']),
    ];
    const bytes = Buffer.from(canonicalJSON({ kilnCache: 1, records, memos: {} }));
    const step = (line: number) => ({ file: 'Dockerfile', line, text: `step ${line}` });
    const { patterns } = secretPatterns([{ name: 'secret "t"', bytes: Buffer.from(quoted) }]);
    const hits = await searchForSecrets(
      store,
      patterns,
      [],
      [],
      [
        {
          name: 'reg/cache:max',
          bytes,
          records: records.map((record, i) => ({ record, stage: i < 3 ? 'builder' : '1', step: step(i + 2) })),
        },
      ],
    );
    assert.deepEqual(hits.map(describeHit).sort(), [
      'secret "t" (base64) in the exported cache config (reg/cache:max): label enc of the record of stage builder, Dockerfile:4 step 4',
      'secret "t" (json-escaped) in the exported cache config (reg/cache:max): env TOKEN_ENV of the record of stage builder, Dockerfile:3 step 3',
      'secret "t" (json-escaped) in the exported cache config (reg/cache:max): history line 2 of the record of stage builder, Dockerfile:3 step 3',
    ]);
    // The same records without the value: nothing.
    const clean = [records[0]!, records[3]!];
    const none = await searchForSecrets(
      store,
      patterns,
      [],
      [],
      [
        {
          name: 'reg/cache:max',
          bytes: Buffer.from(canonicalJSON({ kilnCache: 1, records: clean, memos: {} })),
          records: clean.map((record) => ({ record, stage: 'builder' })),
        },
      ],
    );
    assert.deepEqual(none, []);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
