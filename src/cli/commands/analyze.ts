/**
 * `kiln analyze IMAGE`: what dive computes — per layer the files added, modified and removed
 * with their bytes, wasted space, the efficiency score as dive defines it, the largest wasted
 * paths — and dive's CI rules (`--ci` exits 1 when one is broken).
 * Also the helpers the other image-reading commands share (opening IMAGE, progress, output).
 */
import type { Command } from 'commander';
import {
  analyzeImage,
  displayName,
  type ImageAnalysis,
  DIVE_CI_DEFAULTS,
  evaluateCi,
  type CiThresholds,
  openImageSource,
  type ImageSource,
} from '../../analyze/index.js';
import { parsePlatform } from '../../image/index.js';
import { KilnError, writeFileAtomic } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';

/** IMAGE as the user gave it: a store name or id, an archive file, or a registry reference. */
export async function openImageFromCli(cmd: Command, ref: string, platform?: string): Promise<ImageSource> {
  const store = await openStoreFromCli(cmd);
  return openImageSource(ref, { store, platform: platform ? parsePlatform(platform) : undefined });
}

/** "layer 2/5" on stderr while reading, when stderr is a terminal. */
export function progress(label: string): { onLayer: (i: number, n: number) => void; done: () => void } {
  const tty = process.stderr.isTTY === true && process.env.KILN_NO_PROGRESS !== '1';
  return {
    onLayer: (i, n) => {
      if (tty) process.stderr.write(`\r${label}: reading layer ${i + 1}/${n}…\x1b[K`);
    },
    done: () => {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

/** Write to -o FILE (atomically) or stdout. */
export async function emit(text: string, output: string | undefined): Promise<void> {
  if (output && output !== '-') await writeFileAtomic(output, text);
  else process.stdout.write(text);
}

/** SI units as docker and dive print them ("1.2 MB"). */
export function human(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${n < 0 ? '-' : ''}${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${u[i]}`;
}

/** Sizes as dive's highest-wasted-bytes takes them (go-humanize: "20MB", "1.5GiB", "1000"). */
export function parseBytes(s: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i.exec(s);
  if (!m) throw new KilnError('USAGE', `invalid size "${s}": use bytes or a unit, e.g. 20MB or 1.5GiB`);
  const exp = ' kmgtp'.indexOf(m[2]!.toLowerCase() || ' ');
  const base = m[3] ? 1024 : 1000;
  return Math.round(Number(m[1]) * base ** exp);
}

function ratio(flag: string) {
  return (v: string): number | 'disabled' => {
    if (v === 'disabled') return 'disabled';
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new KilnError('USAGE', `invalid ${flag} "${v}": expected a number like 0.9, or "disabled"`);
    return n;
  };
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(4).replace(/\.?0+$/, '')} %` : String(x));

export function formatAnalysisText(a: ImageAnalysis, top: number): string {
  const lines: string[] = [];
  lines.push(`Image: ${displayName(a.image)} (${a.image.id})`);
  lines.push('');
  lines.push('Layers:');
  const rows = [['#', 'SIZE', 'ADDED', 'MODIFIED', 'REMOVED', 'COMMAND']];
  for (const l of a.layers) {
    const c = l.changes;
    const cell = (s: { count: number; bytes: number }) => (s.count ? `${s.count} (${human(s.bytes)})` : '0');
    const cmdText = (l.createdBy || (l.comment ? `(${l.comment})` : '(no history)'))
      .replace(/\s+/g, ' ')
      .replace(/^\/bin\/sh -c #\(nop\)\s*/, '')
      .replace(/^\/bin\/sh -c /, 'RUN ');
    rows.push([
      String(l.index + 1),
      human(l.size),
      cell(c.added),
      cell(c.modified),
      cell(c.removed),
      cmdText.length > 80 ? `${cmdText.slice(0, 77)}...` : cmdText,
    ]);
  }
  lines.push(tableText(rows, '  '));
  const e = a.efficiency;
  lines.push(`Total image size: ${human(e.sizeBytes)} (${a.fileCount} files, ${human(a.finalSize)} visible)`);
  lines.push(`Potential wasted space: ${human(e.wastedBytes)}`);
  lines.push(`Image efficiency score: ${pct(e.efficiency)}`);
  lines.push(`User wasted percent: ${pct(e.wastedUserPercent)}`);
  lines.push('');
  lines.push('Inefficient Files:');
  if (!e.inefficiencies.length) lines.push('None');
  else {
    const r = [['Count', 'Wasted Space', 'File Path']];
    for (const i of e.inefficiencies.slice(0, top)) r.push([String(i.count), human(i.cumulativeSize), i.path]);
    lines.push(tableText(r, ''));
    if (e.inefficiencies.length > top) lines.push(`... ${e.inefficiencies.length - top} more (--top N shows more)`);
  }
  return `${lines.join('\n')}\n`;
}

function tableText(rows: string[][], indent: string): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join(''))
    .join('\n');
}

interface AnalyzeFlags {
  ci?: boolean;
  lowestEfficiency?: number | 'disabled';
  highestWastedBytes?: string;
  highestUserWastedPercent?: number | 'disabled';
  format: string;
  top: string;
  platform?: string;
  output?: string;
}

export function register(program: Command): Command {
  return program
    .command('analyze')
    .description(
      "layer efficiency as dive computes it: files added/modified/removed per layer, wasted space, efficiency score; --ci gates on dive's thresholds",
    )
    .argument(
      '<image>',
      'image name or ID in the store, an image archive (docker save / OCI tar), or a registry reference',
    )
    .option(
      '--ci',
      'evaluate the CI rules and exit 1 when one fails (defaults as dive: lowest efficiency 0.9, highest user wasted percent 0.1)',
    )
    .option(
      '--lowest-efficiency <ratio>',
      'fail when the efficiency score is below this (0..1, or "disabled")',
      ratio('--lowest-efficiency'),
    )
    .option(
      '--highest-wasted-bytes <size>',
      'fail when more bytes than this are wasted (e.g. 20MB, 1GiB, or "disabled")',
    )
    .option(
      '--highest-user-wasted-percent <ratio>',
      'fail when wasted bytes / bytes of the non-base layers is above this (0..1, or "disabled")',
      ratio('--highest-user-wasted-percent'),
    )
    .option('--top <n>', 'how many of the largest wasted paths to list', '20')
    .option('--format <format>', 'text or json', 'text')
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(async (image: string, flags: AnalyzeFlags, cmd: Command) => {
      if (flags.format !== 'text' && flags.format !== 'json')
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use text or json`);
      const top = Number(flags.top);
      if (!Number.isInteger(top) || top < 0) throw new KilnError('USAGE', `invalid --top "${flags.top}"`);
      const wasted =
        flags.highestWastedBytes === undefined || flags.highestWastedBytes === 'disabled'
          ? flags.highestWastedBytes
          : parseBytes(flags.highestWastedBytes);
      const src = await openImageFromCli(cmd, image, flags.platform);
      const p = progress('analyze');
      let a: ImageAnalysis;
      try {
        a = await analyzeImage(src, { onLayer: p.onLayer });
      } finally {
        p.done();
        await src.close();
      }
      const anyThreshold =
        flags.lowestEfficiency !== undefined || wasted !== undefined || flags.highestUserWastedPercent !== undefined;
      let ci: ReturnType<typeof evaluateCi> | undefined;
      if (flags.ci || anyThreshold) {
        const pick = <T>(v: T | 'disabled' | undefined, dflt: T | undefined): T | undefined =>
          v === 'disabled' ? undefined : (v ?? (flags.ci ? dflt : undefined));
        const t: CiThresholds = {
          lowestEfficiency: pick(flags.lowestEfficiency, DIVE_CI_DEFAULTS.lowestEfficiency),
          highestWastedBytes: pick(wasted, undefined),
          highestUserWastedPercent: pick(flags.highestUserWastedPercent, DIVE_CI_DEFAULTS.highestUserWastedPercent),
        };
        ci = evaluateCi(a.efficiency, t);
      }
      if (flags.format === 'json') {
        const out = {
          ...a,
          efficiency: {
            ...a.efficiency,
            wastedUserPercent: Number.isFinite(a.efficiency.wastedUserPercent) ? a.efficiency.wastedUserPercent : null,
          },
          ci,
        };
        await emit(`${JSON.stringify(out, null, 2)}\n`, flags.output);
      } else {
        let text = formatAnalysisText(a, top);
        if (ci) {
          text += '\nResults:\n';
          for (const r of ci.rules)
            text += `  ${r.status === 'pass' ? 'PASS' : r.status === 'fail' ? 'FAIL' : 'SKIP'}: ${r.rule}${r.message && r.status !== 'pass' ? `: ${r.message}` : ''}\n`;
          const n = (s: string) => ci!.rules.filter((r) => r.status === s).length;
          text += `Result:${ci.pass ? 'PASS' : 'FAIL'} [Total:${ci.rules.length}] [Passed:${n('pass')}] [Failed:${n('fail')}] [Warn:0] [Skipped:${n('skip')}]\n`;
        }
        await emit(text, flags.output);
      }
      if (flags.ci && ci && !ci.pass) process.exitCode = 1;
    });
}
