import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, normalizeImageName } from '../../../src/image/reference.js';
import { KilnError } from '../../../src/util/errors.js';

const D = 'sha256:' + 'a'.repeat(64);

test('docker normalisation: docker.io and library/', () => {
  assert.equal(normalizeImageName('debian'), 'docker.io/library/debian:latest');
  assert.equal(normalizeImageName('debian:bookworm'), 'docker.io/library/debian:bookworm');
  assert.equal(normalizeImageName('library/debian'), 'docker.io/library/debian:latest');
  assert.equal(normalizeImageName('docker.io/debian'), 'docker.io/library/debian:latest');
  assert.equal(normalizeImageName('index.docker.io/library/debian:12'), 'docker.io/library/debian:12');
  assert.equal(normalizeImageName('user/app'), 'docker.io/user/app:latest');
  assert.equal(parseReference('docker.io/library/debian:12').familiar(), 'debian:12');
  assert.equal(parseReference('docker.io/user/app:1').familiar(), 'user/app:1');
});

test('registries with ports, localhost, digests', () => {
  const r = parseReference('localhost:5000/python-full:bookworm');
  assert.equal(r.registry, 'localhost:5000');
  assert.equal(r.repository, 'python-full');
  assert.equal(r.tag, 'bookworm');
  assert.equal(r.familiar(), 'localhost:5000/python-full:bookworm');
  assert.equal(parseReference('localhost/x').registry, 'localhost');
  assert.equal(parseReference('gcr.io/distroless/nodejs20-debian12').repository, 'distroless/nodejs20-debian12');
  const d = parseReference(`ghcr.io/o/r@${D}`);
  assert.equal(d.digest, D);
  assert.equal(d.tag, undefined);
  assert.equal(normalizeImageName(`ghcr.io/o/r@${D}`), `ghcr.io/o/r@${D}`);
  assert.equal(parseReference(`r:t@${D}`).toString(), `docker.io/library/r:t@${D}`);
  assert.equal(parseReference('127.0.0.1:5000/a/b/c:t').registry, '127.0.0.1:5000');
  assert.equal(parseReference('my-registry.example.com/team/app_x:v1.2-rc.1').tag, 'v1.2-rc.1');
});

test('invalid references are refused with a clear message', () => {
  for (const bad of [
    '',
    'Debian',
    'debian:',
    'debian:-x',
    'a//b',
    '-a',
    'a@sha256:abc',
    'a:b:c',
    'a b',
    'a/b_',
    `x:${'t'.repeat(129)}`,
    'host:port/x',
  ]) {
    assert.throws(
      () => parseReference(bad),
      (e: unknown) => e instanceof KilnError && e.code === 'INVALID' && /invalid reference format/.test(e.message),
      bad,
    );
  }
  assert.throws(() => parseReference('Debian'), /must be lowercase/);
  // An upper-case first component names a registry, as docker decides.
  assert.equal(parseReference('UPPER/x').registry, 'UPPER');
});
