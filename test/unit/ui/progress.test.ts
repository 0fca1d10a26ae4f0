/** The build progress displays (tty, plain, json, quiet) fed scripted event sequences. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { BuildEvent } from '../../../src/engine/events.js';
import {
  progressDisplay,
  progressError,
  resolveProgressMode,
  isProgressMode,
  renderFrame,
  TtyProgress,
  PlainRenderer,
  JsonRenderer,
  ProgressModel,
} from '../../../src/ui/progress/index.js';
import { PlainProgress } from '../../../src/ui/progress/plain.js';
import { JsonProgress } from '../../../src/ui/progress/json.js';
import { displayWidth } from '../../../src/ui/text.js';
import { KilnError } from '../../../src/util/errors.js';
import {
  clock,
  emulate,
  failureScript,
  FakeTerm,
  IMAGE_ID,
  MANIFEST,
  SGR,
  successScript,
  T0,
  type Script,
} from './script.js';

/** Feed a script to a tty view, drawing a frame after each event (as the 100 ms timer would). */
function runTty(
  script: Script,
  term: FakeTerm,
  opts: { color?: boolean; error?: string; upTo?: number } = {},
): { view: TtyProgress; frames: string[][] } {
  const c = clock();
  const view = new TtyProgress(term, { now: c.now, color: opts.color ?? false, timer: false });
  const frames: string[][] = [];
  for (const [ms, e] of script) {
    if (opts.upTo !== undefined && ms > opts.upTo) break;
    c.set(ms);
    view.onEvent(e);
    view.draw();
    frames.push(renderFrame(view.model, { now: c.now(), width: term.columns, height: term.rows }));
  }
  return { view, frames };
}

