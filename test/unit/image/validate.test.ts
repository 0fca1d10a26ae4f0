import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImageConfig, parseManifest, parseManifestOrIndex, parseJSONText } from '../../../src/image/validate.js';
import { canonicalJSON, canonicalDigest } from '../../../src/image/canonical.js';
import { KilnError } from '../../../src/util/errors.js';

const D = 'sha256:' + 'b'.repeat(64);
const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D, size: 3 };

test('canonical JSON sorts keys and drops undefined: same value, same digest', () => {
  assert.equal(
    canonicalJSON({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }),
    '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
  );
  assert.equal(canonicalDigest({ x: 1, y: 2 }), canonicalDigest({ y: 2, x: 1 }));
});

test('manifests validate; errors name the field', () => {
  const m = parseManifest({ schemaVersion: 2, config: desc, layers: [desc], extra: 'kept' });
  assert.equal(m.layers.length, 1);
  assert.equal((m as unknown as { extra: string }).extra, 'kept');
  assert.throws(
    () => parseManifest({ schemaVersion: 2, config: desc, layers: [{ ...desc, digest: 'sha256:xyz' }] }),
    (e: unknown) => e instanceof KilnError && e.code === 'INVALID' && /layers\[0\]\.digest/.test(e.message),
  );
  assert.throws(() => parseManifest({ schemaVersion: 1 }), /schemaVersion/);
  assert.throws(
    () => parseManifest({ schemaVersion: 2, config: desc, layers: [{ ...desc, size: -1 }] }),
    /layers\[0\]\.size/,
  );
  assert.throws(
    () => parseJSONText('{nope', 'manifest'),
    (e: unknown) => e instanceof KilnError && /not JSON/.test(e.message),
  );
});

test('configs validate, docker nulls accepted', () => {
  const c = parseImageConfig({
    architecture: 'amd64',
    os: 'linux',
    config: { Env: null, Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [D] },
  });
  assert.deepEqual(c.config?.Cmd, ['sh']);
  assert.throws(
    () => parseImageConfig({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['nope'] } }),
    /rootfs\.diff_ids\[0\]/,
  );
});

test('manifest vs index by media type or shape', () => {
  assert.equal(parseManifestOrIndex({ schemaVersion: 2, manifests: [desc] }).kind, 'index');
  assert.equal(
    parseManifestOrIndex(
      { schemaVersion: 2, config: desc, layers: [] },
      'application/vnd.docker.distribution.manifest.v2+json',
    ).kind,
    'manifest',
  );
  assert.throws(() => parseManifestOrIndex({ foo: 1 }), /unsupported manifest media type/);
});
