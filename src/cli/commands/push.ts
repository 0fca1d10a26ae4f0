/** `kiln push IMAGE [DEST]`: an image of the store to a registry, as `docker push` (+ skopeo's DEST). */
import type { Command } from 'commander';
import { closeIdleConnections } from '../../registry/index.js';
import { push } from '../../api/index.js';
import { parseCompression, validLevel } from '../../store/index.js';
import { transferView } from '../../ui/index.js';
import { KilnError, writeFileAtomic } from '../../util/index.js';
import { addRegistryOptions, clientOptionsFrom, type RegistryFlags } from '../registry-options.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  const cmd = program
    .command('push')
    .description('push an image of the store to a registry')
    .argument('<image>', 'image name or id in the store')
    .argument('[destination]', 'where to push (default: the image name): [registry[:port]/]name[:tag]')
    .option('-q, --quiet', 'print only the pushed digest')
    .option('--chunk-size <bytes>', 'upload blobs in chunks of this size (PATCH) instead of one request each')
    .option('--digestfile <file>', 'write the pushed manifest digest to this file')
    .option(
      '--compression-format <format>',
      'compression of layers the store keeps as plain tars: gzip (default), zstd or uncompressed',
    )
    .option(
      '--compression-level <n>',
      "its level: gzip 1-9, zlib's (default: libdeflate's level 2, blobs no bigger than zlib's level 4 or skopeo's default gzip, for a quarter less CPU), zstd 1-19 (default 3)",
    )
    .option(
      '--force-compression',
      'also re-encode layers compressed otherwise (e.g. a gzip base image layer for zstd)',
    );
  addRegistryOptions(cmd);
  return cmd.action(
    async (
      image: string,
      destination: string | undefined,
      flags: RegistryFlags & {
        quiet?: boolean;
        chunkSize?: string;
        digestfile?: string;
        compressionFormat?: string;
        compressionLevel?: string;
        forceCompression?: boolean;
      },
      c: Command,
    ) => {
      let chunkSize: number | undefined;
      if (flags.chunkSize !== undefined) {
        chunkSize = Number(flags.chunkSize);
        if (!Number.isInteger(chunkSize) || chunkSize < 1024)
          throw new KilnError('USAGE', `invalid --chunk-size "${flags.chunkSize}": a byte count of at least 1024`);
      }
      const compression = flags.compressionFormat === undefined ? 'gzip' : parseCompression(flags.compressionFormat);
      if (!compression)
        throw new KilnError(
          'USAGE',
          `unknown --compression-format "${flags.compressionFormat}"`,
          {},
          { hint: 'use gzip, zstd or uncompressed' },
        );
      const level = flags.compressionLevel === undefined ? undefined : Number(flags.compressionLevel);
      if (level !== undefined && !validLevel(compression, level))
        throw new KilnError(
          'USAGE',
          `invalid --compression-level "${flags.compressionLevel}" for ${compression === 'none' ? 'uncompressed layers' : compression}`,
          {},
          { hint: 'gzip takes 1-9, zstd 1-19' },
        );
      const store = await openStoreFromCli(c);
      const view = transferView('push', process.stderr, { quiet: flags.quiet });
      try {
        const r = await push(image, {
          store,
          destination,
          ...clientOptionsFrom(flags),
          chunkSize,
          compression,
          compressionLevel: level,
          forceCompression: flags.forceCompression,
          onProgress: (e) => view.onEvent(e),
        });
        view.finish();
        if (flags.digestfile) {
          await writeFileAtomic(flags.digestfile, r.digest);
        }
        if (!flags.quiet) process.stderr.write(`${r.ref}: digest: ${r.digest} size: ${r.size}\n`);
        process.stdout.write(`${r.digest}\n`);
      } finally {
        closeIdleConnections();
      }
    },
  );
}
