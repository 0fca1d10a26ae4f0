import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchPlatform, normalizePlatform, parsePlatform, platformsOf } from '../../../src/image/platform.js';
import type { Descriptor, Platform } from '../../../src/image/types.js';
import { sha256 } from '../../../src/util/digest.js';

function desc(platform: Platform | undefined, n: number): Descriptor {
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: sha256(String(n)),
    size: n,
    ...(platform ? { platform } : {}),
  };
}

const index = [
  desc({ os: 'linux', architecture: 'amd64' }, 1),
  desc({ os: 'linux', architecture: 'arm', variant: 'v6' }, 2),
  desc({ os: 'linux', architecture: 'arm', variant: 'v7' }, 3),
  desc({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 4),
  desc({ os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' }, 5),
  desc(undefined, 6),
];

test('normalizePlatform: containerd defaults (arm64 → v8, arm → v7, amd64/v1 → no variant)', () => {
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm64' }), {
    os: 'linux',
    architecture: 'arm64',
    variant: 'v8',
  });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'aarch64', variant: '8' }), {
    os: 'linux',
    architecture: 'arm64',
    variant: 'v8',
  });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm' }).variant, 'v7');
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm', variant: '6' }).variant, 'v6');
  assert.equal(normalizePlatform({ os: 'linux', architecture: 'amd64', variant: 'v1' }).variant, undefined);
  assert.equal(normalizePlatform({ os: 'linux', architecture: 'x86_64' }).architecture, 'amd64');
});

test('matchPlatform picks as docker pull does', () => {
  const pick = (p: string) => matchPlatform(index, parsePlatform(p))?.size;
  assert.equal(pick('linux/amd64'), 1);
  assert.equal(pick('linux/arm64'), 4);
  assert.equal(pick('linux/arm64/v8'), 4);
  // linux/arm is arm/v7 (not the first arm entry, v6).
  assert.equal(pick('linux/arm'), 3);
  assert.equal(pick('linux/arm/v6'), 2);
  assert.equal(pick('windows/amd64'), 5);
  assert.equal(pick('linux/s390x'), undefined);
  assert.equal(pick('linux/arm64/v9'), undefined);
  // An arm64 image that names no variant is v8.
  assert.equal(
    matchPlatform([desc({ os: 'linux', architecture: 'arm64' }, 7)], parsePlatform('linux/arm64/v8'))?.size,
    7,
  );
  // arm/v7 wanted, only v5 and v6 there: the highest lower one.
  const old = [desc({ os: 'linux', architecture: 'arm', variant: 'v5' }, 8), index[1]!];
  assert.equal(matchPlatform(old, parsePlatform('linux/arm/v7'))?.size, 2);
  assert.equal(matchPlatform(old, parsePlatform('linux/arm/v5'))?.size, 8);
  assert.equal(platformsOf(index.slice(3)), 'linux/arm64/v8, windows/amd64, unknown');
});
