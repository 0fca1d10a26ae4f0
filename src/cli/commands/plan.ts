/** `kiln plan`: print the resolved build (stages, order, expanded instructions) without building. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { plan, planPlatforms } from '../../api/index.js';
import { formatMultiPlatformPlanText, formatPlanText } from '../../plan/index.js';
import { KilnError } from '../../util/index.js';
import { collect, parseKeyValues } from '../options.js';

interface PlanFlags {
  file?: string;
  buildArg?: string[];
  target?: string;
  format: string;
  platform?: string;
}

export function register(program: Command): Command {
  return program
    .command('plan')
    .description(
      'show the resolved build: stages in execution order, bases, dependencies, skipped stages and expanded instructions',
    )
    .argument('[context]', 'build context directory (where the Dockerfile is looked up)', '.')
    .option('-f, --file <file>', 'Dockerfile to read ("-" reads stdin; default CONTEXT/Dockerfile)')
    .option(
      '--build-arg <key=value>',
      'set a build-time variable (repeatable; KEY alone takes it from the environment)',
      collect,
    )
    .option('--target <stage>', 'plan only the stages this stage needs')
    .option(
      '--platform <os/arch[/variant],…>',
      "target platform (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT); default: this machine's. Several, comma-separated: each platform's plan and which stages run once for all of them",
    )
    .option('--format <format>', 'output format: text or json (the schema is docs/plan-schema.md)', 'text')
    .action((context: string, flags: PlanFlags) => {
      if (flags.format !== 'text' && flags.format !== 'json')
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use text or json`);
      if (flags.file !== '-' && !existsSync(context))
        throw new KilnError('NOT_FOUND', 'build context does not exist', { path: context });
      const dockerfile = {
        context,
        file: flags.file,
        buildArgs: parseKeyValues(flags.buildArg, '--build-arg', (k) => process.env[k]),
        target: flags.target,
      };
      if (flags.platform?.includes(',')) {
        const mp = planPlatforms({ ...dockerfile, platforms: [flags.platform] });
        if (flags.format === 'json') process.stdout.write(`${JSON.stringify(mp, null, 2)}\n`);
        else process.stdout.write(formatMultiPlatformPlanText(mp));
        const first = mp.plans[0]!;
        for (const w of first.warnings)
          if (flags.format === 'json')
            process.stderr.write(`warning: ${w.line !== undefined ? `${first.file}:${w.line}: ` : ''}${w.message}\n`);
        return;
      }
      const buildPlan = plan({ ...dockerfile, platform: flags.platform });
      if (flags.format === 'json') process.stdout.write(`${JSON.stringify(buildPlan, null, 2)}\n`);
      else process.stdout.write(formatPlanText(buildPlan));
      for (const w of buildPlan.warnings)
        if (flags.format === 'json')
          process.stderr.write(`warning: ${w.line !== undefined ? `${buildPlan.file}:${w.line}: ` : ''}${w.message}\n`);
    });
}
