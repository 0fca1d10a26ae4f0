import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkOutputSpec,
  isFilesOutput,
  layerCompression,
  parseOutputSpec,
  type OutputSpec,
} from '../../../src/engine/outputs.js';
import { KilnError } from '../../../src/util/errors.js';

const usage = (re: RegExp) => (e: unknown) => e instanceof KilnError && e.code === 'USAGE' && re.test(e.message);

test('parseOutputSpec: each type and its options', () => {
  assert.deepEqual(parseOutputSpec('type=store'), { type: 'store' });
  assert.deepEqual(parseOutputSpec('type=oci,dest=/tmp/x.tar'), { type: 'oci', dest: '/tmp/x.tar' });
  assert.deepEqual(parseOutputSpec('type=docker,dest=a.tar,name=app:1'), {
    type: 'docker',
    dest: 'a.tar',
    name: 'app:1',
  });
  assert.deepEqual(parseOutputSpec('type=registry,name=reg/app'), { type: 'registry', name: 'reg/app' });
  assert.deepEqual(parseOutputSpec('type=registry', ['reg/app']), { type: 'registry' });
  assert.deepEqual(parseOutputSpec('type=local,dest=out'), { type: 'local', dest: 'out' });
  assert.deepEqual(parseOutputSpec('type=tar,dest=out.tar'), { type: 'tar', dest: 'out.tar' });
  assert.deepEqual(parseOutputSpec('type=oci,dest=x,compression=zstd,compression-level=12,force-compression=true'), {
    type: 'oci',
    dest: 'x',
    compression: 'zstd',
    compressionLevel: 12,
    forceCompression: true,
  });
  assert.deepEqual(parseOutputSpec('type=registry,name=r/a,compression=uncompressed'), {
    type: 'registry',
    name: 'r/a',
    compression: 'none',
  });
});

test("parseOutputSpec: docker's shorthands and type=image", () => {
  assert.deepEqual(parseOutputSpec('out'), { type: 'local', dest: 'out' });
  assert.deepEqual(parseOutputSpec('-'), { type: 'tar', dest: '-' });
  assert.deepEqual(parseOutputSpec('type=image'), { type: 'store' });
  assert.deepEqual(parseOutputSpec('type=image,push=true,name=r/a'), { type: 'registry', name: 'r/a' });
});

test('parseOutputSpec: refuses what it cannot write, with what to give', () => {
  assert.throws(() => parseOutputSpec('type=cacheonly'), usage(/unsupported --output "type=cacheonly"/));
  assert.throws(() => parseOutputSpec('type=local,dest=-'), usage(/needs a directory/));
  assert.throws(() => parseOutputSpec('type=oci'), usage(/type=oci needs dest=FILE/));
  assert.throws(() => parseOutputSpec('type=local'), usage(/type=local needs dest=DIR/));
  assert.throws(() => parseOutputSpec('type=registry'), usage(/needs a name/));
  assert.throws(() => parseOutputSpec('type=oci,dest=x,compression=lz4'), usage(/unknown compression "lz4"/));
  assert.throws(() => parseOutputSpec('type=oci,dest=x,force-compression=yes'), usage(/invalid force-compression/));
  assert.throws(() => parseOutputSpec('type=oci,dest=x,compression-level=12'), usage(/compression-level .* gzip/));
  assert.throws(() => parseOutputSpec('type=store,compression-level=3'), usage(/uncompressed layers/));
});

test('layer compression: the store and files plain, what leaves the machine gzip unless told', () => {
  const c = (s: OutputSpec) => layerCompression(s);
  assert.equal(c({ type: 'store' }), 'none');
  assert.equal(c({ type: 'local', dest: 'd' }), 'none');
  assert.equal(c({ type: 'registry', name: 'r/a' }), 'gzip');
  assert.equal(c({ type: 'oci', dest: 'x' }), 'gzip');
  assert.equal(c({ type: 'docker', dest: 'x', compression: 'zstd' }), 'zstd');
  assert.ok(isFilesOutput({ type: 'tar', dest: 'x' }));
  assert.ok(!isFilesOutput({ type: 'docker', dest: 'x' }));
});

test("checkOutputSpec: a library user's spec is checked as the CLI's", () => {
  checkOutputSpec({ type: 'oci', dest: '/tmp/x.tar' });
  assert.throws(() => checkOutputSpec({ type: 'oci', dest: '' }), usage(/needs dest=FILE/));
  assert.throws(() => checkOutputSpec({ type: 'registry' }), usage(/needs a name/));
  checkOutputSpec({ type: 'registry' }, ['r/a']);
  assert.throws(() => checkOutputSpec({ type: 'bogus' } as unknown as OutputSpec), usage(/unknown output type/));
  assert.throws(
    () => checkOutputSpec({ type: 'oci', dest: 'x', compression: 'gzip', compressionLevel: 0 }),
    usage(/compression-level/),
  );
});
