/**
 * `kiln manifest create|annotate|push|rm|inspect`: manifest lists (OCI image indexes) kept in the
 * store under a name, as `docker manifest` and `buildah manifest` make them; `inspect` reads the
 * store's list or the registry's manifest or index, as `docker manifest inspect`.
 */
import type { Command } from 'commander';
import { manifestAnnotate, manifestCreate, manifestInspect, manifestPush, manifestRemove } from '../../api/index.js';
import { formatPlatform } from '../../image/index.js';
import { closeIdleConnections } from '../../registry/index.js';
import { transferView } from '../../ui/index.js';
import { KilnError } from '../../util/index.js';
import { collect, globalOptions } from '../options.js';
import { addRegistryOptions, clientOptionsFrom, type RegistryFlags } from '../registry-options.js';
import { openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  const manifest = program
    .command('manifest')
    .description('make, change, push and read manifest lists (multi-platform images) of the store and registries');

  const create = manifest
    .command('create')
    .description('create a manifest list in the store from images of the store or references on a registry')
    .argument('<name>', 'name of the list (a tag in the store)')
    .argument('<images...>', 'images to put in it: names or IDs in the store, or registry references')
    .option('-a, --amend', 'add to the list NAME names already')
    .option('--all', 'an image that is itself a list adds every image of it');
  addRegistryOptions(create);
  create.action(
    async (name: string, images: string[], flags: RegistryFlags & { amend?: boolean; all?: boolean }, c: Command) => {
      const store = await openStoreFromCli(c);
      const r = await manifestCreate(name, images, {
        store,
        ...clientOptionsFrom(flags),
        amend: flags.amend,
        all: flags.all,
      });
      process.stderr.write(
        `Created manifest list ${r.name} (${r.manifests.map((m) => formatPlatform(m.platform)).join(', ')})\n`,
      );
      process.stdout.write(`${r.descriptor.digest}\n`);
    },
  );

  const annotate = manifest
    .command('annotate')
    .description('set the platform and annotations of an image in a manifest list')
    .argument('<name>', 'the manifest list')
    .argument('<image>', 'an image of the list: as given to create, or its manifest digest')
    .option('--os <os>', 'operating system')
    .option('--arch <arch>', 'architecture')
    .option('--variant <variant>', 'architecture variant (e.g. v8, v7)')
    .option('--os-version <version>', 'operating system version')
    .option('--os-features <features>', 'operating system features, comma-separated')
    .option('--annotation <key=value>', "an annotation of the image's entry; repeatable", collect);
  addRegistryOptions(annotate);
  annotate.action(
    async (
      name: string,
      image: string,
      flags: RegistryFlags & {
        os?: string;
        arch?: string;
        variant?: string;
        osVersion?: string;
        osFeatures?: string;
        annotation?: string[];
      },
      c: Command,
    ) => {
      const annotations: Record<string, string> = {};
      for (const a of flags.annotation ?? []) {
        const eq = a.indexOf('=');
        if (eq <= 0)
          throw new KilnError(
            'USAGE',
            `invalid --annotation "${a}": expected KEY=VALUE`,
            {},
            { hint: 'e.g. --annotation org.example.tier=gold' },
          );
        annotations[a.slice(0, eq)] = a.slice(eq + 1);
      }
      for (const [flag, v] of [
        ['--os', flags.os],
        ['--arch', flags.arch],
        ['--variant', flags.variant],
      ] as const)
        if (v !== undefined && !/^[a-z0-9._-]*$/.test(v))
          throw new KilnError('USAGE', `invalid ${flag} "${v}": lower-case letters, digits, ".", "_" and "-"`);
      if (flags.os === '' || flags.arch === '')
        throw new KilnError('USAGE', `${flags.os === '' ? '--os' : '--arch'} cannot be empty`);
      const store = await openStoreFromCli(c);
      const r = await manifestAnnotate(name, image, {
        store,
        ...clientOptionsFrom(flags),
        os: flags.os,
        arch: flags.arch,
        variant: flags.variant,
        osVersion: flags.osVersion,
        osFeatures:
          flags.osFeatures === undefined
            ? undefined
            : flags.osFeatures
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean),
        annotations,
      });
      process.stdout.write(`${r.descriptor.digest}\n`);
    },
  );

  const push = manifest
    .command('push')
    .description('push a manifest list of the store: every image, then the index')
    .argument('<name>', 'the manifest list')
    .argument('[destination]', 'where to push (default: the list name): [registry[:port]/]name[:tag]')
    .option('-p, --purge', 'remove the list from the store once it is pushed')
    .option('-q, --quiet', 'print only the pushed digest');
  addRegistryOptions(push);
  push.action(
    async (
      name: string,
      destination: string | undefined,
      flags: RegistryFlags & { purge?: boolean; quiet?: boolean },
      c: Command,
    ) => {
      const store = await openStoreFromCli(c);
      const view = transferView('push', process.stderr, { quiet: flags.quiet });
      try {
        const r = await manifestPush(name, destination, {
          store,
          ...clientOptionsFrom(flags),
          purge: flags.purge,
          onProgress: (e) => view.onEvent(e),
        });
        view.finish();
        if (!flags.quiet) process.stderr.write(`${r.ref}: digest: ${r.digest} size: ${r.size}\n`);
        process.stdout.write(`${r.digest}\n`);
      } finally {
        closeIdleConnections();
      }
    },
  );

  manifest
    .command('rm')
    .description('remove manifest lists from the store (their images stay)')
    .argument('<names...>', 'manifest lists')
    .action(async (names: string[], _flags: unknown, c: Command) => {
      const store = await openStoreFromCli(c);
      for (const n of await manifestRemove(names, { store })) process.stdout.write(`Deleted: ${n}\n`);
    });

  const inspect = manifest
    .command('inspect')
    .description('print a manifest list of the store, or the manifest or index a reference names on its registry')
    .argument(
      '<reference>',
      'a manifest list of the store, or an image reference: [registry[:port]/]name[:tag|@digest]',
    )
    .option('--raw', 'print the exact bytes (of the store or the registry)')
    .option('-v, --verbose', 'print the reference, the descriptor and the document');
  addRegistryOptions(inspect);
  inspect.action(async (reference: string, flags: RegistryFlags & { raw?: boolean; verbose?: boolean }, c: Command) => {
    const root = globalOptions(c).root;
    const m = await manifestInspect(reference, { root, ...clientOptionsFrom(flags) });
    if (flags.raw) {
      process.stdout.write(m.raw);
      return;
    }
    const doc = JSON.parse(m.raw.toString('utf8')) as unknown;
    // docker prints the document with a three-space indent.
    if (flags.verbose)
      process.stdout.write(`${JSON.stringify({ Ref: m.ref, Descriptor: m.descriptor, Raw: doc }, null, 3)}\n`);
    else process.stdout.write(`${JSON.stringify(doc, null, 3)}\n`);
  });
  return manifest;
}
