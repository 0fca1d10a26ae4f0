import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseDescriptor,
  parseImageConfig,
  parseIndex,
  parseOwnDescriptor,
  parseOwnImageConfig,
  parseOwnIndex,
  parseOwnManifest,
  parseOwnManifestOrIndex,
  parseManifest,
  parseManifestOrIndex,
  parseJSONText,
} from '../../../src/image/validate.js';
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

// parseOwnImageConfig checks a config by hand before the schema: it must accept only what the
// schema accepts, and give what the schema gives. Every field of a full config, each replaced by
// values of every kind, with unknown fields and nulls: the two agree on each of them.
test('parseOwnImageConfig: the hand check accepts only what the schema accepts, and returns what it returns', () => {
  const full = {
    created: '2024-01-01T00:00:00Z',
    author: 'me',
    architecture: 'amd64',
    os: 'linux',
    variant: 'v8',
    extra: { kept: [1, 2] },
    config: {
      User: 'app',
      ExposedPorts: { '80/tcp': {} },
      Env: ['A=1'],
      Entrypoint: ['/bin/sh'],
      Cmd: ['-c', 'true'],
      Volumes: { '/data': {} },
      WorkingDir: '/app',
      Labels: { a: 'b' },
      StopSignal: 'SIGTERM',
      Healthcheck: { Test: ['CMD', 'true'], Interval: 5 },
      OnBuild: ['RUN true'],
      Shell: ['/bin/sh', '-c'],
      Other: 1,
    },
    rootfs: { type: 'layers', diff_ids: [D] },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'RUN x', comment: 'c', empty_layer: true, x: 1 }],
  };
  const values: unknown[] = [
    undefined,
    null,
    'text',
    '',
    0,
    1.5,
    true,
    [],
    ['a'],
    [1],
    [null],
    {},
    { k: 'v' },
    { k: {} },
    { k: 1 },
    [{}],
    D,
    'sha256:short',
    'layers',
    JSON.parse('{"__proto__": {"x": 1}}'),
  ];
  const samples: unknown[] = [full, null, [], 'x', { ...full, config: null }];
  const paths: string[][] = [];
  const walk = (v: unknown, at: string[]) => {
    if (typeof v !== 'object' || v === null) return;
    for (const [k, x] of Object.entries(v)) {
      paths.push([...at, k]);
      walk(x, [...at, k]);
    }
  };
  walk(full, []);
  for (const p of paths)
    for (const value of values) {
      const s = structuredClone(full) as Record<string, unknown>;
      let o = s;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string, unknown>;
      if (value === undefined) delete o[p.at(-1)!];
      else o[p.at(-1)!] = structuredClone(value);
      samples.push(s);
    }
  let accepted = 0;
  for (const sample of samples) {
    let schema: unknown;
    let schemaError: unknown;
    try {
      schema = parseImageConfig(structuredClone(sample));
    } catch (e) {
      schemaError = e;
    }
    let own: unknown;
    let ownError: unknown;
    try {
      own = parseOwnImageConfig(structuredClone(sample));
    } catch (e) {
      ownError = e;
    }
    const what = JSON.stringify(sample);
    if (schemaError) {
      assert.ok(
        ownError instanceof KilnError,
        `the schema refuses, so must the hand check: ${what} (${String(ownError)} / ${String(schemaError)})`,
      );
      assert.equal((ownError as Error).message, (schemaError as Error).message, what);
    } else {
      accepted++;
      assert.equal(ownError, undefined, what);
      assert.equal(canonicalJSON(own), canonicalJSON(schema), what);
    }
  }
  assert.ok(accepted > 100 && accepted < samples.length, `${accepted} of ${samples.length} accepted`);
});

/**
 * Every field of `full`, each replaced by values of every kind (or removed): `own` accepts exactly
 * what `schema` accepts, gives what it gives, and refuses with its message. Returns how many it accepted.
 */
