// StageScope.argValue: the one place an ARG's effective value is computed (planner, engine, cache key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StageScope, platformArgs } from '../../../src/plan/scope.js';

const scope = (
  globals: [string, string | undefined][] = [],
  buildArgs: [string, string][] = [],
  env: [string, string][] = [],
) => new StageScope(new Map(globals), new Map(buildArgs), platformArgs('linux/arm64', 'linux/amd64'), env);

test('argValue: --build-arg, then default, then global, then automatic, else unset', () => {
  assert.equal(scope([['A', 'g']], [['A', 'b']]).argValue('A', 'd'), 'b');
  assert.equal(scope([['A', 'g']]).argValue('A', 'd'), 'd');
  assert.equal(scope([['A', 'g']]).argValue('A', undefined), 'g');
  assert.equal(scope([['TARGETARCH', undefined]]).argValue('TARGETARCH', undefined), 'arm64');
  assert.equal(scope().argValue('A', undefined), undefined);
});

test('argValue: a default a --build-arg overrides is never expanded; nothing is declared', () => {
  const s = scope([], [['A', 'b']]);
  let called = false;
  assert.equal(
    s.argValue('A', () => ((called = true), 'd')),
    'b',
  );
  assert.equal(called, false);
  assert.equal(s.has('A'), false);
});

test('declareArg returns the value it declares; a bare ARG does not hide an ENV of the same name', () => {
  const s = scope([], [], [['X', 'env']]);
  assert.equal(s.declareArg('X', undefined), undefined);
  assert.equal(s.lookup('X'), 'env');
  assert.equal(
    s.declareArg('Y', () => `${s.lookup('X')}-y`),
    'env-y',
  );
  assert.deepEqual(s.runEnv(), [
    ['X', 'env'],
    ['Y', 'env-y'],
  ]);
});
