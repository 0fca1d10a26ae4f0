/** `kiln lint`: Dockerfile checks (BuildKit's build checks plus kiln's multi-stage rules); exit 1 on errors. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { lint, lintBaseImages, readDockerfileInput } from '../../api/index.js';
import { formatLintJson, formatLintSarif, formatLintText } from '../../analyze/index.js';
import { KilnError, readPackageVersion } from '../../util/index.js';
import { collect, parseKeyValues } from '../options.js';
import { emit } from '../output.js';
import { globalOptions } from '../options.js';

export function register(program: Command): Command {
  return program
    .command('lint')
    .description(
      "check a Dockerfile: BuildKit's build checks (same names) and multi-stage rules — root final stage, build tools/caches/apt lists in the final image, unpinned bases, COPY . before installs, whole-tree COPY --from (/usr/local, node_modules) without --exclude, unused stages, shell-form CMD, secrets in ARG/ENV; UndefinedVar and InvalidBaseImagePlatform from the base images the store has (nothing pulled)",
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
        cmd: Command,
      ) => {
        if (!['text', 'json', 'sarif'].includes(flags.format))
          throw new KilnError('USAGE', `unknown --format "${flags.format}": use text, json or sarif`);
        if (flags.file !== '-' && flags.file === undefined && !existsSync(context))
          throw new KilnError('NOT_FOUND', 'build context does not exist', { path: context });
        const o = {
          context,
          file: flags.file,
          target: flags.target,
          buildArgs: parseKeyValues(flags.buildArg, '--build-arg', (k) => process.env[k]),
        };
        // The base images the store has (nothing pulled): their ENV for UndefinedVar, their platform
        // for InvalidBaseImagePlatform. stdin can be read once only: then read it here.
        const stdin = flags.file === '-' ? readDockerfileInput('-', context) : undefined;
        const input = stdin ? { ...o, dockerfileText: stdin.text, dockerfileName: stdin.display, file: undefined } : o;
        const baseImages = await lintBaseImages({ ...input, root: globalOptions(cmd).root });
        const r = lint({ ...input, baseImages });
        const out =
          flags.format === 'json'
            ? formatLintJson(r)
            : flags.format === 'sarif'
              ? formatLintSarif(r, { name: 'kiln', version: readPackageVersion() })
              : formatLintText(r);
        await emit(out, flags.output);
        if (r.errors > 0) process.exitCode = 1;
      },
    );
}
