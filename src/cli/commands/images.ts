/** `kiln images`: the tagged images in the store, as `docker images` lists them. */
import type { Command } from 'commander';
import { digestHex, KilnError } from '../../util/index.js';
import { parseReference, familiarName, formatPlatform, normalizeImageName } from '../../image/index.js';
import { isIndexDescriptor, readIndexBlob } from '../../store/index.js';
import { humanAgo, humanSize, printTable } from '../../ui/index.js';
import { openStoreFromCli } from '../store.js';

const FIELDS = ['Repository', 'Tag', 'ID', 'Digest', 'CreatedAt', 'CreatedSince', 'Size', 'Platforms'];
const HEADERS: Record<string, string> = {
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  ID: 'IMAGE ID',
  Digest: 'DIGEST',
  CreatedAt: 'CREATED AT',
  CreatedSince: 'CREATED',
  Size: 'SIZE',
  Platforms: 'PLATFORMS',
};

/**
 * The part of docker's Go templates `images --format` is used with: `{{.Field}}`, `{{json .}}`,
 * `\t`, and a `table ` prefix. Anything else is refused, naming what was not understood.
 */
export function compileTemplate(format: string): {
  table: boolean;
  header: string;
  render(fields: Record<string, string>, json: string): string;
} {
  const table = format.startsWith('table ');
  const body = (table ? format.slice(6) : format).replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const parts: ({ text: string } | { field: string } | { json: true })[] = [];
  let rest = body;
  while (rest.length) {
    const open = rest.indexOf('{{');
    if (open < 0) {
      parts.push({ text: rest });
      break;
    }
    if (open > 0) parts.push({ text: rest.slice(0, open) });
    const close = rest.indexOf('}}', open);
    if (close < 0) throw new KilnError('USAGE', `--format ${JSON.stringify(format)}: unclosed "{{"`);
    const action = rest.slice(open + 2, close).trim();
    const m = /^\.(\w+)$/.exec(action);
    if (m) {
      if (!FIELDS.includes(m[1]!))
        throw new KilnError(
          'USAGE',
          `--format ${JSON.stringify(format)}: no field .${m[1]} (fields: ${FIELDS.map((f) => `.${f}`).join(', ')})`,
        );
      parts.push({ field: m[1]! });
    } else if (action === 'json .') parts.push({ json: true });
    else
      throw new KilnError(
        'USAGE',
        `--format ${JSON.stringify(format)}: cannot evaluate {{${action}}} (kiln understands {{.Field}} and {{json .}})`,
      );
    rest = rest.slice(close + 2);
  }
  const header = parts.map((p) => ('text' in p ? p.text : 'field' in p ? (HEADERS[p.field] ?? p.field) : '')).join('');
  return {
    table,
    header,
    render: (fields, json) => parts.map((p) => ('text' in p ? p.text : 'field' in p ? fields[p.field] : json)).join(''),
  };
}

