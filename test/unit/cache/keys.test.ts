import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  instructionForKey,
  stateId,
  stepKey,
  timelessConfig,
  type StepKeyInput,
  type StepState,
} from '../../../src/cache/keys.js';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { chainId, sha256, type Digest } from '../../../src/util/digest.js';

const d = (s: string): Digest => sha256(s);

function state(over: Partial<StepState> = {}): StepState {
  return {
    config: {
      created: '2024-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: [d('l1')] },
      history: [{ created: '2024-01-01T00:00:00Z', created_by: 'RUN x', comment: 'buildkit.dockerfile.v0' }],
    },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('b1'), size: 10 }],
    cmdSet: false,
    shell: ['/bin/sh', '-c'],
    ...over,
  };
}

test('stateId ignores timestamps and how layers are compressed, sees everything else', () => {
  const a = state();
  const b = structuredClone(a);
  b.config.created = '2030-05-05T00:00:00Z';
  b.config.history![0]!.created = '2030-05-05T00:00:00Z';
  assert.equal(stateId(a), stateId(b));
  // The same layer as a plain tar (a local build) and gzipped (a registry cache's record).
  const plain = structuredClone(a);
  plain.layers[0] = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d('l1'), size: 40 };
  assert.equal(stateId(plain), stateId(a));
  const changes: ((s: StepState) => void)[] = [
    (s) => (s.config.config!.Env = ['PATH=/usr/bin']),
    (s) => (s.config.history![0]!.created_by = 'RUN y'),
    (s) => (s.config.rootfs.diff_ids = [d('l2')]),
    (s) => (s.cmdSet = true),
    (s) => (s.shell = ['/bin/bash', '-c']),
    (s) => (s.config.config!.User = 'app'),
  ];
  for (const change of changes) {
    const c = structuredClone(a);
    change(c);
    assert.notEqual(stateId(c), stateId(a), String(change));
  }
});

test('timelessConfig drops only created fields', () => {
  const t = timelessConfig(state().config);
  assert.equal(t.created, undefined);
  assert.deepEqual(t.history, [{ created_by: 'RUN x', comment: 'buildkit.dockerfile.v0' }]);
  assert.deepEqual(t.config, { Env: ['PATH=/bin'] });
});

test('chainId is the OCI chain id', () => {
  assert.equal(chainId([]), '');
  assert.equal(chainId([d('a')]), d('a'));
  assert.equal(chainId([d('a'), d('b')]), sha256(`${d('a')} ${d('b')}`));
});

test('instruction keys ignore positions and spelling of the line, not its meaning', () => {
  const a = parseDockerfile('FROM x\nRUN echo hi\n', { file: 'a' }).instructions[1]!;
  const b = parseDockerfile('FROM x\n\n\n# comment\nRUN   echo hi\n', { file: 'b' }).instructions[1]!;
  const c = parseDockerfile('FROM x\nRUN echo ho\n', { file: 'c' }).instructions[1]!;
  assert.deepEqual(instructionForKey(a), instructionForKey(b));
  assert.notDeepEqual(instructionForKey(a), instructionForKey(c));
  const json = JSON.stringify(
    instructionForKey(parseDockerfile('FROM x\nCOPY --chown=1:1 a b\n', { file: 'd' }).instructions[1]!),
  );
  assert.ok(!json.includes('"line"') && !json.includes('original'), json);
});

test('stepKey changes with each of its inputs', () => {
  const ins = parseDockerfile('FROM x\nRUN make\n', { file: 'a' }).instructions[1]!;
  const base: StepKeyInput = {
    parent: d('p'),
    instruction: ins,
    env: [['A', '1']],
    platform: 'linux/amd64',
    network: 'host',
    inputs: [d('src')],
  };
  const k = stepKey(base);
  assert.equal(stepKey({ ...base }), k);
  const variants: StepKeyInput[] = [
    { ...base, parent: d('q') },
    { ...base, instruction: parseDockerfile('FROM x\nRUN make all\n', { file: 'a' }).instructions[1]! },
    { ...base, env: [['A', '2']] },
    { ...base, env: [] },
    { ...base, platform: 'linux/arm64' },
    { ...base, sourceDateEpoch: 0 },
    { ...base, sourceDateEpoch: 1 },
    { ...base, network: 'none' },
    { ...base, inputs: [d('src2')] },
    { ...base, inputs: [] },
  ];
  const seen = new Set([k]);
  for (const v of variants) {
    const kv = stepKey(v);
    assert.ok(!seen.has(kv), JSON.stringify(v));
    seen.add(kv);
  }
});