function agreeOnVariants(
  full: object,
  schema: (json: unknown) => unknown,
  own: (json: unknown) => unknown,
  extraValues: unknown[] = [],
): { accepted: number; samples: number } {
  const values: unknown[] = [
    undefined,
    null,
    'text',
    '',
    0,
    -1,
    1.5,
    2,
    2 ** 53,
    true,
    [],
    ['a'],
    [1],
    [null],
    {},
    { k: 'v' },
    { k: {} },
    { k: 1 },
    [{}],
    D,
    'sha256:short',
    structuredClone(desc),
    [structuredClone(desc)],
    JSON.parse('{"__proto__": {"x": 1}}'),
    ...extraValues,
  ];
  const samples: unknown[] = [full, null, [], 'x'];
  const paths: string[][] = [];
  const walk = (v: unknown, at: string[]) => {
    if (typeof v !== 'object' || v === null) return;
    for (const [k, x] of Object.entries(v)) {
      paths.push([...at, k]);
      walk(x, [...at, k]);
    }
  };
  walk(full, []);
  for (const p of paths)
    for (const value of values) {
      const s = structuredClone(full) as Record<string, unknown>;
      let o = s;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string, unknown>;
      if (value === undefined) delete o[p.at(-1)!];
      else o[p.at(-1)!] = structuredClone(value);
      samples.push(s);
    }
  let accepted = 0;
  for (const sample of samples) {
    let fromSchema: unknown;
    let schemaError: unknown;
    try {
      fromSchema = schema(structuredClone(sample));
    } catch (e) {
      schemaError = e;
    }
    let fromOwn: unknown;
    let ownError: unknown;
    try {
      fromOwn = own(structuredClone(sample));
    } catch (e) {
      ownError = e;
    }
    const what = JSON.stringify(sample);
    if (schemaError) {
      assert.ok(
        ownError instanceof KilnError,
        `the schema refuses, so must the hand check: ${what} (${String(ownError)})`,
      );
      assert.equal((ownError as Error).message, (schemaError as Error).message, what);
    } else {
      accepted++;
      assert.equal(ownError, undefined, what);
      assert.equal(canonicalJSON(fromOwn), canonicalJSON(fromSchema), what);
    }
  }
  return { accepted, samples: samples.length };
}

const fullDescriptor = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: D,
  size: 3,
  urls: ['https://example.com/x'],
  annotations: { 'org.opencontainers.image.ref.name': 'x:1' },
  platform: { architecture: 'amd64', os: 'linux', 'os.version': '1', 'os.features': ['f'], variant: 'v8', x: 1 },
  artifactType: 'application/x',
  extra: { kept: [1] },
};

test('parseOwnDescriptor, parseOwnManifest, parseOwnIndex: the hand checks accept only what the schemas accept, and return what they return', () => {
  const d = agreeOnVariants(fullDescriptor, parseDescriptor, parseOwnDescriptor);
  assert.ok(d.accepted > 30 && d.accepted < d.samples, `descriptor: ${d.accepted} of ${d.samples} accepted`);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/x',
    config: { ...desc, mediaType: 'application/vnd.oci.image.config.v1+json' },
    layers: [desc, { ...desc, size: 0 }],
    subject: desc,
    annotations: { a: 'b' },
    extra: 1,
  };
  const m = agreeOnVariants(manifest, parseManifest, parseOwnManifest);
  assert.ok(m.accepted > 30 && m.accepted < m.samples, `manifest: ${m.accepted} of ${m.samples} accepted`);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [fullDescriptor, desc],
    subject: desc,
    annotations: { a: 'b' },
  };
  const i = agreeOnVariants(index, parseIndex, parseOwnIndex);
  assert.ok(i.accepted > 30 && i.accepted < i.samples, `index: ${i.accepted} of ${i.samples} accepted`);
  // Both kinds, told apart as parseManifestOrIndex tells them.
  for (const [doc, mt] of [
    [manifest, undefined],
    [index, undefined],
    [{ ...manifest, mediaType: undefined }, 'application/vnd.docker.distribution.manifest.v2+json'],
    [{ ...index, mediaType: undefined }, undefined],
  ] as const)
    assert.equal(
      canonicalJSON(parseOwnManifestOrIndex(structuredClone(doc), mt)),
      canonicalJSON(parseManifestOrIndex(structuredClone(doc), mt)),
    );
  // What passes the hand check is the caller's own document, not a copy.
  const own = structuredClone(fullDescriptor);
  assert.equal(parseOwnDescriptor(own), own);
});
