/**
 * ADD of an http(s) URL, served from 127.0.0.1 by the test: the file named after the URL (or the
 * destination), mode 0600, mtime from Last-Modified (the epoch without it), --checksum verified,
 * --chown/--chmod honoured, remote archives not unpacked; errors name the URL and the line.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { basesUnavailable } from '../../helpers/bases.js';
import { savedImage, Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-addurl-');

const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';
const files: Record<string, { body: Buffer; lastModified?: string }> = {
  '/files/hello.txt': { body: Buffer.from('hello from the web\n'), lastModified: LAST_MODIFIED },
  '/files/plain.bin': { body: Buffer.from('no date\n') },
  '/files/archive.tar.gz': { body: gzipSync(Buffer.alloc(1024)), lastModified: LAST_MODIFIED },
  '/redirect': { body: Buffer.alloc(0) },
};
let server: http.Server;
let base = '';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/redirect') {
      res.writeHead(302, { location: '/files/hello.txt' }).end();
      return;
    }
    const f = files[req.url ?? ''];
    if (!f) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-length': String(f.body.length),
      ...(f.lastModified ? { 'last-modified': f.lastModified } : {}),
    });
    res.end(f.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server?.close();
  rmSync(ws.dir, { recursive: true, force: true });
});

describe('ADD <url>', { skip }, () => {
  before(() => ws.importDebian());

  test("downloads with docker's naming, mode 0600, Last-Modified mtime, --checksum, --chown/--chmod; archives stay packed", async () => {
    const hello = files['/files/hello.txt']!.body;
    const ctx = ws.context('add-url', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        `ADD --checksum=${sha(hello)} ${base}/files/hello.txt /dl/`,
        `ADD ${base}/files/hello.txt /renamed.txt`,
        `ADD ${base}/files/plain.bin /dl/`,
        `ADD --chown=1:2 --chmod=0644 ${base}/files/hello.txt /owned.txt`,
        `ADD ${base}/files/archive.tar.gz /arch/`,
        `ADD ${base}/redirect /redirected.txt`,
      ].join('\n'),
    });
    await ws.build(ctx, 'addurl:1');
    const img = await savedImage(ws, 'addurl:1');
    const e = (p: string) => {
      const x = img.fs.get(p);
      assert.ok(x, `${p} is in the image`);
      return x;
    };
    const lm = Date.parse(LAST_MODIFIED) / 1000;
    const dl = e('/dl/hello.txt');
    assert.equal(dl.type, 'file');
    assert.equal(dl.sha256, createHash('sha256').update(hello).digest('hex'));
    assert.equal(dl.mode & 0o7777, 0o600);
    assert.deepEqual([dl.uid, dl.gid], [0, 0]);
    assert.equal(dl.mtime, lm);
    assert.equal(e('/renamed.txt').size, hello.length);
    assert.equal(e('/dl/plain.bin').mtime, 0, 'no Last-Modified: the epoch, as BuildKit');
    const owned = e('/owned.txt');
    assert.deepEqual([owned.uid, owned.gid, owned.mode & 0o7777], [1, 2, 0o644]);
    const arch = e('/arch/archive.tar.gz');
    assert.equal(arch.type, 'file', 'a remote archive is not unpacked');
    assert.equal(arch.size, files['/files/archive.tar.gz']!.body.length);
    assert.equal(e('/redirected.txt').sha256, dl.sha256, 'redirects are followed');
    const hist = (img.config.history ?? []).map((h) => h.created_by);
    assert.ok(hist.includes(`ADD ${base}/files/hello.txt /renamed.txt # buildkit`), hist.join('\n'));
  });

  test('a --checksum mismatch and a missing file are errors naming the URL and the line', async () => {
    const bad = ws.context('add-url-bad', {
      Dockerfile: `FROM debian-slim:bookworm\nADD --checksum=sha256:${'0'.repeat(64)} ${base}/files/hello.txt /x\n`,
    });
    const r = await ws.kiln(['build', bad]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `Dockerfile:2.*ADD ${base.replace(/[.]/g, '\\.')}/files/hello\\.txt: checksum mismatch: got ${sha(files['/files/hello.txt']!.body)}, expected sha256:0{64}`,
      ),
    );
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
    const missing = ws.context('add-url-404', {
      Dockerfile: `FROM debian-slim:bookworm\nRUN true\nADD ${base}/files/nope.txt /x\n`,
    });
    const m = await ws.kiln(['build', missing]);
    assert.notEqual(m.code, 0);
    assert.match(
      m.stderr,
      /Dockerfile:3.*ADD http:\/\/127\.0\.0\.1:\d+\/files\/nope\.txt: the server answered HTTP 404/,
    );
  });
});
