/** `kiln report IMAGE -o report.html`: one self-contained HTML page about an image. */
import type { Command } from 'commander';
import * as path from 'node:path';
import { analyzeImage, scanWithDatabase } from '../../analyze/index.js';
import { parseDockerfile } from '../../dockerfile/index.js';
import { type BuildPlan, createPlan } from '../../plan/index.js';
import { renderReport } from '../../report/index.js';
import { writeFileAtomic } from '../../util/index.js';
import { readDockerfileInput } from '../dockerfile-input.js';
import { collect, parseKeyValues } from '../options.js';
import { readPackageVersion } from '../version.js';
import { openImageFromCli, progress } from './analyze.js';

interface ReportFlags {
  output: string;
  db?: string;
  file?: string;
  target?: string;
  buildArg?: string[];
  platform?: string;
}

export function register(program: Command): Command {
  return program
    .command('report')
    .description(
      'write one self-contained HTML page about an image: layers (stacked bar with commands), treemap of the largest directories, wasted files, packages, vulnerability summary, and the stage graph when given the Dockerfile',
    )
    .argument('<image>', 'image name or ID in the store, an image archive, or a registry reference')
    .requiredOption('-o, --output <file>', 'where to write the HTML page')
    .option('--db <dir>', 'OSV database directory: include the vulnerability scan')
    .option(
      '-f, --file <dockerfile>',
      'the Dockerfile the image was built from: include the stage graph and what each stage contributed',
    )
    .option('--target <stage>', 'the target stage of that build (default: the last)')
    .option('--build-arg <key=value>', 'build-time variable of that build (repeatable)', collect)
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(async (image: string, flags: ReportFlags, cmd: Command) => {
      let plan: BuildPlan | undefined;
      if (flags.file) {
        const input = readDockerfileInput(flags.file, path.dirname(path.resolve(flags.file)));
        plan = createPlan(parseDockerfile(input.text, { file: input.display }), {
          target: flags.target,
          buildArgs: parseKeyValues(flags.buildArg, '--build-arg', (k) => process.env[k]),
        });
      }
      const src = await openImageFromCli(cmd, image, flags.platform);
      const p = progress('report');
      let analysis;
      try {
        analysis = await analyzeImage(src, { packages: true, onLayer: p.onLayer });
      } finally {
        p.done();
        await src.close();
      }
      const scan = flags.db ? await scanWithDatabase(analysis.packages ?? [], analysis.os ?? {}, flags.db) : undefined;
      const html = renderReport({
        analysis,
        scan,
        plan,
        tool: { name: 'kiln', version: readPackageVersion() },
        generated: new Date().toISOString(),
      });
      await writeFileAtomic(flags.output, html);
      process.stderr.write(`wrote ${flags.output} (${Math.round(html.length / 1024)} kB)\n`);
    });
}
