/**
 * Scripted build event sequences for the progress display tests (what the engine emits for a
 * two-stage build with a pull, parallel stages, output, a cached step), a fake clock, a fake
 * terminal, and a small terminal emulator to see what a sequence of frames leaves on the screen.
 */
import type { BuildEvent } from '../../../src/engine/events.js';

export const T0 = 1_800_000_000_000;

/** [ms since T0, event] */
export type Script = [number, BuildEvent][];

const out = (stage: number, step: number, s: string | Buffer, stream: 'stdout' | 'stderr' = 'stdout'): BuildEvent => ({
  type: 'step-output',
  stage,
  step,
  stream,
  data: Buffer.isBuffer(s) ? s : Buffer.from(s),
});

export const IMAGE_ID = 'sha256:' + 'ab'.repeat(32);
export const MANIFEST = 'sha256:' + 'cd'.repeat(32);
const LAYER1 = 'sha256:' + '11'.repeat(32);
const LAYER2 = 'sha256:' + '22'.repeat(32);

/**
 * Stage 0 `builder` (FROM a pulled image; 2 steps: a RUN with output, a cached COPY) and stage 1
 * `tools` (FROM scratch; 1 RUN) built at once, then stage 2 (FROM builder; COPY --from=tools).
 */
export function successScript(): Script {
  return [
    [
      0,
      {
        type: 'plan',
        target: 2,
        stages: [
          {
            stage: 0,
            name: 'builder',
            base: 'registry.test/base:1',
            steps: [
              { text: 'RUN make all', line: 2 },
              { text: 'COPY src /src', line: 3 },
            ],
          },
          { stage: 1, name: 'tools', base: 'scratch', steps: [{ text: 'RUN fetch-tools \\\n  --all', line: 5 }] },
          { stage: 2, base: 'stage 0', steps: [{ text: 'COPY --from=tools /t /t', line: 8 }] },
        ],
      },
    ],
    [0, { type: 'warning', message: 'Dockerfile:1: FROM uses a mutable tag' }],
    [1, { type: 'stage-start', stage: 0, name: 'builder', base: 'registry.test/base:1' }],
    [1, { type: 'stage-start', stage: 1, name: 'tools', base: 'scratch' }],
    [20, { type: 'pull', ref: 'registry.test/base:1', layer: LAYER1, current: 500_000, total: 2_000_000, done: false }],
    [30, { type: 'step-start', stage: 1, step: 1, total: 1, text: 'RUN fetch-tools \\\n  --all', line: 5 }],
    [
      40,
      { type: 'pull', ref: 'registry.test/base:1', layer: LAYER1, current: 2_000_000, total: 2_000_000, done: true },
    ],
    [41, { type: 'pull', ref: 'registry.test/base:1', current: 2_000_000, total: 2_000_000, done: true }],
    [50, { type: 'step-start', stage: 0, step: 1, total: 2, text: 'RUN make all', line: 2 }],
    [60, out(1, 1, 'fetching 10%\rfetching 55%')],
    [70, out(0, 1, 'cc -c a.c\ncc -c b.c\n')],
    [75, out(0, 1, 'warning: \x1b[31mred\x1b[0m\n', 'stderr')],
    [80, out(1, 1, '\rfetching 100%\n')],
    [90, { type: 'step-done', stage: 1, step: 1, ms: 60, layer: { digest: LAYER2, size: 1234 } }],
    [90, { type: 'stage-done', stage: 1, ms: 89 }],
    [1300, out(0, 1, 'cc -o app a.o b.o\nlinking')],
    [1500, { type: 'step-done', stage: 0, step: 1, ms: 1450 }],
    [1500, { type: 'step-start', stage: 0, step: 2, total: 2, text: 'COPY src /src', line: 3 }],
    [1510, { type: 'step-cached', stage: 0, step: 2 }],
    [1511, { type: 'step-done', stage: 0, step: 2, ms: 11, layer: { digest: LAYER1, size: 99 } }],
    [1511, { type: 'stage-done', stage: 0, ms: 1510 }],
    [1512, { type: 'stage-start', stage: 2, base: 'stage 0' }],
    [1513, { type: 'step-start', stage: 2, step: 1, total: 1, text: 'COPY --from=tools /t /t', line: 8 }],
    [1600, { type: 'step-done', stage: 2, step: 1, ms: 87, layer: { digest: LAYER2, size: 5000 } }],
    [1601, { type: 'stage-done', stage: 2, ms: 89 }],
    [1650, { type: 'done', imageId: IMAGE_ID, manifestDigest: MANIFEST, ms: 1650, layers: 3, size: 12_345_678 }],
  ];
}

