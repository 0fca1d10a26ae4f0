/**
 * `kiln diff IMAGE_A IMAGE_B`: files and packages added, removed and changed between two images, with sizes.
 * `kiln diff --ci --baseline REF IMAGE`: the CI gate (analyze/gate.ts): exit 1 when a rule breaks.
 */
import type { Command } from 'commander';
import { GATE_RULES, type GateRuleId, type ImageDiff } from '../../analyze/index.js';
import { diff, gate } from '../../api/index.js';
import { formatDiffText, formatGateSarif, formatGateText } from '../../ui/index.js';
import { KilnError, readPackageVersion } from '../../util/index.js';
import { emit, progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

interface Flags {
  format: string;
  limit: string;
  output?: string;
  platform?: string;
  ci?: boolean;
  baseline?: string;
  maxGrowth: string;
  maxGrowthMb: string;
  skipRule?: string[];
  db?: string;
  base?: string;
}

/** A limit flag: a non-negative number, or `off`. */
function limit(flag: string, v: string): number | null {
  if (v === 'off') return null;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new KilnError('USAGE', `invalid ${flag} "${v}"`, {}, { hint: `a number ≥ 0, or off` });
  return n;
}

export function register(program: Command): Command {
  return program
    .command('diff')
    .description(
      'compare two images: files and packages added, removed and changed, with sizes (e.g. the builder stage against the final image); with --ci, gate IMAGE against a baseline (exit 1 when a rule breaks)',
    )
    .argument(
      '[image-a]',
      'the first image (name/ID in the store, an archive, or a registry reference); with --ci: the image to check',
    )
    .argument('[image-b]', 'the second image')
    .option('--format <format>', 'text or json (with --ci also sarif: SARIF 2.1.0)', 'text')
    .option('--limit <n>', 'how many files to list in text output (largest first)', '50')
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from multi-platform images')
    .option(
      '--ci',
      `CI gate: compare the image with --baseline and exit 1 when a rule breaks (rules: ${GATE_RULES.join(', ')}; docs/ci-gate.md)`,
    )
    .option('--baseline <ref>', 'with --ci: the image to compare with (the last release: store, archive or registry)')
    .option('--max-growth <percent>', 'with --ci: size growth allowed, in percent of the baseline (or off)', '10')
    .option('--max-growth-mb <MB>', 'with --ci: size growth allowed, in MB (10^6 bytes; or off)', '50')
    .option(
      '--skip-rule <rule>',
      'with --ci: do not check this rule (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--db <dir>', 'with --ci: OSV database directory (as kiln scan): check for new vulnerabilities')
    .option(
      '--base <ref>',
      "with --ci: the image's base image, to tell its vulnerabilities from your layers' (default: read from the image's history)",
    )
    .action(async (a: string | undefined, b: string | undefined, flags: Flags, cmd: Command) => {
      if (flags.ci) return ciGate(a, b, flags, cmd);
      for (const f of ['baseline', 'db', 'base', 'skipRule'] as const)
        if (flags[f] !== undefined)
          throw new KilnError('USAGE', `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --ci`);
      if (a === undefined || b === undefined)
        throw new KilnError(
          'USAGE',
          'kiln diff needs two images',
          {},
          { hint: 'kiln diff IMAGE_A IMAGE_B, or kiln diff --ci --baseline REF IMAGE' },
        );
      if (flags.format !== 'text' && flags.format !== 'json')
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use text or json`);
      const n = Number(flags.limit);
      if (!Number.isInteger(n) || n < 0) throw new KilnError('USAGE', `invalid --limit "${flags.limit}"`);
      const p = progress('diff');
      let d: ImageDiff;
      try {
        d = await diff(a, b, {
          store: await openStoreFromCli(cmd),
          platform: flags.platform,
          onLayer: (_w, i, count) => p.onLayer(i, count),
        });
      } finally {
        p.done();
      }
      await emit(flags.format === 'json' ? `${JSON.stringify(d, null, 2)}\n` : formatDiffText(d, n), flags.output);
    });
}

async function ciGate(a: string | undefined, b: string | undefined, flags: Flags, cmd: Command): Promise<void> {
  // `--baseline REF IMAGE`, or the two images in that order.
  const baseline = flags.baseline ?? (b !== undefined ? a : undefined);
  const image = flags.baseline !== undefined ? a : b;
  if (baseline === undefined || image === undefined || (flags.baseline !== undefined && b !== undefined))
    throw new KilnError(
      'USAGE',
      'kiln diff --ci needs a baseline and one image',
      {},
      { hint: 'kiln diff --ci --baseline REF IMAGE' },
    );
  if (!['text', 'json', 'sarif'].includes(flags.format))
    throw new KilnError('USAGE', `unknown --format "${flags.format}": use text, json or sarif`);
  const skip = (flags.skipRule ?? []).flatMap((s) => s.split(',')).filter(Boolean);
  for (const s of skip)
    if (!(GATE_RULES as readonly string[]).includes(s))
      throw new KilnError(
        'USAGE',
        `unknown rule "${s}" in --skip-rule`,
        {},
        { hint: `rules: ${GATE_RULES.join(', ')}` },
      );
  const maxGrowthPercent = limit('--max-growth', flags.maxGrowth.replace(/%$/, ''));
  const mb = limit('--max-growth-mb', flags.maxGrowthMb);
  const p = progress('diff');
  let r;
  try {
    r = await gate(baseline, image, {
      store: await openStoreFromCli(cmd),
      platform: flags.platform,
      maxGrowthPercent,
      maxGrowthBytes: mb === null ? null : Math.round(mb * 1e6),
      skip: skip as GateRuleId[],
      db: flags.db,
      base: flags.base,
      onLayer: (_w, i, count) => p.onLayer(i, count),
    });
  } finally {
    p.done();
  }
  await emit(
    flags.format === 'json'
      ? `${JSON.stringify(r, null, 2)}\n`
      : flags.format === 'sarif'
        ? formatGateSarif(r, { name: 'kiln', version: readPackageVersion() })
        : formatGateText(r),
    flags.output,
  );
  if (!r.pass) process.exitCode = 1;
}
