/**
 * Registry auth pieces without a server: the WWW-Authenticate grammar, the login-server argument,
 * and credentials shared with docker through config.json (auths, credsStore, credHelpers with a
 * real `docker-credential-*` program on PATH).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseChallenge } from '../../../src/registry/auth.js';
import { loginServer } from '../../../src/registry/login.js';
import { eraseCredentials, getCredentials, storeCredentials } from '../../../src/registry/credentials.js';
import { KilnError } from '../../../src/util/errors.js';

describe('parseChallenge', () => {
  test('Bearer with realm, service and scope (quoted, commas inside quotes, escapes)', () => {
    assert.deepEqual(
      parseChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push"',
      ),
      {
        scheme: 'bearer',
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/debian:pull,push',
      },
    );
    assert.equal(parseChallenge('Bearer realm="a\\"b", service=plain')?.realm, 'a"b');
    assert.equal(parseChallenge('Bearer realm="a\\"b", service=plain')?.service, 'plain');
  });

  test('scheme is case-insensitive; Basic; unknown schemes and empty headers give nothing', () => {
    assert.equal(parseChallenge('basic realm="Registry Realm"')?.scheme, 'basic');
    assert.equal(parseChallenge('BEARER realm="x"')?.scheme, 'bearer');
    assert.equal(parseChallenge('Negotiate abc'), undefined);
    assert.equal(parseChallenge(''), undefined);
    assert.equal(parseChallenge(undefined), undefined);
  });
});

describe('loginServer', () => {
  test('Docker Hub names, hosts with ports, URLs and paths reduce to the registry host', () => {
    assert.equal(loginServer(undefined), 'docker.io');
    assert.equal(loginServer('index.docker.io'), 'docker.io');
    assert.equal(loginServer('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(loginServer('registry.example.com:5000'), 'registry.example.com:5000');
    assert.equal(loginServer('https://ghcr.io'), 'ghcr.io');
    assert.equal(loginServer('localhost:5000/some/repo'), 'localhost:5000');
  });

  test('an invalid address is a usage error', () => {
    assert.throws(
      () => loginServer('Bad_Host!:x'),
      (e: unknown) => e instanceof KilnError,
    );
  });
});

describe('credentials in $DOCKER_CONFIG/config.json', () => {
  let dir: string;
  const saved = { DOCKER_CONFIG: process.env.DOCKER_CONFIG, PATH: process.env.PATH };
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-creds-'));
  });
  after(() => {
    process.env.DOCKER_CONFIG = saved.DOCKER_CONFIG;
    if (saved.DOCKER_CONFIG === undefined) delete process.env.DOCKER_CONFIG;
    process.env.PATH = saved.PATH;
    rmSync(dir, { recursive: true, force: true });
  });
  const useConfig = (name: string, content?: unknown): string => {
    const d = path.join(dir, name);
    mkdirSync(d, { recursive: true });
    if (content !== undefined) writeFileSync(path.join(d, 'config.json'), JSON.stringify(content));
    process.env.DOCKER_CONFIG = d;
    return path.join(d, 'config.json');
  };

  test("store writes docker's format (base64 auth, Hub under its legacy URL, mode 0600); get and erase read it back", async () => {
    const file = useConfig('plain', {
      auths: { 'other.example:443': { auth: Buffer.from('x:y').toString('base64') } },
      currentContext: 'keep-me',
    });
    await storeCredentials('localhost:5000', { username: 'alice', password: 'pa:ss' });
    await storeCredentials('docker.io', { username: 'bob', password: 'hub' });
    const cfg = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(Buffer.from(cfg.auths['localhost:5000'].auth, 'base64').toString(), 'alice:pa:ss');
    assert.equal(Buffer.from(cfg.auths['https://index.docker.io/v1/'].auth, 'base64').toString(), 'bob:hub');
    assert.equal(cfg.currentContext, 'keep-me', 'other settings are kept');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(await getCredentials('localhost:5000'), { username: 'alice', password: 'pa:ss' });
    assert.deepEqual(await getCredentials('docker.io'), { username: 'bob', password: 'hub' });
    assert.equal(await getCredentials('nowhere.example'), undefined);
    assert.equal(await eraseCredentials('localhost:5000'), true);
    assert.equal(await eraseCredentials('localhost:5000'), false);
    assert.equal(await getCredentials('localhost:5000'), undefined);
    assert.ok(await getCredentials('other.example:443'), 'other logins untouched');
  });

  test('URL keys, username/password fields and identity tokens are understood', async () => {
    useConfig('forms', {
      auths: {
        'https://reg.example.com/v2/': { username: 'u', password: 'p' },
        'tok.example.com': { identitytoken: 'refresh-me' },
      },
    });
    assert.deepEqual(await getCredentials('reg.example.com'), { username: 'u', password: 'p' });
    assert.deepEqual(await getCredentials('tok.example.com'), {
      username: '',
      password: '',
      identityToken: 'refresh-me',
    });
  });

  test('credHelpers and credsStore run docker-credential-* programs (get, store, erase)', async () => {
    const bin = path.join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const db = path.join(dir, 'helper-db');
    mkdirSync(db);
    // A credential helper as docker defines them: action as argument, JSON over stdin/stdout.
    const helper = `#!/bin/sh
set -e
case "$1" in
  get) key=$(cat); f="${db}/$(printf %s "$key" | tr '/:' '__')"; if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) input=$(cat); key=$(printf %s "$input" | sed 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/'); printf %s "$input" > "${db}/$(printf %s "$key" | tr '/:' '__')" ;;
  erase) key=$(cat); rm -f "${db}/$(printf %s "$key" | tr '/:' '__')" ;;
esac
`;
    writeFileSync(path.join(bin, 'docker-credential-kilntest'), helper);
    chmodSync(path.join(bin, 'docker-credential-kilntest'), 0o755);
    process.env.PATH = `${bin}:${saved.PATH}`;
    const file = useConfig('helpers', { credHelpers: { 'helped.example': 'kilntest' } });
    await storeCredentials('helped.example', { username: 'carol', password: 's3cret' });
    const cfg = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(cfg.auths?.['helped.example']?.auth, undefined, 'the secret is not written to config.json');
    assert.deepEqual(await getCredentials('helped.example'), { username: 'carol', password: 's3cret' });
    assert.equal(await getCredentials('unhelped.example'), undefined, 'registries without a helper use auths');
    assert.equal(await eraseCredentials('helped.example'), true);
    assert.equal(await getCredentials('helped.example'), undefined);

    useConfig('store', { credsStore: 'kilntest' });
    await storeCredentials('any.example', { username: 'dave', password: 'pw' });
    assert.deepEqual(await getCredentials('any.example'), { username: 'dave', password: 'pw' });

    useConfig('missing', { credsStore: 'nosuchhelper' });
    await assert.rejects(
      getCredentials('any.example'),
      /docker-credential-nosuchhelper could not be run: not found on PATH/,
    );
  });

  test('a broken config.json is a clear error naming the file', async () => {
    const d = path.join(dir, 'broken');
    mkdirSync(d);
    writeFileSync(path.join(d, 'config.json'), '{ not json');
    process.env.DOCKER_CONFIG = d;
    await assert.rejects(
      getCredentials('x.example'),
      (e: unknown) => e instanceof KilnError && e.message.includes(path.join(d, 'config.json')),
    );
  });
});