export function register(program: Command): Command {
  return program
    .command('images')
    .description('list images in the store (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE)')
    .argument('[reference]', 'only images matching this name (repository or repository:tag)')
    .option('-q, --quiet', 'only show image IDs')
    .option('--no-trunc', "don't truncate image IDs")
    .option('--tree', 'a row per platform under each multi-platform image')
    .option(
      '--format <format>',
      "table (default), json, or a Go template as docker's: '{{.Repository}}:{{.Tag}}' (fields: Repository, Tag, ID, Digest, CreatedAt, CreatedSince, Size, Platforms; 'table ' prefix adds a header)",
    )
    .action(
      async (
        reference: string | undefined,
        flags: { quiet?: boolean; trunc: boolean; format?: string; tree?: boolean },
        cmd: Command,
      ) => {
        // A bad format fails before any work, and never falls back to the table.
        const template =
          flags.format !== undefined && flags.format !== 'table' && flags.format !== 'json'
            ? compileTemplate(flags.format)
            : undefined;
        const store = await openStoreFromCli(cmd);
        let records = await store.listImages();
        if (reference) {
          const want =
            reference.includes(':') || reference.includes('@')
              ? normalizeImageName(reference)
              : parseReference(reference).name();
          records = records.filter((r) => r.name === want || parseReference(r.name).name() === want);
        }
        const rows: {
          repository: string;
          tag: string;
          id: string;
          created: string | undefined;
          size: number;
          digest: string;
          platforms: string[];
          /** An index's images (for --tree): platform, image id, size. */
          children: { platform: string; id: string; size: number }[];
        }[] = [];
        for (const r of records) {
          const ref = parseReference(r.name);
          if (isIndexDescriptor(r.descriptor)) {
            // An index (multi-platform image): its digest is its ID, as docker's containerd store shows it.
            const index = await readIndexBlob(store, r.descriptor, r.name);
            const children: (typeof rows)[number]['children'] = [];
            let created: string | undefined;
            for (const m of index.manifests) {
              const platform = m.platform ? formatPlatform(m.platform) : 'unknown';
              if (!(await store.hasBlob(m.digest))) continue;
              const img = await store.loadImage(m, { name: r.name }).catch(() => undefined);
              if (!img) continue;
              const size = await store.imageSize(img);
              children.push({ platform, id: img.id, size });
              if (img.config.created && (!created || img.config.created > created)) created = img.config.created;
            }
            rows.push({
              repository: familiarName(ref.name()),
              tag: ref.tag ?? '<none>',
              id: r.descriptor.digest,
              created,
              size: children.reduce((n, c) => n + c.size, 0),
              digest: r.descriptor.digest,
              platforms: index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')),
              children,
            });
            continue;
          }
          const img = await store.loadImage(r.descriptor, { name: r.name });
          const platform = formatPlatform({
            os: img.config.os,
            architecture: img.config.architecture,
            ...(img.config.variant ? { variant: img.config.variant } : {}),
          });
          rows.push({
            repository: familiarName(ref.name()),
            tag: ref.tag ?? '<none>',
            id: img.id,
            created: img.config.created,
            size: await store.imageSize(img),
            digest: r.descriptor.digest,
            platforms: [platform],
            children: [],
          });
        }
        if (flags.quiet) {
          for (const id of new Set(rows.map((r) => (flags.trunc ? digestHex(r.id).slice(0, 12) : r.id))))
            process.stdout.write(`${id}\n`);
          return;
        }
        if (flags.format === 'json') {
          for (const r of rows)
            process.stdout.write(
              `${JSON.stringify({ Repository: r.repository, Tag: r.tag, ID: r.id, Digest: r.digest, CreatedAt: r.created, Size: r.size, Platforms: r.platforms })}\n`,
            );
          return;
        }
        if (template) {
          const fields = (r: (typeof rows)[number]): Record<string, string> => ({
            Repository: r.repository,
            Tag: r.tag,
            ID: flags.trunc ? digestHex(r.id).slice(0, 12) : r.id,
            Digest: r.digest,
            CreatedAt: r.created ?? '',
            CreatedSince: humanAgo(r.created),
            Size: humanSize(r.size),
            Platforms: r.platforms.join(','),
          });
          if (template.table) process.stdout.write(`${template.header}\n`);
          for (const r of rows)
            process.stdout.write(
              `${template.render(fields(r), JSON.stringify({ Repository: r.repository, Tag: r.tag, ID: r.id, Digest: r.digest, CreatedAt: r.created, Size: r.size, Platforms: r.platforms }))}\n`,
            );
          return;
        }
        // A PLATFORMS column when a multi-platform image is listed: its row is the index (one tag,
        // one row, as docker images shows it); --tree adds a row per platform, as docker 25's.
        const multi = rows.some((r) => r.children.length > 0 || r.platforms.length > 1);
        const id = (x: string) => (flags.trunc ? digestHex(x).slice(0, 12) : x);
        const table: string[][] = [
          ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', ...(multi ? ['PLATFORMS'] : [])],
        ];
        for (const r of rows) {
          table.push([
            r.repository,
            r.tag,
            id(r.id),
            humanAgo(r.created),
            humanSize(r.size),
            ...(multi ? [r.platforms.join(',')] : []),
          ]);
          if (flags.tree)
            for (const c of r.children)
              table.push([`└─ ${c.platform}`, '', id(c.id), '', humanSize(c.size), ...(multi ? [''] : [])]);
        }
        printTable(table);
      },
    );
}
