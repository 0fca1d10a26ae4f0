/**
 * `kiln analyze IMAGE`: what dive computes — per layer the files added, modified and removed
 * with their bytes, wasted space, the efficiency score as dive defines it, the largest wasted
 * paths — and dive's CI rules (`--ci` exits 1 when one is broken).
 */
import type { Command } from 'commander';
import { DIVE_CI_DEFAULTS, type CiThresholds } from '../../analyze/index.js';
import * as path from 'node:path';
import { analyze, copies, plan, type AnalyzeResult } from '../../api/index.js';
import { collect, parseKeyValues } from '../options.js';
import { formatAnalysisText, formatCiText, formatCopiesText } from '../../ui/index.js';
import { parseBytes, KilnError } from '../../util/index.js';
import { emit, progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

function ratio(flag: string) {
  return (v: string): number | 'disabled' => {
    if (v === 'disabled') return 'disabled';
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new KilnError('USAGE', `invalid ${flag} "${v}": expected a number like 0.9, or "disabled"`);
    return n;
  };
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
  copies?: boolean;
  file?: string;
  target?: string;
  buildArg?: string[];
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
    .option(
      '--copies',
      'for each COPY --from of the image (as the build recorded it): its size and what it carries that a runtime rarely needs (tests, docs, man pages, headers, static libraries, __pycache__, .git, caches, dev dependencies), with the --exclude or step that would save it',
    )
    .option(
      '-f, --file <dockerfile>',
      "with --copies: the Dockerfile the image was built from, for an image this store's build did not record",
    )
    .option('--target <stage>', 'with --file: the target stage of that build (default: the last)')
    .option('--build-arg <key=value>', 'with --file: build-time variable of that build (repeatable)', collect)
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
      const anyThreshold =
        flags.lowestEfficiency !== undefined || wasted !== undefined || flags.highestUserWastedPercent !== undefined;
      let thresholds: CiThresholds | undefined;
      if (flags.ci || anyThreshold) {
        const pick = <T>(v: T | 'disabled' | undefined, dflt: T | undefined): T | undefined =>
          v === 'disabled' ? undefined : (v ?? (flags.ci ? dflt : undefined));
        thresholds = {
          lowestEfficiency: pick(flags.lowestEfficiency, DIVE_CI_DEFAULTS.lowestEfficiency),
          highestWastedBytes: pick(wasted, undefined),
          highestUserWastedPercent: pick(flags.highestUserWastedPercent, DIVE_CI_DEFAULTS.highestUserWastedPercent),
        };
      }
      if (flags.copies) {
        if (flags.ci || anyThreshold)
          throw new KilnError('USAGE', '--copies cannot be combined with --ci or its thresholds', undefined, {
            hint: 'run `kiln analyze --copies IMAGE` and `kiln analyze --ci IMAGE` separately',
          });
        // The Dockerfile is read where it is (its directory as the context), as `kiln report -f`.
        const buildPlan = flags.file
          ? plan({
              context: path.dirname(path.resolve(flags.file)),
              file: flags.file,
              target: flags.target,
              buildArgs: parseKeyValues(flags.buildArg, '--build-arg', (k) => process.env[k]),
            })
          : undefined;
        const r = await copies(image, {
          store: await openStoreFromCli(cmd),
          platform: flags.platform,
          plan: buildPlan,
        });
        return emit(flags.format === 'json' ? `${JSON.stringify(r, null, 2)}\n` : formatCopiesText(r), flags.output);
      }
      const p = progress('analyze');
      let a: AnalyzeResult;
      try {
        a = await analyze(image, {
          store: await openStoreFromCli(cmd),
          platform: flags.platform,
          ci: thresholds,
          onLayer: p.onLayer,
        });
      } finally {
        p.done();
      }
      const ci = a.ci;
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
        await emit(formatAnalysisText(a, top) + (ci ? formatCiText(ci) : ''), flags.output);
      }
      if (flags.ci && ci && !ci.pass) process.exitCode = 1;
    });
}
