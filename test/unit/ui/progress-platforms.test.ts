/**
 * Progress of a multi-platform build: each platform's build has its own stages (the same numbers),
 * and their events interleave. Every stage and step line names its platform (buildx's
 * `[linux/arm64 builder 1/1]`), and a line of output carries its own platform's step id.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { BuildEvent } from '../../../src/engine/events.js';
import type { PlatformEvent } from '../../../src/engine/multi-platform.js';
import { PlainRenderer, ProgressModel, renderFrame, TtyProgress } from '../../../src/ui/progress/index.js';
import { clock, emulate, FakeTerm, IMAGE_ID, MANIFEST, T0, type Script } from './script.js';

const AMD = 'linux/amd64';
const ARM = 'linux/arm64';
const L_AMD = 'sha256:' + 'a1'.repeat(32);
const L_ARM = 'sha256:' + 'b2'.repeat(32);
const ARM_IMAGE = 'sha256:' + 'e5'.repeat(32);
const WARNING = 'Dockerfile:1: FROM uses a mutable tag';

/** An event of one platform's build, as buildPlatforms passes it on. */
function of(platform: string, e: BuildEvent): BuildEvent {
  const tagged: PlatformEvent = { ...e, platform };
  return tagged;
}

const out = (platform: string, stage: number, step: number, s: string): BuildEvent =>
  of(platform, { type: 'step-output', stage, step, stream: 'stdout', data: Buffer.from(s) });

/**
 * `FROM registry.test/base:1 AS builder` + `RUN make`, then `FROM scratch` + `COPY --from=builder`,
 * for linux/amd64 and linux/arm64 at once: their events interleave, arm64's RUN ends first.
 */
function twoPlatformScript(): Script {
  const plan = (p: string): BuildEvent =>
    of(p, {
      type: 'plan',
      target: 1,
      stages: [
        { stage: 0, name: 'builder', base: 'registry.test/base:1', steps: [{ text: 'RUN make', line: 2 }] },
        { stage: 1, base: 'scratch', steps: [{ text: 'COPY --from=builder /app /app', line: 4 }] },
      ],
    });
  const s: Script = [
    [0, plan(AMD)],
    [0, of(AMD, { type: 'warning', message: WARNING })],
    [0, plan(ARM)],
    [0, of(ARM, { type: 'warning', message: WARNING })],
  ];
  for (const p of [AMD, ARM])
    s.push([1, of(p, { type: 'stage-start', stage: 0, name: 'builder', base: 'registry.test/base:1', platform: p })]);
  s.push(
    [5, of(AMD, { type: 'pull', ref: 'registry.test/base:1', layer: L_AMD, current: 10, total: 1000, done: false })],
    [6, of(ARM, { type: 'pull', ref: 'registry.test/base:1', layer: L_ARM, current: 20, total: 2000, done: false })],
    [8, of(ARM, { type: 'pull', ref: 'registry.test/base:1', layer: L_ARM, current: 2000, total: 2000, done: true })],
    [8, of(ARM, { type: 'pull', ref: 'registry.test/base:1', current: 2000, total: 2000, done: true })],
    [9, of(ARM, { type: 'step-start', stage: 0, step: 1, total: 1, text: 'RUN make', line: 2 })],
    [10, out(ARM, 0, 1, 'arm: cc\n')],
    [11, of(AMD, { type: 'pull', ref: 'registry.test/base:1', layer: L_AMD, current: 1000, total: 1000, done: true })],
    [11, of(AMD, { type: 'pull', ref: 'registry.test/base:1', current: 1000, total: 1000, done: true })],
    [12, of(AMD, { type: 'step-start', stage: 0, step: 1, total: 1, text: 'RUN make', line: 2 })],
    [13, out(AMD, 0, 1, 'amd: cc\n')],
    [14, out(ARM, 0, 1, 'arm: ld\n')],
    [20, of(ARM, { type: 'step-done', stage: 0, step: 1, ms: 11 })],
    [20, of(ARM, { type: 'stage-done', stage: 0, ms: 19 })],
    [21, of(ARM, { type: 'stage-start', stage: 1, base: 'scratch', platform: ARM })],
    [22, out(AMD, 0, 1, 'amd: ld\n')],
    [22, of(ARM, { type: 'step-start', stage: 1, step: 1, total: 1, text: 'COPY --from=builder /app /app', line: 4 })],
    [25, of(ARM, { type: 'step-done', stage: 1, step: 1, ms: 3 })],
    [25, of(ARM, { type: 'stage-done', stage: 1, ms: 4 })],
    [26, of(ARM, { type: 'done', imageId: ARM_IMAGE, manifestDigest: MANIFEST, ms: 26, layers: 2, size: 2000 })],
    [30, of(AMD, { type: 'step-done', stage: 0, step: 1, ms: 18 })],
    [30, of(AMD, { type: 'stage-done', stage: 0, ms: 29 })],
    [31, of(AMD, { type: 'stage-start', stage: 1, base: 'scratch', platform: AMD })],
    [32, of(AMD, { type: 'step-start', stage: 1, step: 1, total: 1, text: 'COPY --from=builder /app /app', line: 4 })],
    [33, of(AMD, { type: 'step-cached', stage: 1, step: 1 })],
    [33, of(AMD, { type: 'step-done', stage: 1, step: 1, ms: 1 })],
    [33, of(AMD, { type: 'stage-done', stage: 1, ms: 2 })],
    [40, of(AMD, { type: 'done', imageId: IMAGE_ID, manifestDigest: MANIFEST, ms: 40, layers: 2, size: 1000 })],
  );
  return s;
}

