import { test } from 'node:test';
import assert from 'node:assert/strict';
import { proxyFor, type Env } from '../../../src/registry/proxy.js';

const via = (url: string, env: Env) => proxyFor(new URL(url), env)?.href;

test('HTTPS_PROXY for https, HTTP_PROXY for http; upper case first; a bare host:port is http://', () => {
  const env = {
    HTTPS_PROXY: 'secure.proxy:3128',
    HTTP_PROXY: 'http://plain.proxy:8080',
    https_proxy: 'http://lower:1',
  };
  assert.equal(via('https://registry.example.com/v2/', env), 'http://secure.proxy:3128/');
  assert.equal(via('http://files.example.com/a', env), 'http://plain.proxy:8080/');
  assert.equal(via('https://x.example/', { https_proxy: 'http://lower:1' }), 'http://lower:1/');
  assert.equal(
    via('http://x.example/', { HTTPS_PROXY: 'http://p:1' }),
    undefined,
    'an http URL does not take HTTPS_PROXY',
  );
  assert.equal(via('https://x.example/', {}), undefined);
  assert.equal(via('https://x.example/', { HTTPS_PROXY: '  ' }), undefined, 'empty: none');
  assert.equal(
    via('https://x.example/', { HTTPS_PROXY: '', https_proxy: 'http://lower:1' }),
    'http://lower:1/',
    'an empty upper-case one does not hide the lower-case one',
  );
});

test('localhost and loopback addresses never go through the proxy', () => {
  const env = { HTTP_PROXY: 'http://p:1', HTTPS_PROXY: 'http://p:1' };
  for (const u of ['http://localhost:5000/v2/', 'https://127.0.0.1/', 'http://127.9.9.9:80/', 'http://[::1]:5000/'])
    assert.equal(via(u, env), undefined, u);
  assert.equal(via('http://10.0.0.1/', env), 'http://p:1/');
});

test("NO_PROXY: docker's (Go's) rules for *, domains, .domains, *.domains, IPs, CIDRs and ports", () => {
  const p = (noProxy: string, url: string) => via(url, { HTTPS_PROXY: 'http://p:1', NO_PROXY: noProxy }) === undefined;
  assert.ok(p('*', 'https://anything.example/'));
  assert.ok(
    p('example.com', 'https://example.com/') && p('example.com', 'https://a.b.example.com/'),
    'a domain: itself and subdomains',
  );
  assert.ok(!p('example.com', 'https://notexample.com/'), 'not a mere suffix');
  assert.ok(
    p('.example.com', 'https://a.example.com/') && !p('.example.com', 'https://example.com/'),
    '.domain: subdomains only',
  );
  assert.ok(p('*.example.com', 'https://a.example.com/') && !p('*.example.com', 'https://example.com/'));
  assert.ok(
    p('example.com:443', 'https://example.com/') && !p('example.com:5000', 'https://example.com/'),
    'a port: that port only',
  );
  assert.ok(p('10.1.2.3', 'https://10.1.2.3:5000/') && !p('10.1.2.3', 'https://10.1.2.4/'));
  assert.ok(p('10.0.0.0/8', 'https://10.200.1.1/') && !p('10.0.0.0/8', 'https://11.0.0.1/'), 'CIDR');
  assert.ok(p('fd00::/8', 'https://[fd12::1]/'));
  assert.ok(p('a.test, example.com other.test', 'https://example.com/'), 'comma and space separated');
  assert.ok(!p('', 'https://example.com/'));
  assert.ok(
    via('https://example.com/', { HTTPS_PROXY: 'http://p:1', no_proxy: 'EXAMPLE.com' }) === undefined,
    'lower-case variable, any case',
  );
});

test('a proxy that is not http(s) or not an address is an error naming the variable', () => {
  assert.throws(
    () => via('https://x.example/', { HTTPS_PROXY: 'socks5://p:1080' }),
    /unsupported proxy scheme socks5:/,
  );
  assert.throws(
    () => via('https://x.example/', { HTTPS_PROXY: 'http://[bad' }),
    /invalid proxy address .* in HTTPS_PROXY/,
  );
  // A password in the variable never reaches a message.
  assert.throws(
    () => via('https://x.example/', { HTTPS_PROXY: 'socks5://me:secret@p:1080' }),
    (e: Error) => /socks5:\/\/\*\*\*@p:1080/.test(e.message) && !e.message.includes('secret'),
  );
  assert.throws(
    () => via('https://x.example/', { HTTPS_PROXY: 'http://me:secret@[bad' }),
    (e: Error) => !e.message.includes('secret'),
  );
});