/** One stage whose RUN fails with exit code 2 after some output. */
export function failureScript(): Script {
  return [
    [
      0,
      {
        type: 'plan',
        target: 0,
        stages: [
          {
            stage: 0,
            base: 'debian',
            steps: [
              { text: 'RUN ./configure', line: 2 },
              { text: 'RUN make', line: 3 },
            ],
          },
        ],
      },
    ],
    [1, { type: 'stage-start', stage: 0, base: 'debian' }],
    [2, { type: 'step-start', stage: 0, step: 1, total: 2, text: 'RUN ./configure', line: 2 }],
    [100, out(0, 1, 'checking for cc... no\n')],
    [110, out(0, 1, 'configure: error: no C compiler', 'stderr')],
    [
      120,
      {
        type: 'step-error',
        stage: 0,
        step: 1,
        ms: 118,
        message: 'RUN failed with exit code 2: ./configure',
        exitCode: 2,
      },
    ],
  ];
}

export function clock(): { now: () => number; set: (ms: number) => void } {
  let t = T0;
  return { now: () => t, set: (ms) => (t = T0 + ms) };
}

export class FakeTerm {
  out = '';
  isTTY = true;
  private resize: (() => void)[] = [];
  constructor(
    public columns: number,
    public rows: number,
  ) {}
  write(s: string): boolean {
    this.out += s;
    return true;
  }
  on(_e: 'resize', f: () => void): this {
    this.resize.push(f);
    return this;
  }
  off(_e: 'resize', f: () => void): this {
    this.resize = this.resize.filter((g) => g !== f);
    return this;
  }
  listeners(): number {
    return this.resize.length;
  }
}

export const SGR = /\x1b\[[0-9;]*m/g;

/**
 * What `out` leaves on a screen `width` columns wide (scrolling without limit): handles printable
 * text, `\r`, `\n` (as a tty with ONLCR: back to column 0), `ESC[nA`, `ESC[K`, `ESC[J`, colours
 * (dropped) and cursor show/hide. Throws on any other escape, so a renderer cannot sneak one in.
 */
export function emulate(out: string, width: number): { lines: string[]; cursorVisible: boolean } {
  const screen: string[][] = [[]];
  let row = 0;
  let col = 0;
  let cursorVisible = true;
  const line = () => (screen[row] ??= []);
  for (let i = 0; i < out.length;) {
    const c = out[i]!;
    if (c === '\x1b') {
      const m = /^\x1b\[(\??)([0-9;]*)([A-Za-z])/.exec(out.slice(i));
      if (!m) throw new Error(`unknown escape at ${i}: ${JSON.stringify(out.slice(i, i + 8))}`);
      const [all, q, arg, fin] = m;
      i += all!.length;
      if (q === '?' && arg === '25' && (fin === 'l' || fin === 'h')) cursorVisible = fin === 'h';
      else if (fin === 'm') continue;
      else if (fin === 'A') row = Math.max(0, row - Number(arg || '1'));
      else if (fin === 'K') line().length = Math.min(line().length, col);
      else if (fin === 'J') {
        line().length = Math.min(line().length, col);
        screen.length = row + 1;
      } else throw new Error(`unexpected escape ${JSON.stringify(all)}`);
      continue;
    }
    i++;
    if (c === '\r') col = 0;
    else if (c === '\n') {
      row++;
      col = 0;
      line();
    } else {
      if (col >= width) {
        row++;
        col = 0;
      }
      const l = line();
      while (l.length < col) l.push(' ');
      l[col++] = c;
    }
  }
  const lines = screen.map((l) => l.join(''));
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return { lines, cursorVisible };
}
