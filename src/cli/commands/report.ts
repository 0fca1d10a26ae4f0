/** `kiln report IMAGE -o report.html`: one self-contained HTML page about an image. */
import type { Command } from 'commander';
import * as path from 'node:path';
import { plan, report } from '../../api/index.js';
import { writeFileAtomic } from '../../util/index.js';
import { collect, parseKeyValues } from '../options.js';
import { progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

interface ReportFlags {
  output: string;
  db?: string;
  file?: string;
  target?: string;
  buildArg?: string[];
  platform?: string;
  baseline?: string;
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
    .option(
      '--baseline <ref>',
      'compare with this image (the last release) under the rules of kiln diff --ci, shown first on the page',
    )
    .action(async (image: string, flags: ReportFlags, cmd: Command) => {
      // The Dockerfile is read where it is (its directory as the context).
      const buildPlan = flags.file
        ? plan({
            context: path.dirname(path.resolve(flags.file)),
            file: flags.file,
            target: flags.target,
            buildArgs: parseKeyValues(flags.buildArg, '--build-arg', (k) => process.env[k]),
          })
        : undefined;
      const p = progress('report');
      let html: string;
      try {
        html = await report(image, {
          store: await openStoreFromCli(cmd),
          db: flags.db,
          plan: buildPlan,
          platform: flags.platform,
          baseline: flags.baseline,
          onLayer: p.onLayer,
        });
      } finally {
        p.done();
      }
      await writeFileAtomic(flags.output, html);
      process.stderr.write(`wrote ${flags.output} (${Math.round(html.length / 1024)} kB)\n`);
    });
}
