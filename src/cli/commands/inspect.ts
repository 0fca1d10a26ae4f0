/** `kiln inspect IMAGE…`: JSON with docker inspect's field names, plus the manifest. */
import type { Command } from 'commander';
import { familiarName, parseReference } from '../../image/index.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('inspect')
    .description("show an image's config, manifest, digests and size as JSON (docker inspect's field names)")
    .argument('<images...>', 'image names or IDs')
    .action(async (images: string[], _f: unknown, cmd: Command) => {
      const store = await openStoreFromCli(cmd);
      const out = [];
      for (const ref of images) {
        const img = await store.resolveImage(ref);
        const records = (await store.listImages()).filter((r) => r.descriptor.digest === img.descriptor.digest);
        const c = img.config;
        out.push({
          Id: img.id,
          RepoTags: records.map((r) => familiarName(r.name)),
          RepoDigests: records.map((r) => `${familiarName(parseReference(r.name).name())}@${img.descriptor.digest}`),
          Created: c.created,
          Author: c.author ?? '',
          Architecture: c.architecture,
          Variant: c.variant,
          Os: c.os,
          Size: await store.imageSize(img),
          Config: c.config ?? {},
          RootFS: { Type: c.rootfs.type, Layers: c.rootfs.diff_ids },
          History: c.history ?? [],
          Manifest: { Digest: img.descriptor.digest, MediaType: img.descriptor.mediaType, Layers: img.manifest.layers },
        });
      }
      process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
    });
}
