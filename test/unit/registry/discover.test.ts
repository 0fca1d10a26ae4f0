/**
 * How the client finds a registry's scheme, seen from the server's side: what each connection
 * opened with (a TLS ClientHello or a plain HTTP request). A loopback registry that answers plain
 * HTTP is reached without any TLS attempt; a loopback server that refuses plain HTTP (as a TLS
 * server does) still gets HTTPS tried; a loopback host with TLS settings of its own (certs.d)
 * gets HTTPS first, as before (hosts not on loopback never get the plain question first: isLoopback). And the token cache: requests that start together share one fetch.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, copyFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { RegistryClient } from '../../../src/registry/client.js';
import { TokenCache } from '../../../src/registry/auth.js';
import { closeIdleConnections } from '../../../src/registry/http.js';
import { makeCA } from '../../helpers/registry.js';

/** A raw server recording how each connection opened: 'tls' (a ClientHello), 'http' (a request line). */
async function recordingServer(
  answerHttp: (req: string) => string,
): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let first = true;
    s.on('data', (b: Buffer) => {
      if (!first) return;
      first = false;
      if (b[0] === 0x16) {
        seen.push('tls');
        s.destroy();
        return;
      }
      seen.push('http');
      s.end(answerHttp(b.toString('latin1')));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const noCerts = mkdtempSync(path.join(os.tmpdir(), 'kiln-discover-'));
after(() => {
  closeIdleConnections();
  rmSync(noCerts, { recursive: true, force: true });
});

describe('registry discovery on loopback', () => {
  test('a plain-HTTP registry is reached with one plain request, no TLS attempt', async () => {
    const srv = await recordingServer(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
    try {
      const ep = await new RegistryClient({ certsDir: noCerts }).endpoint(`127.0.0.1:${srv.port}`);
      assert.equal(ep.base.protocol, 'http:');
      assert.equal(ep.challenge, null);
      assert.deepEqual(srv.seen, ['http']);
    } finally {
      await srv.close();
    }
  });

  test("a 401 answer over plain HTTP settles it too, with the registry's challenge", async () => {
    const srv = await recordingServer(
      () =>
        'HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic realm="r"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    try {
      const ep = await new RegistryClient({ certsDir: noCerts }).endpoint(`localhost:${srv.port}`);
      assert.equal(ep.base.protocol, 'http:');
      assert.equal(ep.challenge?.scheme, 'basic');
      assert.deepEqual(srv.seen, ['http']);
    } finally {
      await srv.close();
    }
  });

  test('a server that answers plain HTTP with 400 (a TLS port) gets HTTPS tried, then plain HTTP as before', async () => {
    const srv = await recordingServer(
      () => 'HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n',
    );
    try {
      const ep = await new RegistryClient({ certsDir: noCerts, retries: 0 }).endpoint(`127.0.0.1:${srv.port}`);
      // The usual order's plain-HTTP step accepts any answer but 404 (as it always has).
      assert.equal(ep.base.protocol, 'http:');
      assert.deepEqual(srv.seen, ['http', 'tls', 'http']);
    } finally {
      await srv.close();
    }
  });

  test('a loopback registry with a certs.d directory of its own is asked over HTTPS first', async () => {
    const srv = await recordingServer(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
    const certs = mkdtempSync(path.join(os.tmpdir(), 'kiln-discover-certs-'));
    try {
      const ca = makeCA(path.join(certs, 'ca'));
      mkdirSync(path.join(certs, `127.0.0.1:${srv.port}`));
      copyFileSync(ca.caCert, path.join(certs, `127.0.0.1:${srv.port}`, 'ca.crt'));
      const ep = await new RegistryClient({ certsDir: certs, retries: 0 }).endpoint(`127.0.0.1:${srv.port}`);
      assert.equal(ep.base.protocol, 'http:');
      assert.deepEqual(srv.seen, ['tls', 'http']);
    } finally {
      await srv.close();
      rmSync(certs, { recursive: true, force: true });
    }
  });
});

describe('TokenCache', () => {
  test('requests that start together share one token fetch; a later one after expiry fetches again', async () => {
    let fetches = 0;
    const server = http.createServer((req, res) => {
      fetches++;
      // Slow enough that both requests are waiting on it.
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ token: `t${fetches}`, expires_in: 60 }));
      }, 50);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const realm = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
      const cache = new TokenCache();
      const req = {
        challenge: { scheme: 'bearer' as const, realm, service: 's' },
        scopes: ['repository:a:pull'],
        registry: 'r',
      };
      const [a, b, c] = await Promise.all([cache.get(req), cache.get(req), cache.get(req)]);
      assert.equal(fetches, 1);
      assert.deepEqual([a, b, c], ['t1', 't1', 't1']);
      cache.forget(req);
      assert.equal(await cache.get(req), 't2');
      assert.equal(fetches, 2);
    } finally {
      closeIdleConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
