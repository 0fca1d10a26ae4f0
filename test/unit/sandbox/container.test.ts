import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerArgs } from '../../../src/sandbox/container.js';
import { parseBytes } from '../../../src/util/bytes.js';

test("containerArgs: docker run's entrypoint and command rules", () => {
  const img = { Entrypoint: ['/entry'], Cmd: ['serve'] };
  assert.deepEqual(containerArgs(img, []), ['/entry', 'serve']);
  assert.deepEqual(containerArgs(img, ['sh']), ['/entry', 'sh']);
  // --entrypoint replaces the entrypoint and drops the image's CMD; "" clears it.
  assert.deepEqual(containerArgs(img, [], '/bin/sh'), ['/bin/sh']);
  assert.deepEqual(containerArgs(img, ['-c', 'id'], '/bin/sh'), ['/bin/sh', '-c', 'id']);
  assert.deepEqual(containerArgs(img, [], ''), []);
  assert.deepEqual(containerArgs({ Entrypoint: null, Cmd: null }, []), []);
});

test("parseBytes: dive's sizes (go-humanize)", () => {
  assert.equal(parseBytes('1000'), 1000);
  assert.equal(parseBytes('20MB'), 20_000_000);
  assert.equal(parseBytes('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(parseBytes('2k'), 2000);
  assert.throws(() => parseBytes('lots'), /invalid size "lots"/);
});
