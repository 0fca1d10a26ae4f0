/** `kiln sbom IMAGE`: the packages in an image (Debian, Alpine, Python, Node) as CycloneDX, SPDX or a table. */
import type { Command } from 'commander';
import { displayName, toCycloneDx, toSpdx } from '../../analyze/index.js';
import { sbom } from '../../api/index.js';
import { formatSbomTable } from '../../ui/index.js';
import { KilnError, readPackageVersion } from '../../util/index.js';
import { emit, progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

const FORMATS = ['table', 'cyclonedx-json', 'spdx-json', 'json'];

export function register(program: Command): Command {
  return program
    .command('sbom')
    .description(
      'list the packages in an image — dpkg (incl. distroless status.d), apk, Python dist-info/egg-info, node_modules and package-lock — with versions, purls, licences and the layer that brought each; and what a COPY --from brought without its package metadata (a library out of a builder), marked copied',
    )
    .argument('<image>', 'image name or ID in the store, an image archive, or a registry reference')
    .option('--format <format>', `output format: ${FORMATS.join(', ')}`, 'table')
    .option('-o, --output <file>', 'write the SBOM to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(async (image: string, flags: { format: string; output?: string; platform?: string }, cmd: Command) => {
      if (!FORMATS.includes(flags.format))
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use ${FORMATS.join(', ')}`);
      const p = progress('sbom');
      let r;
      try {
        r = await sbom(image, { store: await openStoreFromCli(cmd), platform: flags.platform, onLayer: p.onLayer });
      } finally {
        p.done();
      }
      const subject = {
        name: displayName(r.image),
        id: r.image.id,
        digest: r.image.digest,
        created: r.image.created,
        os: r.os,
        packages: r.packages,
        tool: { name: 'kiln', version: readPackageVersion() },
      };
      if (flags.format === 'cyclonedx-json')
        return emit(`${JSON.stringify(toCycloneDx(subject), null, 2)}\n`, flags.output);
      if (flags.format === 'spdx-json') return emit(`${JSON.stringify(toSpdx(subject), null, 2)}\n`, flags.output);
      if (flags.format === 'json')
        return emit(`${JSON.stringify({ image: r.image, os: r.os, packages: r.packages }, null, 2)}\n`, flags.output);
      return emit(formatSbomTable(r.packages, r.os), flags.output);
    });
}
