// docker build's sandbox flags as kiln parses them: --add-host, --shm-size, --ulimit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddHost, parseByteSize, parseUlimit } from '../../../src/cli/options.js';
import { KilnError } from '../../../src/util/errors.js';

const usage = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof KilnError && e.code === 'USAGE' && re.test(e.message));

test('--add-host NAME:IP and NAME=IP, IPv6 kept whole; host-gateway and non-addresses refused', () => {
  assert.deepEqual(parseAddHost('db:10.0.0.5'), ['db', '10.0.0.5']);
  assert.deepEqual(parseAddHost('db=10.0.0.5'), ['db', '10.0.0.5']);
  assert.deepEqual(parseAddHost('v6:::1'), ['v6', '::1']);
  assert.deepEqual(parseAddHost('v6:[2001:db8::1]'), ['v6', '2001:db8::1']);
  usage(() => parseAddHost('db'), /use NAME:IP/);
  usage(() => parseAddHost('db:not-an-ip'), /is not an IP address/);
  usage(() => parseAddHost('gw:host-gateway'), /host-gateway/);
});

test("--shm-size in docker's units (1024s)", () => {
  assert.equal(parseByteSize('64m', '--shm-size'), 64 << 20);
  assert.equal(parseByteSize('1g', '--shm-size'), 1 << 30);
  assert.equal(parseByteSize('512k', '--shm-size'), 512 << 10);
  assert.equal(parseByteSize('1048576', '--shm-size'), 1 << 20);
  assert.equal(parseByteSize('2MB', '--shm-size'), 2 << 20);
  usage(() => parseByteSize('lots', '--shm-size'), /use a size like 64m/);
  usage(() => parseByteSize('0', '--shm-size'), /more than 0/);
});

test("--ulimit NAME=SOFT[:HARD] with docker's names", () => {
  assert.deepEqual(parseUlimit('nofile=1024:2048'), { type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 });
  assert.deepEqual(parseUlimit('nproc=100'), { type: 'RLIMIT_NPROC', soft: 100, hard: 100 });
  usage(() => parseUlimit('files=1'), /unknown limit "files"/);
  usage(() => parseUlimit('nofile=2:1'), /soft limit 2 is above the hard limit 1/);
  usage(() => parseUlimit('nofile'), /use NAME=SOFT/);
});
