/** `kiln manifest inspect REF`: the raw manifest or index on the registry, as `docker manifest inspect`. */
import type { Command } from 'commander';
import { parseReference } from '../../image/index.js';
import { RegistryClient, closeIdleConnections } from '../../registry/index.js';
import { addRegistryOptions, clientOptionsFrom, type RegistryFlags } from '../registry-options.js';

export function register(program: Command): Command {
  const manifest = program.command('manifest').description('read manifests and indexes on a registry');
  const inspect = manifest
    .command('inspect')
    .description('print the manifest or index a reference names on its registry')
    .argument('<reference>', 'image reference: [registry[:port]/]name[:tag|@digest]')
    .option('--raw', 'print the exact bytes the registry sent')
    .option('-v, --verbose', 'print the reference, the descriptor and the document');
  addRegistryOptions(inspect);
  inspect.action(async (reference: string, flags: RegistryFlags & { raw?: boolean; verbose?: boolean }) => {
    let ref = parseReference(reference);
    if (ref.tag === undefined && ref.digest === undefined) ref = parseReference(`${ref.name()}:latest`);
    const client = new RegistryClient(clientOptionsFrom(flags));
    try {
      const m = await client.getManifest(ref);
      if (flags.raw) {
        process.stdout.write(m.body);
        return;
      }
      const doc = JSON.parse(m.body.toString('utf8')) as unknown;
      // docker prints the document with a three-space indent.
      if (flags.verbose)
        process.stdout.write(
          `${JSON.stringify({ Ref: ref.toString(), Descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.body.length }, Raw: doc }, null, 3)}\n`,
        );
      else process.stdout.write(`${JSON.stringify(doc, null, 3)}\n`);
    } finally {
      closeIdleConnections();
    }
  });
  return manifest;
}
