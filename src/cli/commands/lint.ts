/** `kiln lint`: Dockerfile checks (BuildKit's build checks plus kiln's multi-stage rules); exit 1 on errors. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { lint } from '../../api/index.js';
import { formatLintJson, formatLintSarif, formatLintText } from '../../analyze/index.js';
import { KilnError, readPackageVersion } from '../../util/index.js';
import { collect, parseKeyValues } from '../options.js';
import { emit } from '../output.js';

export function register(program: Command): Command {
  return program
    .command('lint')
    .description(
      "check a Dockerfile: BuildKit's build checks (same names) and multi-stage rules — root final stage, build tools/caches/apt lists in the final image, unpinned bases, COPY . before installs, unused stages, shell-form CMD, secrets in ARG/ENV",
    )
    .argument(
      '[context]',
      'build context directory (where the Dockerfile is looked up; its .dockerignore for CopyIgnoredFile)',
      '.',
    )
    .option('-f, --file <file>', 'Dockerfile to check ("-" reads stdin; default CONTEXT/Dockerfile)')
    .option('--format <format>', 'text, json or sarif', 'text')
    .option(
      '--target <stage>',
      'the stage being built (default: the last); decides what the final stage is and which stages are unused',
    )
    .option('--build-arg <key=value>', 'build-time variable, as for kiln build (repeatable)', collect)
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .action(
      async (
        context: string,
        flags: { file?: string; format: string; target?: string; buildArg?: string[]; output?: string },
      ) => {
        if (!['text', 'json', 'sarif'].includes(flags.format))
          throw new KilnError('USAGE', `unknown --format "${flags.format}": use text, json or sarif`);
        if (flags.file !== '-' && flags.file === undefined && !existsSync(context))
          throw new KilnError('NOT_FOUND', 'build context does not exist', { path: context });
        const r = lint({
          context,
          file: flags.file,
          target: flags.target,
          buildArgs: parseKeyValues(flags.buildArg, '--build-arg', (k) => process.env[k]),
        });
        const text =
          flags.format === 'json'
            ? formatLintJson(r)
            : flags.format === 'sarif'
              ? formatLintSarif(r, { name: 'kiln', version: readPackageVersion() })
              : formatLintText(r);
        await emit(text, flags.output);
        if (r.errors > 0) process.exitCode = 1;
      },
    );
}
