/** `kiln import`: a root filesystem tar (plain or compressed) becomes a one-layer image, as `docker import`. */
import type { Readable } from 'node:stream';
import { openLayer, measureLayer } from '../layer/index.js';
import { KilnError } from '../util/index.js';
import { hostPlatform, type ContainerConfig, type ImageConfig, type Platform } from '../image/index.js';
import { type LoadedImage, type Store } from '../store/index.js';

export interface ImportOptions {
  name?: string;
  /** Config fields set by --change. */
  config?: ContainerConfig;
  /** Shown in history ("Imported from …"). */
  source?: string;
  message?: string;
  created?: Date;
  /** The platform the config records (default: this machine's), as `docker import --platform`. */
  platform?: Platform;
}

export async function importRootfs(store: Store, tar: Readable, opts: ImportOptions = {}): Promise<LoadedImage> {
  // Kept as a plain tar, as every layer made locally (a push compresses it: store/compressed.ts).
  const info = await store.putLayer(openLayer(tar));
  const blob = { digest: info.digest, size: info.size };
  // Not a tar (or cut short): refused now, rather than by every later use of the image.
  const measured = await measureLayer(store.openBlob(info.digest)).catch((e: unknown) => {
    throw new KilnError(
      'INVALID',
      `${opts.source ?? 'the input'} is not a root filesystem tar: ${(e as Error).message}`,
      { path: opts.source },
      { hint: 'kiln import reads a tar (plain, gzip or zstd), e.g. from docker export or tar -C rootfs -c .' },
    );
  });
  if (measured.entries === 0)
    throw new KilnError(
      'INVALID',
      `${opts.source ?? 'the input'} is not a root filesystem tar: it holds no entries`,
      { path: opts.source },
      { hint: 'kiln import reads a tar (plain, gzip or zstd), e.g. from docker export or tar -C rootfs -c .' },
    );
  const created = (opts.created ?? new Date()).toISOString();
  const p = opts.platform ?? hostPlatform();
  const config: ImageConfig = {
    created,
    architecture: p.architecture,
    os: p.os,
    ...(p.variant ? { variant: p.variant } : {}),
    config: opts.config ?? {},
    rootfs: { type: 'layers', diff_ids: [info.diffId] },
    history: [{ created, created_by: '', comment: opts.message ?? `Imported from ${opts.source ?? '-'}` }],
  };
  const img = await store.writeImage(config, [{ mediaType: info.mediaType, digest: blob.digest, size: blob.size }]);
  await store.verifyImage(img.descriptor, { where: opts.name ?? opts.source });
  if (opts.name) await store.setTag(opts.name, img.descriptor);
  return { name: opts.name, descriptor: img.descriptor, manifest: img.manifest, config, id: img.id };
}
