import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  compareDpkgVersions,
  comparePep440,
  compareSemver,
  compareApkVersions,
  normalizePep440,
  parsePep440,
} from '../../../src/analyze/versions/index.js';

/** Assert that `list` is strictly increasing under `cmp` (every pair, both directions). */
function assertAscending(cmp: (a: string, b: string) => number, list: string[]): void {
  for (let i = 0; i < list.length; i++) {
    for (let j = 0; j < list.length; j++) {
      const c = Math.sign(cmp(list[i]!, list[j]!));
      assert.equal(c, Math.sign(i - j), `${list[i]} vs ${list[j]}: got ${c}`);
    }
  }
}

describe('dpkg version order', () => {
  test('tilde sorts before everything, even the end', () => {
    assertAscending(compareDpkgVersions, ['1.0~~', '1.0~~a', '1.0~', '1.0', '1.0a', '1.0+b1', '1.0.1']);
  });
  test('epochs dominate', () => {
    assertAscending(compareDpkgVersions, ['9.9-9', '1:0.1', '1:1.2.13.dfsg-1', '2:0']);
    assert.equal(compareDpkgVersions('0:1.0', '1.0'), 0);
  });
  test('revisions and the last hyphen', () => {
    assertAscending(compareDpkgVersions, ['1.2-3', '1.2-3+deb12u1', '1.2-10', '1.2.1-1']);
    assert.ok(compareDpkgVersions('1.2-3-4', '1.2-3-10') < 0); // upstream "1.2-3", revisions 4 < 10
    assert.ok(compareDpkgVersions('3.0.11-1~deb12u2', '3.0.11-1') < 0);
    assert.ok(compareDpkgVersions('2.36-9+deb12u3', '2.36-9+deb12u10') < 0);
  });
  test('digits compare numerically, leading zeros ignored', () => {
    assert.equal(compareDpkgVersions('1.01', '1.1'), 0);
    assert.ok(compareDpkgVersions('1.9', '1.10') < 0);
  });
  test('letters before other characters', () => {
    assert.ok(compareDpkgVersions('1.0a', '1.0+') < 0);
    assert.ok(compareDpkgVersions('1.0+', '1.0.') < 0); // '+' (43) < '.' (46), both non-letters
  });
});

describe('PEP 440 order', () => {
  test('pre, post, dev releases in packaging order', () => {
    assertAscending(comparePep440, [
      '1.0.dev0',
      '1.0.dev1',
      '1.0a1.dev1',
      '1.0a1',
      '1.0a2',
      '1.0b1',
      '1.0rc1',
      '1.0rc2.dev3',
      '1.0rc2',
      '1.0',
      '1.0+local',
      '1.0.post1.dev1',
      '1.0.post1',
      '1.0.1',
      '1!0.1',
    ]);
  });
  test('normalisation', () => {
    assert.equal(comparePep440('1.0', '1.0.0'), 0);
    assert.equal(comparePep440('1.0RC1', '1.0rc1'), 0);
    assert.equal(comparePep440('1.0-1', '1.0.post1'), 0);
    assert.equal(comparePep440('1.0alpha2', '1.0a2'), 0);
    assert.equal(comparePep440('v2.0', '2.0'), 0);
    assert.equal(normalizePep440('1.0.0-Preview.3'), '1.0.0rc3');
    assert.equal(normalizePep440('1.0_post_2'), '1.0.post2');
    assert.equal(parsePep440('not a version'), undefined);
  });
  test('local versions: numbers after strings, longer after shorter', () => {
    assertAscending(comparePep440, ['1.0+abc', '1.0+abc.5', '1.0+1', '1.0+1.2']);
  });
  test('invalid versions sort first', () => {
    assert.ok(comparePep440('foo', '0.0.1') < 0);
  });
});

describe('SemVer precedence', () => {
  test('spec example', () => {
    assertAscending(compareSemver, [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.10.0',
      '2.0.0',
    ]);
  });
  test('build metadata ignored, v prefix tolerated', () => {
    assert.equal(compareSemver('1.0.0+build.5', '1.0.0'), 0);
    assert.equal(compareSemver('v1.2.3', '1.2.3'), 0);
    assert.equal(compareSemver('1.2', '1.2.0'), 0);
  });
});

describe('apk version order', () => {
  test('suffixes and revisions', () => {
    assertAscending(compareApkVersions, [
      '1.0_alpha1',
      '1.0_beta',
      '1.0_rc1',
      '1.0',
      '1.0-r1',
      '1.0-r2',
      '1.0_p1',
      '1.0a',
      '1.0.1',
      '1.1',
    ]);
  });
  test('leading zeros make fractions', () => {
    assert.ok(compareApkVersions('1.01', '1.1') < 0);
    assert.ok(compareApkVersions('1.36.1-r0', '1.36.1-r31') < 0);
  });
});
