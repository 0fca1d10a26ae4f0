/** `kiln save -o FILE IMAGE…`: images to a docker-archive (docker load reads it) or an OCI layout tar. */
import type { Command } from 'commander';
import { familiarName, parsePlatform } from '../../image/index.js';
import { save } from '../../api/index.js';
import { KilnError } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('save')
    .description('save images to a tar archive (docker-archive by default, or an OCI layout)')
    .argument('<images...>', 'image names or IDs')
    .option('-o, --output <file>', 'write to this file (default: stdout, which must not be a terminal)')
    .option('--format <format>', 'docker (docker load reads it) or oci (an OCI image layout)', 'docker')
    .option(
      '--platform <os/arch[/variant]>',
      "save only this platform's image of a multi-platform image (default: its index, every platform)",
    )
    .action(async (images: string[], flags: { output?: string; format: string; platform?: string }, cmd: Command) => {
      if (flags.format !== 'docker' && flags.format !== 'oci')
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use docker or oci`);
      if (!flags.output && process.stdout.isTTY)
        throw new KilnError(
          'USAGE',
          'refusing to write an archive to a terminal',
          {},
          { hint: 'use -o FILE or redirect stdout' },
        );
      const store = await openStoreFromCli(cmd);
      const saved = await save(images, {
        store,
        format: flags.format,
        platform: flags.platform === undefined ? undefined : parsePlatform(flags.platform),
        ...(flags.output ? { dest: flags.output } : { stream: process.stdout }),
      });
      // A docker-archive's manifest.json names one image per name: say which platform of an index it is.
      if (flags.format === 'docker')
        for (const s of saved)
          if (s.platforms)
            process.stderr.write(
              `note: ${s.name ? familiarName(s.name) : s.digest} is a multi-platform image: the archive holds all its platforms (${s.platforms.join(', ')}) in its OCI index; its manifest.json names the ${s.dockerPlatform} image, the one docker's classic image store loads (--platform P saves P's image alone)\n`,
            );
    });
}