describe('multi-platform progress', () => {
  test('plain: every stage and step line names its platform; output lines carry their own step id', () => {
    const r = new PlainRenderer(T0);
    const lines = twoPlatformScript().flatMap(([ms, e]) => r.lines(e, T0 + ms));
    assert.deepEqual(lines, [
      `WARNING: ${WARNING}`,
      '#1 [linux/amd64 stage 1/2 builder] FROM registry.test/base:1',
      '#2 [linux/arm64 stage 1/2 builder] FROM registry.test/base:1',
      '#1 pulling registry.test/base:1',
      '#1 a1a1a1a1a1a1 10B / 1.00kB',
      '#2 pulling registry.test/base:1',
      '#2 b2b2b2b2b2b2 20B / 2.00kB',
      '#2 b2b2b2b2b2b2 2.00kB / 2.00kB done',
      '#2 pulled registry.test/base:1 (2.00kB) in 0.0s',
      '#2 DONE 0.0s',
      '#3 [linux/arm64 builder 1/1] RUN make',
      '#3 0.001 arm: cc',
      '#1 a1a1a1a1a1a1 1.00kB / 1.00kB done',
      '#1 pulled registry.test/base:1 (1.00kB) in 0.0s',
      '#1 DONE 0.0s',
      '#4 [linux/amd64 builder 1/1] RUN make',
      '#4 0.001 amd: cc',
      '#3 0.005 arm: ld',
      '#3 DONE 0.0s',
      '#5 [linux/arm64 stage 2/2] FROM scratch',
      '#4 0.010 amd: ld',
      '#5 DONE 0.0s',
      '#6 [linux/arm64 stage-1 1/1] COPY --from=builder /app /app',
      '#6 DONE 0.0s',
      `#7 [linux/arm64] writing image ${ARM_IMAGE} done`,
      `Built ${ARM_IMAGE} (linux/arm64) in 0.0s: 2 layers, 2.00kB (manifest ${MANIFEST})`,
      '#4 DONE 0.0s',
      '#8 [linux/amd64 stage 2/2] FROM scratch',
      '#8 DONE 0.0s',
      '#9 [linux/amd64 stage-1 1/1] COPY --from=builder /app /app',
      '#9 CACHED',
      `#10 [linux/amd64] writing image ${IMAGE_ID} done`,
      `Built ${IMAGE_ID} (linux/amd64) in 0.0s: 2 layers, 1.00kB (manifest ${MANIFEST})`,
    ]);
  });

  test('the model keeps each platform its stages: same numbers, own steps, positions and counts', () => {
    const m = new ProgressModel(T0);
    for (const [ms, e] of twoPlatformScript()) m.apply(e, T0 + ms);
    assert.deepEqual(
      [...m.stages.values()].map((s) => [m.stageHeader(s), m.stageLabel(s), s.state, s.steps.map((st) => st.tail)]),
      [
        ['linux/amd64 stage 1/2 builder', 'linux/amd64 builder', 'done', [['amd: cc', 'amd: ld']]],
        ['linux/amd64 stage 2/2', 'linux/amd64 stage-1', 'done', [[]]],
        ['linux/arm64 stage 1/2 builder', 'linux/arm64 builder', 'done', [['arm: cc', 'arm: ld']]],
        ['linux/arm64 stage 2/2', 'linux/arm64 stage-1', 'done', [[]]],
      ],
    );
    assert.deepEqual(m.counts(), { finished: 4, total: 4 });
    assert.equal(m.pulls.size, 2, "each platform's pull of the base is its own");
    assert.deepEqual(m.warnings, [WARNING], "a warning of every platform's build is one");
    assert.deepEqual(
      m.summaries.map((x) => [x.platform, x.imageId]),
      [
        [ARM, ARM_IMAGE],
        [AMD, IMAGE_ID],
      ],
    );
    assert.equal(m.end, T0 + 40, 'the build ends with the last platform');
  });

  test("tty: each platform's stages and steps under their own platform, a running step's output under it", () => {
    const c = clock();
    const term = new FakeTerm(100, 40);
    const view = new TtyProgress(term, { now: c.now, color: false, timer: false });
    for (const [ms, e] of twoPlatformScript()) {
      c.set(ms);
      view.onEvent(e);
      view.draw();
      if (ms === 30) {
        // One platform's image is made: the other's build goes on, the clock too.
        assert.equal(view.model.end, undefined);
        assert.match(renderFrame(view.model, { now: c.now(), width: 100 })[0]!, /^\[\+\] Building 0\.0s \(3\/4\)$/);
      }
      if (ms === 14) {
        // Both RUNs running: each shows its own platform's output.
        const text = renderFrame(view.model, { now: c.now(), width: 100, height: 40 }).join('\n');
        assert.match(text, /=> \[linux\/amd64 stage 1\/2 builder\] FROM registry\.test\/base:1 +running/);
        assert.match(text, /=> \[linux\/amd64 builder 1\/1\] RUN make +running[^\n]*\n => => # amd: cc\n =>/);
        assert.match(
          text,
          /=> \[linux\/arm64 builder 1\/1\] RUN make +running[^\n]*\n => => # arm: cc\n => => # arm: ld/,
        );
        assert.match(text, /=> \[linux\/arm64 stage 2\/2\] FROM scratch +waiting/);
      }
    }
    view.finish();
    const screen = emulate(term.out, term.columns).lines.join('\n');
    assert.match(screen, /^\[\+\] Building 0\.0s \(4\/4\) FINISHED$/m);
    assert.equal(screen.match(/WARNING: /g)?.length, 1);
    assert.match(
      screen,
      new RegExp(
        `=> \\[linux/arm64\\] writing image sha256:e5e5[^\n]* +done *\nBuilt ${ARM_IMAGE} \\(linux/arm64\\) in`,
      ),
    );
    assert.match(
      screen,
      new RegExp(
        `=> \\[linux/amd64\\] writing image sha256:abab[^\n]* +done *\nBuilt ${IMAGE_ID} \\(linux/amd64\\) in`,
      ),
    );
    for (const [p, copy] of [
      [AMD, 'CACHED '],
      [ARM, ''],
    ])
      assert.match(
        screen,
        new RegExp(
          [
            ` => \\[${p} stage 1/2 builder\\] FROM registry\\.test/base:1 +done[^\\n]*\\n => => pulled registry\\.test/base:1 ${p === AMD ? '1\\.00kB' : '2\\.00kB'} +done`,
            ` => \\[${p} builder 1/1\\] RUN make +done`,
            ` => \\[${p} stage 2/2\\] FROM scratch +done`,
            ` => ${copy}\\[${p} stage-1 1/1\\] COPY --from=builder /app /app`,
          ].join('[^\\n]*\\n'),
        ),
      );
  });

  test('a single-platform build looks as before: no platform, though its stage-start names the stage platform', () => {
    const r = new PlainRenderer(T0);
    const script: Script = [
      [0, { type: 'plan', target: 0, stages: [{ stage: 0, base: 'img', steps: [{ text: 'RUN a', line: 2 }] }] }],
      [1, { type: 'stage-start', stage: 0, base: 'img', platform: ARM, emulated: true }],
      [2, { type: 'step-start', stage: 0, step: 1, total: 1, text: 'RUN a', line: 2, emulated: ARM }],
      [3, { type: 'step-done', stage: 0, step: 1, ms: 1 }],
      [4, { type: 'done', imageId: IMAGE_ID, manifestDigest: MANIFEST, ms: 4, layers: 1, size: 10 }],
    ];
    const lines = script.flatMap(([ms, e]) => r.lines(e, T0 + ms));
    assert.deepEqual(lines.slice(0, 5), [
      '#1 [stage 1/1] FROM img',
      '#1 DONE 0.0s',
      '#2 [stage-0 1/1] RUN a',
      '#2 DONE 0.0s',
      `#3 writing image ${IMAGE_ID} done`,
    ]);
  });
});
