/**
 * Text for terminals: display width (East Asian wide characters and emoji take two columns,
 * combining marks none), truncation to a width, removal of escape sequences and control
 * characters from a step's output (they would break a redrawn view), line splitting that
 * understands carriage-return progress bars, and human sizes and durations.
 *
 * A dozen lines of ranges instead of the `string-width` package (and its three dependencies):
 * a line of build output only needs "how many columns", not full Unicode segmentation rules.
 */

import { TextDecoder } from 'node:util';

const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
// eslint-disable-next-line no-misleading-character-class -- variation selectors (U+FE00–FE0F) alone, on purpose
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}\u200b\u2028\u2029\ufe00-\ufe0f]$/u;
const WIDE_EMOJI = /\p{Emoji_Presentation}|\ufe0f/u;
// East Asian Wide (W) and Fullwidth (F) blocks.
const WIDE_RANGES: [number, number][] = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4],
  [0x17000, 0x18aff],
  [0x1b000, 0x1b2ff],
  [0x1f200, 0x1f251],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

function isWide(cp: number): boolean {
  if (cp < 0x1100) return false;
  for (const [lo, hi] of WIDE_RANGES) if (cp >= lo && cp <= hi) return true;
  return false;
}

// Made on first use: creating it loads ICU's break rules (~20 ms), and most runs print only ASCII.
let segmenter: Intl.Segmenter | undefined;

function graphemes(s: string): Intl.Segments {
  segmenter ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  return segmenter.segment(s);
}

/** Columns one grapheme cluster takes on a terminal. */
function graphemeWidth(g: string): number {
  const cp = g.codePointAt(0)!;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if (g.length === 1 && cp < 0x300) return 1;
  if (WIDE_EMOJI.test(g) || isWide(cp)) return 2;
  if (ZERO_WIDTH.test(String.fromCodePoint(cp))) return 0;
  return 1;
}

/** Columns a string (without escape sequences) takes on a terminal. */
export function displayWidth(s: string): number {
  if (ASCII_PRINTABLE.test(s)) return s.length;
  let w = 0;
  for (const { segment } of graphemes(s)) w += graphemeWidth(segment);
  return w;
}

/** `s` cut to at most `width` columns; a cut string ends with `…` (one column). */
export function truncate(s: string, width: number): string {
  if (width <= 0) return '';
  if (ASCII_PRINTABLE.test(s)) return s.length <= width ? s : `${s.slice(0, width - 1)}…`;
  if (displayWidth(s) <= width) return s;
  let out = '';
  let w = 0;
  for (const { segment } of graphemes(s)) {
    const gw = graphemeWidth(segment);
    if (w + gw > width - 1) break;
    out += segment;
    w += gw;
  }
  return `${out}…`;
}

/** `s` padded with spaces on the right to `width` columns (no cut). */
export function padEnd(s: string, width: number): string {
  const w = displayWidth(s);
  return w >= width ? s : s + ' '.repeat(width - w);
}

// CSI (ESC [ … final), OSC (ESC ] … BEL or ST), and other two-byte escapes; C1 controls as well.
const ESCAPES =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[P^_][^\x1b]*(?:\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]/g;
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** One line of a step's output made safe to show: escapes and control characters removed, tabs expanded. */
export function sanitizeLine(s: string): string {
  let t = s.replace(ESCAPES, '').replace(CONTROLS, '');
  if (t.includes('\t')) {
    let out = '';
    for (const ch of t) out += ch === '\t' ? ' '.repeat(8 - (out.length % 8)) : ch;
    t = out;
  }
  return t;
}

/**
 * Splits a byte stream of program output into lines. Bytes that are not UTF-8 become U+FFFD (a
 * character cut between two chunks is decoded whole). A carriage return without a newline
 * (progress bars) makes the line start over: only what follows the last one is kept.
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private rest = '';

  /** Complete lines in `chunk` (with what was left over before). */
  push(chunk: Uint8Array): string[] {
    const text = this.rest + this.decoder.decode(chunk, { stream: true });
    const parts = text.split('\n');
    this.rest = parts.pop()!;
    return parts.map(lastSegment);
  }

  /** The unfinished last line, as it would show now. */
  partial(): string {
    return lastSegment(this.rest);
  }

  /** The unfinished line at the end of the stream ('' when none). */
  end(): string {
    const last = lastSegment(this.rest + this.decoder.decode());
    this.rest = '';
    return last;
  }
}

function lastSegment(line: string): string {
  const l = line.endsWith('\r') ? line.slice(0, -1) : line;
  const cr = l.lastIndexOf('\r');
  return cr < 0 ? l : l.slice(cr + 1);
}

/** 45.2MB, as docker prints sizes (powers of 1000). */
export function formatSize(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)}${units[u]}`;
}

/** Seconds with one decimal (BuildKit's style): `0.3s`, `12.5s`; minutes past 100 s: `2m05s`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 100) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.floor(s - m * 60)).padStart(2, '0')}s`;
}

/** First line of an instruction as written, with `…` when it has more. */
export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl < 0
    ? text
    : `${text
        .slice(0, nl)
        .replace(/\\\s*$/, '')
        .trimEnd()} …`;
}
