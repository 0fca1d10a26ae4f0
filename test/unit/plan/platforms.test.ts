// stagesRunOnce: which stages of a multi-platform build are the same for every platform.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { createPlan, stagesRunOnce } from '../../../src/plan/index.js';

const once = (text: string, platforms = ['linux/amd64', 'linux/arm64'], buildArgs = new Map<string, string>()) =>
  [
    ...stagesRunOnce(
      platforms.map((platform) =>
        createPlan(parseDockerfile(text, { file: 'Dockerfile' }), {
          platform,
          buildPlatform: 'linux/amd64',
          buildArgs,
        }),
      ),
    ),
  ].sort();

test('a FROM --platform=$BUILDPLATFORM stage that reads no TARGET* runs once; a stage on the target per platform', () => {
  assert.deepEqual(once('FROM --platform=$BUILDPLATFORM img AS gen\nRUN make\nFROM img\nCOPY --from=gen /a /a'), [0]);
});

test('declaring ARG TARGETARCH makes a stage per platform (its value is in every later key), and what is based on or copies from it', () => {
  const df = [
    'FROM --platform=$BUILDPLATFORM img AS build',
    'ARG TARGETARCH',
    'RUN make $TARGETARCH',
    'FROM --platform=$BUILDPLATFORM img AS next',
    'COPY --from=build /out /out',
    'FROM build AS child',
    'FROM --platform=$BUILDPLATFORM img AS plain',
    'ARG BUILDARCH',
    'RUN echo $BUILDARCH',
    'FROM img',
    'COPY --from=next /out /a',
    'COPY --from=child /out /b',
    'COPY --from=plain /out /c',
  ].join('\n');
  assert.deepEqual(once(df), [3]);
});

test('a base named with a TARGET* global ARG differs per platform; a fixed FROM --platform runs once', () => {
  assert.deepEqual(once('FROM --platform=$BUILDPLATFORM img-$TARGETARCH AS a\nRUN x\nFROM img\nCOPY --from=a / /'), []);
  assert.deepEqual(once('FROM --platform=linux/arm64 img AS a\nRUN x\nFROM img\nCOPY --from=a / /'), [0]);
});

test('ARG TARGETARCH given a --build-arg is the same for every platform: the stage runs once', () => {
  const df =
    'FROM --platform=$BUILDPLATFORM img AS a\nARG TARGETARCH\nRUN make $TARGETARCH\nFROM img\nCOPY --from=a / /';
  assert.deepEqual(once(df, undefined, new Map([['TARGETARCH', 'riscv64']])), [0]);
});

test('one platform: every needed stage runs once; a skipped stage is not counted', () => {
  assert.deepEqual(once('FROM img AS unused\nFROM img\nRUN x', ['linux/arm64']), [1]);
});
