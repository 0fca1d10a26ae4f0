/**
 * HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as docker's daemon honours them: ADD of an http and an
 * https URL and a registry pull go through a forward proxy on 127.0.0.1 (test/helpers/proxy.ts).
 * The hosts are `*.kiln.test` names that only the proxy resolves, so a download that works went
 * through it; NO_PROXY sends them direct, and they fail.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { runKiln } from '../../helpers/kiln.js';
import { startForwardProxy, type ForwardProxy } from '../../helpers/proxy.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(
  basesUnavailable(),
  registryUnavailable(),
  spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed (apt-get install openssl)',
);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-proxy-'));
const root = path.join(work, 'store');
const kiln = (args: string[], env: NodeJS.ProcessEnv) =>
  runKiln(args, {
    root,
    env: { HTTP_PROXY: '', HTTPS_PROXY: '', NO_PROXY: '', http_proxy: '', https_proxy: '', no_proxy: '', ...env },
  });

describe('proxies from the environment', { skip }, () => {
  let proxy: ForwardProxy;
  let plain: http.Server;
  let secure: https.Server;
  let reg: Registry;
  let caFile: string;
  const body = 'through the proxy\n';

  before(async () => {
    // A certificate for files.kiln.test, trusted by kiln through NODE_EXTRA_CA_CERTS.
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'key.pem',
        '-out',
        'cert.pem',
        '-days',
        '2',
        '-subj',
        '/CN=files.kiln.test',
        '-addext',
        'subjectAltName=DNS:files.kiln.test',
      ],
      { cwd: work, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    caFile = path.join(work, 'cert.pem');
    const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url === '/hello.txt') res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      else res.writeHead(404).end();
    };
    plain = http.createServer(serve);
    secure = https.createServer({ key: readFileSync(path.join(work, 'key.pem')), cert: readFileSync(caFile) }, serve);
    await new Promise<void>((res) => plain.listen(0, '127.0.0.1', res));
    await new Promise<void>((res) => secure.listen(0, '127.0.0.1', res));
    proxy = await startForwardProxy();
    reg = await startRegistry();
    const seed = await runKiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm'], { root });
    assert.equal(seed.code, 0, seed.stderr);
    const push = await runKiln(['push', 'debian-slim:bookworm', `${reg.host}/debian-slim:bookworm`], { root });
    assert.equal(push.code, 0, push.stderr);
  });
  after(async () => {
    plain?.close();
    secure?.close();
    await proxy?.stop();
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const port = (s: http.Server | https.Server) => (s.address() as AddressInfo).port;

  test('a registry pull goes through HTTP_PROXY (and a name only the proxy knows resolves)', async () => {
    const name = `registry.kiln.test:${reg.host.split(':')[1]}`;
    // Into an empty store: the manifest, the config and the layer all come through the proxy.
    const r = await runKiln(['pull', '--insecure-registry', name, `${name}/debian-slim:bookworm`], {
      root: path.join(work, 'pulled'),
      env: { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      proxy.log.some((l) => l.startsWith(`GET http://${name}/v2/debian-slim/manifests/bookworm`)),
      proxy.log.join('\n'),
    );
    assert.ok(
      proxy.log.filter((l) => l.startsWith(`GET http://${name}/v2/debian-slim/blobs/sha256:`)).length >= 2,
      proxy.log.join('\n'),
    );
  });

  test('ADD of an http URL through HTTP_PROXY, of an https URL through HTTPS_PROXY (a CONNECT tunnel)', async () => {
    const httpUrl = `http://files.kiln.test:${port(plain)}/hello.txt`;
    const httpsUrl = `https://files.kiln.test:${port(secure)}/hello.txt`;
    const ctx = path.join(work, 'ctx');
    rmSync(ctx, { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(ctx);
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      [
        `FROM debian-slim:bookworm`,
        `ADD ${httpUrl} /plain.txt`,
        `ADD ${httpsUrl} /secure.txt`,
        'CMD ["cat", "/plain.txt", "/secure.txt"]',
        '',
      ].join('\n'),
    );
    const env = { HTTP_PROXY: proxy.url, https_proxy: proxy.url, NODE_EXTRA_CA_CERTS: caFile };
    const b = await kiln(['build', '-q', '-t', 'proxied:1', ctx], env);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(proxy.log.includes(`GET ${httpUrl}`), proxy.log.join('\n'));
    assert.ok(proxy.log.includes(`CONNECT files.kiln.test:${port(secure)}`), proxy.log.join('\n'));
    const out = await kiln(['run', 'proxied:1'], {});
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, body + body);

    // NO_PROXY sends the download direct: the name does not resolve, and the error says where.
    const direct = await kiln(['build', '--no-cache', '-q', ctx], { ...env, NO_PROXY: '.kiln.test' });
    assert.equal(direct.code, 1);
    assert.match(
      direct.stderr,
      /Dockerfile:2.*ADD http:\/\/files\.kiln\.test:\d+\/hello\.txt: .*ENOTFOUND files\.kiln\.test/,
    );
    // A proxy that is not there: the error names it.
    const gone = await kiln(['build', '--no-cache', '-q', ctx], { HTTP_PROXY: 'http://127.0.0.1:1' });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /ECONNREFUSED.*through the proxy 127\.0\.0\.1:1 from HTTP_PROXY/);
  });
});