describe('tty view', () => {
  test("stages and steps with numbers, states, times and the running step's last lines; parallel stages together", () => {
    const term = new FakeTerm(100, 50);
    const { frames } = runTty(successScript(), term, { upTo: 80 });
    const text = frames[frames.length - 1]!.join('\n');
    // Both stages run at once and show together, each with its running step and its output.
    assert.match(text, /\[\+\] Building 0\.1s \(0\/4\)/);
    assert.match(text, /=> \[stage 1\/3 builder\] FROM registry\.test\/base:1 +running +0\.1s/);
    assert.match(text, /=> \[builder 1\/2\] RUN make all +running +0\.0s/);
    assert.match(text, /=> => # cc -c b\.c/);
    assert.match(text, /=> => # warning: red/, 'escape sequences of the output are removed');
    assert.match(text, /=> \[stage 2\/3 tools\] FROM scratch +running/);
    assert.match(text, /=> \[tools 1\/1\] RUN fetch-tools … +running +0\.1s/);
    assert.match(text, /=> => # fetching 100%/, 'a carriage-return progress bar shows its last state');
    assert.doesNotMatch(text, /fetching 55%/);
    assert.match(text, /=> \[builder 2\/2\] COPY src \/src +waiting/);
    assert.match(text, /=> \[stage 3\/3\] FROM builder +waiting/, 'a base stage is named');
    assert.match(text, /! 1 warning \(shown at the end\)/);
    // While the base is pulled, the pull shows under its stage.
    const pulling = frames[4]!.join('\n');
    assert.match(pulling, /=> => pulling registry\.test\/base:1 500\.0kB \/ 2\.00MB \(0\/1 layers\)/);
    assert.doesNotMatch(text, /pulling/, 'a finished pull leaves the view');
  });

  test('final frame: every step DONE/CACHED with its time, warnings, and the summary; cursor shown last', () => {
    const term = new FakeTerm(120, 50);
    const { view } = runTty(successScript(), term);
    view.finish();
    const screen = emulate(term.out, term.columns);
    const text = screen.lines.join('\n');
    assert.match(text, /\[\+\] Building 1\.6s \(4\/4\) FINISHED/);
    assert.match(text, /=> \[builder 1\/2\] RUN make all +done +1\.4s/);
    assert.match(text, /=> CACHED \[builder 2\/2\] COPY src \/src +CACHED/);
    assert.match(text, /=> \[tools 1\/1\] RUN fetch-tools … +done +0\.1s/);
    assert.match(text, /=> \[stage-2 1\/1\] COPY --from=tools \/t \/t +done +0\.1s/);
    assert.match(text, /WARNING: Dockerfile:1: FROM uses a mutable tag/);
    assert.match(
      text,
      /=> \[stage 1\/3 builder\] FROM registry\.test\/base:1 +done +1\.5s\n => => pulled registry\.test\/base:1 2\.00MB +done +0\.0s\n/,
    );
    assert.ok(text.includes(`\nBuilt ${IMAGE_ID} in 1.6s: 3 layers, 12.3MB\n  manifest ${MANIFEST}`), text);
    assert.doesNotMatch(text, /running|waiting/);
    assert.equal(screen.cursorVisible, true);
    assert.ok(term.out.startsWith('\x1b[?25l'), 'the cursor is hidden while drawing');
    assert.ok(term.out.endsWith('\x1b[?25h'), 'and shown again at the very end');
    assert.equal(term.listeners(), 0, 'the resize listener is removed');
  });

  test('frames overwrite each other in place: the screen holds exactly the last frame', () => {
    const term = new FakeTerm(90, 60);
    const { view } = runTty(successScript(), term, { upTo: 1300 });
    const expected = renderFrame(view.model, { now: T0 + 1300, width: 90, height: 60 });
    assert.deepEqual(emulate(term.out, 90).lines, expected);
    // The next frame is shorter (output lines go when the step ends): nothing stale remains.
    view.onEvent({ type: 'step-done', stage: 0, step: 1, ms: 1450 });
    view.draw();
    const shorter = renderFrame(view.model, { now: T0 + 1300, width: 90, height: 60 });
    assert.ok(shorter.length < expected.length);
    assert.deepEqual(emulate(term.out, 90).lines, shorter);
  });

  test('redraws only when drawn (the timer throttles): events alone write nothing', () => {
    const term = new FakeTerm(80, 24);
    const c = clock();
    const view = new TtyProgress(term, { now: c.now, timer: false });
    for (const [, e] of successScript().slice(0, 10)) view.onEvent(e);
    assert.equal(term.out, '\x1b[?25l');
    view.draw();
    const once = term.out.length;
    assert.ok(once > 10);
    view.finish();
  });

  test('a narrow terminal: no line reaches the last column; a short one: the frame fits', () => {
    for (const width of [60, 40, 30, 20, 12]) {
      const term = new FakeTerm(width, 10);
      const { frames, view } = runTty(successScript(), term, { color: true, upTo: 1300 });
      for (const f of frames) {
        assert.ok(f.length <= 9, `height 10: ${f.length} lines`);
        for (const l of f)
          assert.ok(displayWidth(l.replace(SGR, '')) <= width - 1, `width ${width}: ${JSON.stringify(l)}`);
      }
      view.finish();
      assert.ok(term.out.endsWith('\x1b[?25h'));
    }
    // Cut to fit, the running steps stay in view.
    const term = new FakeTerm(80, 8);
    const { frames } = runTty(successScript(), term, { upTo: 80 });
    const last = frames[frames.length - 1]!.join('\n');
    assert.match(last, /\[builder 1\/2\] RUN make all/);
    assert.match(last, /\[tools 1\/1\] RUN fetch-tools/);
  });

  test("a failed build: ERROR, the failing step's output whole, cursor shown", () => {
    const term = new FakeTerm(80, 24);
    const { view } = runTty(failureScript(), term);
    view.finish('RUN failed with exit code 2: ./configure');
    const text = emulate(term.out, 80).lines.join('\n');
    assert.match(text, /\[\+\] Building 0\.1s \(0\/2\) ERROR/);
    assert.match(text, /=> \[stage-0 1\/2\] RUN \.\/configure +ERROR +0\.1s/);
    assert.match(text, /=> => # checking for cc\.\.\. no\n => => # configure: error: no C compiler/);
    assert.doesNotMatch(text, /RUN make|waiting/, 'steps never started are left out');
    assert.ok(term.out.endsWith('\x1b[?25h'));
  });

  test('interrupted while steps run: they end as ERROR, not running; finish twice is harmless', () => {
    const term = new FakeTerm(80, 24);
    const { view } = runTty(successScript(), term, { upTo: 80 });
    view.finish('build interrupted');
    const after = term.out.length;
    view.finish();
    view.onEvent({ type: 'step-done', stage: 0, step: 1, ms: 5 });
    view.draw();
    assert.equal(term.out.length, after, 'nothing is drawn after the end');
    const text = emulate(term.out, 80).lines.join('\n');
    assert.doesNotMatch(text, /running/);
    assert.match(text, /\[builder 1\/2\] RUN make all +ERROR/);
  });

  test('colours only when asked', () => {
    const plain = new FakeTerm(80, 24);
    runTty(successScript(), plain).view.finish();
    assert.doesNotMatch(plain.out, /\x1b\[3\dm/);
    const colored = new FakeTerm(80, 24);
    runTty(successScript(), colored, { color: true }).view.finish();
    assert.match(colored.out, /\x1b\[34m => \[builder 1\/2\] RUN make all/);
  });
});

function plainLines(script: Script): string[] {
  const r = new PlainRenderer(T0);
  return script.flatMap(([ms, e]) => r.lines(e, T0 + ms));
}

describe('plain', () => {
  test('one line per event, output prefixed by the step id and its time, CACHED and DONE', () => {
    assert.deepEqual(plainLines(successScript()), [
      'WARNING: Dockerfile:1: FROM uses a mutable tag',
      '#1 [stage 1/3 builder] FROM registry.test/base:1',
      '#2 [stage 2/3 tools] FROM scratch',
      '#1 pulling registry.test/base:1',
      '#1 111111111111 500.0kB / 2.00MB',
      '#2 DONE 0.0s',
      '#3 [tools 1/1] RUN fetch-tools …',
      '#1 111111111111 2.00MB / 2.00MB done',
      '#1 pulled registry.test/base:1 (2.00MB) in 0.0s',
      '#1 DONE 0.0s',
      '#4 [builder 1/2] RUN make all',
      '#4 0.020 cc -c a.c',
      '#4 0.020 cc -c b.c',
      '#4 0.025 warning: red',
      '#3 0.050 fetching 100%',
      '#3 DONE 0.1s',
      '#4 1.250 cc -o app a.o b.o',
      '#4 1.450 linking',
      '#4 DONE 1.4s',
      '#5 [builder 2/2] COPY src /src',
      '#5 CACHED',
      '#6 [stage 3/3] FROM builder',
      '#6 DONE 0.0s',
      '#7 [stage-2 1/1] COPY --from=tools /t /t',
      '#7 DONE 0.1s',
      `#8 writing image ${IMAGE_ID} done`,
      `Built ${IMAGE_ID} in 1.6s: 3 layers, 12.3MB (manifest ${MANIFEST})`,
    ]);
  });

  test('a failing step: its output, then ERROR with the exit code', () => {
    assert.deepEqual(plainLines(failureScript()), [
      '#1 [stage 1/1] FROM debian',
      '#1 DONE 0.0s',
      '#2 [stage-0 1/2] RUN ./configure',
      '#2 0.098 checking for cc... no',
      '#2 0.118 configure: error: no C compiler',
      '#2 ERROR: exit code 2',
    ]);
  });

  test("the summary line: the image's size as docker counts it, and its compressed size when its layers are compressed", () => {
    const r = new PlainRenderer(T0);
    const plain = r.lines(
      { type: 'done', imageId: IMAGE_ID, manifestDigest: MANIFEST, ms: 1650, layers: 3, size: 194_534_963 },
      T0,
    );
    assert.match(plain.at(-1)!, /: 3 layers, 194\.5MB \(manifest /);
    const gz = r.lines(
      {
        type: 'done',
        imageId: IMAGE_ID,
        manifestDigest: MANIFEST,
        ms: 1650,
        layers: 3,
        size: 194_534_963,
        compressedSize: 67_900_000,
      },
      T0,
    );
    assert.match(gz.at(-1)!, /: 3 layers, 194\.5MB \(67\.9MB compressed\) \(manifest /);
  });

  test('no escape sequences or control characters reach the log', () => {
    const r = new PlainRenderer(T0);
    const lines = [
      ...r.lines({ type: 'stage-start', stage: 0, base: 'x' }, T0),
      ...r.lines({ type: 'step-start', stage: 0, step: 1, total: 1, text: 'RUN x', line: 2 }, T0),
      ...r.lines(
        {
          type: 'step-output',
          stage: 0,
          step: 1,
          stream: 'stdout',
          data: Buffer.from('\x1b]0;title\x07\x1b[1;32mok\x1b[0m\tcol\x00\x08\n'),
        },
        T0,
      ),
    ];
    assert.equal(lines.at(-1), '#2 0.000 ok      col');
    for (const l of lines) assert.doesNotMatch(l, /[\x00-\x08\x0b-\x1f\x7f]/);
  });

  test('PlainProgress writes whole lines and nothing after finish', () => {
    const sink = new FakeTerm(80, 24);
    const c = clock();
    const p = new PlainProgress(sink, c.now);
    for (const [ms, e] of failureScript()) {
      c.set(ms);
      p.onEvent(e);
    }
    p.finish();
    p.onEvent({ type: 'warning', message: 'late' });
    assert.ok(sink.out.endsWith('#2 ERROR: exit code 2\n'));
    assert.doesNotMatch(sink.out, /late/);
  });
});

describe('json', () => {
  test('one object per line, every event with v, time and type; output bytes as text', () => {
    const r = new JsonRenderer();
    const lines = successScript().flatMap(([ms, e]) => r.lines(e, T0 + ms));
    const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const o of objs) {
      assert.equal(o.v, 1);
      assert.equal(typeof o.time, 'number');
      assert.equal(typeof o.type, 'string');
    }
    assert.deepEqual(
      objs.map((o) => o.type),
      successScript().map(([, e]) => e.type),
    );
    const output = objs
      .filter((o) => o.type === 'step-output' && o.stage === 0)
      .map((o) => o.data)
      .join('');
    assert.equal(output, 'cc -c a.c\ncc -c b.c\nwarning: \x1b[31mred\x1b[0m\ncc -o app a.o b.o\nlinking');
    const done = objs.at(-1)!;
    assert.deepEqual(done, {
      v: 1,
      time: T0 + 1650,
      type: 'done',
      imageId: IMAGE_ID,
      manifestDigest: MANIFEST,
      ms: 1650,
      layers: 3,
      size: 12_345_678,
    });
    assert.deepEqual(
      objs.find((o) => o.type === 'step-done' && o.stage === 0 && o.step === 1),
      { v: 1, time: T0 + 1500, type: 'step-done', stage: 0, step: 1, ms: 1450 },
    );
  });

  test('a UTF-8 character split between two chunks stays whole; bad bytes become U+FFFD; a cut end is flushed', () => {
    const r = new JsonRenderer();
    const euro = Buffer.from('€'); // e2 82 ac
    const ev = (data: Buffer): BuildEvent => ({ type: 'step-output', stage: 0, step: 1, stream: 'stdout', data });
    const a = r.lines(ev(Buffer.concat([Buffer.from('x'), euro.subarray(0, 2)])), T0);
    const b = r.lines(ev(Buffer.concat([euro.subarray(2), Buffer.from([0xff, 0x0a])])), T0);
    const c = r.lines(ev(euro.subarray(0, 1)), T0);
    const d = r.lines({ type: 'step-done', stage: 0, step: 1, ms: 1 }, T0);
    const data = [...a, ...b, ...c, ...d].map((l) => JSON.parse(l) as { type: string; data?: string });
    assert.deepEqual(
      data.map((o) => o.data ?? o.type),
      ['x', '€\ufffd\n', '\ufffd', 'step-done'],
    );
  });

  test('a failed build ends with an error line; nothing after it', () => {
    const sink = new FakeTerm(80, 24);
    const c = clock();
    const p = new JsonProgress(sink, c.now);
    for (const [ms, e] of failureScript()) {
      c.set(ms);
      p.onEvent(e);
    }
    const err = new KilnError(
      'BUILD',
      'RUN failed with exit code 2: ./configure',
      { file: 'Dockerfile', line: 2, source: 'RUN ./configure' },
      { hint: 'read the output above' },
    );
    p.finish(progressError(err));
    p.finish(progressError(err));
    p.onEvent({ type: 'warning', message: 'late' });
    const objs = sink.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(objs.at(-2), {
      v: 1,
      time: T0 + 120,
      type: 'step-error',
      stage: 0,
      step: 1,
      ms: 118,
      message: 'RUN failed with exit code 2: ./configure',
      exitCode: 2,
    });
    assert.deepEqual(objs.at(-1), {
      v: 1,
      time: T0 + 120,
      type: 'error',
      message: 'RUN failed with exit code 2: ./configure',
      code: 'BUILD',
      file: 'Dockerfile',
      line: 2,
      hint: 'read the output above',
    });
  });
});

describe('modes', () => {
  test('auto is tty on a terminal (not TERM=dumb), plain otherwise', () => {
    assert.equal(resolveProgressMode('auto', { isTTY: true }, {}), 'tty');
    assert.equal(resolveProgressMode('auto', { isTTY: true }, { TERM: 'dumb' }), 'plain');
    assert.equal(resolveProgressMode('auto', { isTTY: false }, {}), 'plain');
    assert.equal(resolveProgressMode('auto', {}, {}), 'plain');
    assert.equal(resolveProgressMode('json', { isTTY: true }, {}), 'json');
    assert.ok(isProgressMode('quiet') && !isProgressMode('rawjson'));
  });

  test('quiet writes nothing; every display writes only to its stream', () => {
    for (const mode of ['quiet', 'plain', 'json', 'tty'] as const) {
      const term = new FakeTerm(80, 24);
      const c = clock();
      const d = progressDisplay(mode, term, { now: c.now, env: {} });
      for (const [ms, e] of failureScript()) {
        c.set(ms);
        d.onEvent(e);
      }
      d.finish({ message: 'failed' });
      if (mode === 'quiet') assert.equal(term.out, '');
      else assert.ok(term.out.length > 0, mode);
      if (mode === 'tty') assert.ok(term.out.endsWith('\x1b[?25h'));
    }
  });

  test("the model: ONBUILD triggers of an external base grow a stage's steps, plan texts move down", () => {
    const m = new ProgressModel(T0);
    m.apply({ type: 'plan', target: 0, stages: [{ stage: 0, base: 'img', steps: [{ text: 'RUN a', line: 2 }] }] }, T0);
    m.apply({ type: 'stage-start', stage: 0, base: 'img' }, T0);
    m.apply({ type: 'step-start', stage: 0, step: 1, total: 2, text: 'COPY . /app', line: 1 }, T0);
    const steps = m.stages.get('0')!.steps;
    assert.deepEqual(
      steps.map((s) => [s.text, s.state]),
      [
        ['COPY . /app', 'running'],
        ['RUN a', 'waiting'],
      ],
    );
  });
});
