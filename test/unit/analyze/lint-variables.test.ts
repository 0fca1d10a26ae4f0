/**
 * UndefinedVar and InvalidBaseImagePlatform. The reference cases are BuildKit's own
 * (moby/buildkit frontend/dockerfile/dockerfile_check_test.go: testUndefinedVariable,
 * testAllTargetUnmarshal, testBaseImagePlatformMismatch; docs/rules/undefined-var.md), with the
 * base image's ENV given as the store would (alpine's is PATH only).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { lintDockerfile, type BaseImageFacts } from '../../../src/analyze/lint/index.js';
import { suggestName } from '../../../src/analyze/lint/variables.js';
import { buildChecks, checkCall } from '../../../src/analyze/lint/build-checks.js';

const ALPINE: BaseImageFacts = { env: ['PATH'], os: 'linux', architecture: 'amd64' };
const bases = new Map<string, BaseImageFacts>([
  ['alpine', ALPINE],
  ['python', { env: ['PATH', 'LANG', 'GPG_KEY', 'PYTHON_VERSION'], os: 'linux', architecture: 'amd64' }],
  ['armimg', { env: ['PATH'], os: 'linux', architecture: 'arm64', variant: 'v8' }],
]);
const undef = (text: string, baseImages: Map<string, BaseImageFacts> | undefined = bases) =>
  lintDockerfile(text, { baseImages })
    .findings.filter((f) => f.rule === 'UndefinedVar')
    .map((f) => `${f.line}: ${f.message}`);

describe('lint UndefinedVar (BuildKit testUndefinedVariable)', () => {
  test('an ARG of the base stage is in scope in the stage built on it', () => {
    assert.deepEqual(undef('FROM alpine AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n'), []);
  });
  test('RUN is not checked (its shell expands it)', () => {
    assert.deepEqual(undef('FROM alpine\nRUN echo $PATH $nope\n'), []);
  });
  test('use before the ARG: one warning on the COPY line', () => {
    assert.deepEqual(undef('FROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n'), [
      "2: Usage of undefined variable '$foo'",
    ]);
  });
  test('a typo gets the closest defined name as a hint', () => {
    assert.deepEqual(
      undef(
        'FROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n',
      ),
      ["5: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)"],
    );
    assert.deepEqual(undef('FROM alpine\nENV PATH=$PAHT:/tmp/bin\n'), [
      "2: Usage of undefined variable '$PAHT' (did you mean $PATH?)",
    ]);
  });
  test('every stage is checked (the lint request), scratch has PATH only', () => {
    assert.deepEqual(undef('FROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n'), [
      "2: Usage of undefined variable '$foo'",
      "5: Usage of undefined variable '$bar'",
    ]);
  });
  test("a name from the base image's ENV is defined (docs: ARG VERSION=$PYTHON_VERSION)", () => {
    assert.deepEqual(undef('FROM python AS base\nARG VERSION=$PYTHON_VERSION\n'), []);
    assert.deepEqual(undef('FROM alpine AS base\nARG VERSION=$foo\n'), ["2: Usage of undefined variable '$foo'"]);
  });
  test('a base image the store does not have: nothing reported for its stages', () => {
    assert.deepEqual(undef('FROM python AS base\nARG VERSION=$PYTHON_VERSION\nFROM base\nCOPY $X .\n', new Map()), []);
    assert.deepEqual(undef('FROM scratch\nCOPY $X .\n', new Map()), ["2: Usage of undefined variable '$X'"]);
  });
  test('global ARGs are not in a stage until declared there; ${X:-d} and LABEL/WORKDIR/USER are checked', () => {
    assert.deepEqual(
      undef('ARG V=1\nFROM alpine\nLABEL v=${V:-0}\nARG V\nWORKDIR /w/$V\nUSER $U\nENV A=1 B=$A\nEXPOSE $P\n'),
      [
        "3: Usage of undefined variable '$V'",
        // BuildKit's hint: any defined name at distance under 3 (V, one letter away).
        "6: Usage of undefined variable '$U' (did you mean $V?)",
        "7: Usage of undefined variable '$A' (did you mean $V?)",
        "8: Usage of undefined variable '$P' (did you mean $V?)",
      ],
    );
    assert.deepEqual(undef("FROM alpine\nCOPY a '$notvar' /x/\nCMD echo $nope\n"), []);
  });
  test('# check=skip and error=true are honoured; --call=check reports it', () => {
    assert.deepEqual(undef('# check=skip=UndefinedVar\nFROM alpine\nCOPY $foo .\n'), []);
    const r = lintDockerfile('# check=error=true\nFROM alpine\nCOPY $foo .\n', { baseImages: bases });
    const f = r.findings.find((x) => x.rule === 'UndefinedVar')!;
    assert.equal(f.level, 'error');
    assert.equal(f.url, 'https://docs.docker.com/go/dockerfile/rule/undefined-var/');
    const c = checkCall('FROM alpine\nCOPY $foo .\n', { baseImages: bases });
    assert.deepEqual(
      c.findings.map((x) => x.rule),
      ['UndefinedVar'],
    );
  });
  test('suggestions: distance under 3 only', () => {
    assert.equal(suggestName('PAHT', ['PATH', 'HOME']), 'PATH');
    assert.equal(suggestName('XYZW', ['PATH']), undefined);
  });
});

describe('lint InvalidBaseImagePlatform (BuildKit testBaseImagePlatformMismatch)', () => {
  const plat = (text: string, platform?: string) =>
    lintDockerfile(text, { baseImages: bases, platform })
      .findings.filter((f) => f.rule === 'InvalidBaseImagePlatform')
      .map((f) => `${f.line}: ${f.message}`);
  test("a base image of another platform than the build's", () => {
    assert.deepEqual(plat('FROM armimg\nENV foo=bar\n'), [
      '1: Base image armimg was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
    ]);
    assert.deepEqual(plat('FROM alpine\nENV foo=bar\n'), []);
    assert.deepEqual(plat('FROM alpine\n', 'linux/arm64'), [
      '1: Base image alpine was pulled with platform "linux/amd64", expected "linux/arm64" for current build',
    ]);
  });
  test('FROM --platform sets what is expected; no URL, as BuildKit', () => {
    assert.deepEqual(plat('FROM --platform=linux/arm64 armimg AS a\n'), []);
    const f = lintDockerfile('FROM armimg\n', { baseImages: bases }).findings.find(
      (x) => x.rule === 'InvalidBaseImagePlatform',
    )!;
    assert.equal(f.url, undefined);
    assert.equal(f.level, 'warning');
  });
});

describe("kiln build's checks: InvalidBaseImagePlatform for each target platform", () => {
  const found = (text: string, platforms: string[]) =>
    buildChecks(text, 'Dockerfile', undefined, new Map(), undefined, bases, platforms)
      .findings.filter((f) => f.rule === 'InvalidBaseImagePlatform')
      .map((f) => f.message);
  test('a single-platform base concerns the targets it does not match, once each', () => {
    assert.deepEqual(found('FROM alpine\nRUN x\n', ['linux/amd64', 'linux/arm64']), [
      'Base image alpine was pulled with platform "linux/amd64", expected "linux/arm64" for current build',
    ]);
    assert.deepEqual(found('FROM armimg\nRUN x\n', ['linux/amd64', 'linux/arm64', 'linux/riscv64']), [
      'Base image armimg was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
      'Base image armimg was pulled with platform "linux/arm64", expected "linux/riscv64" for current build',
    ]);
    assert.deepEqual(found('FROM armimg\n', ['linux/arm64']), []);
  });
});
