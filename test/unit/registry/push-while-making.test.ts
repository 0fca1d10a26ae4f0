/**
 * A blob uploaded while it is made (a layer compressed for a push): the upload is ended, and the
 * registry asked to take the blob under its digest, as soon as the maker says it is encoded, not
 * once the store has committed its copy. Against a minimal registry speaking the upload protocol
 * (POST, one streamed PATCH, PUT ?digest=).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { RegistryClient } from '../../../src/registry/client.js';
import { closeIdleConnections } from '../../../src/registry/http.js';
import { parseReference } from '../../../src/image/index.js';
import { Store } from '../../../src/store/store.js';
import { sha256 } from '../../../src/util/index.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'kiln-push-making-'));
after(() => {
  closeIdleConnections();
  rmSync(root, { recursive: true, force: true });
});

/** The upload protocol's three steps; `closed` resolves with the digest of the PUT that ends an upload. */
async function uploadRegistry() {
  const received: Buffer[] = [];
  let onClose: (digest: string) => void = () => undefined;
  const closed = new Promise<string>((r) => (onClose = r));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (req.method === 'GET' && url.pathname === '/v2/') return res.end('{}');
    if (req.method === 'POST' && url.pathname === '/v2/t/blobs/uploads/') {
      res.writeHead(202, { location: '/v2/t/blobs/uploads/u1', 'content-length': '0' });
      return res.end();
    }
    if (req.method === 'PATCH' && url.pathname === '/v2/t/blobs/uploads/u1') {
      req.on('data', (b: Buffer) => received.push(b));
      req.on('end', () => {
        res.writeHead(202, { location: '/v2/t/blobs/uploads/u1', 'content-length': '0' });
        res.end();
      });
      return;
    }
    if (req.method === 'PUT' && url.pathname === '/v2/t/blobs/uploads/u1') {
      req.resume();
      onClose(url.searchParams.get('digest') ?? '');
      res.writeHead(201, { 'content-length': '0' });
      return res.end();
    }
    res.writeHead(404, { 'content-length': '0' });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    received,
    closed,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test('the upload is ended once the blob is encoded, while the maker still commits', async () => {
  const reg = await uploadRegistry();
  try {
    const store = await Store.open({ root });
    const client = new RegistryClient({ retries: 0 });
    const blob = Buffer.from('a blob made while it goes up '.repeat(4000));
    const digest = sha256(blob);
    let closedBeforeCommit = false;
    const desc = await client.pushBlobWhileMaking(store, parseReference(`${reg.host}/t:x`), async (tee, encoded) => {
      for (let at = 0; at < blob.length; at += 16384) await tee(blob.subarray(at, at + 16384));
      const d = { mediaType: 'application/octet-stream', digest, size: blob.length };
      encoded(d);
      // The store's commit (fsyncs, records) stands here: the registry hears the end meanwhile.
      let timer: NodeJS.Timeout | undefined;
      closedBeforeCommit = await Promise.race([
        reg.closed.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5000))),
      ]);
      clearTimeout(timer);
      return d;
    });
    assert.equal(closedBeforeCommit, true, 'the PUT ?digest= came while the maker was still committing');
    assert.equal(await reg.closed, digest);
    assert.equal(desc.digest, digest);
    assert.deepEqual(Buffer.concat(reg.received), blob);
  } finally {
    await reg.stop();
  }
});
