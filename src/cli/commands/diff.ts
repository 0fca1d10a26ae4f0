/** `kiln diff IMAGE_A IMAGE_B`: files and packages added, removed and changed between two images, with sizes. */
import type { Command } from 'commander';
import { displayName, diffImages, type ImageDiff } from '../../analyze/index.js';
import { KilnError } from '../../util/index.js';
import { emit, human, openImageFromCli, progress } from './analyze.js';

export function formatDiffText(d: ImageDiff, limit: number): string {
  const out: string[] = [];
  const name = (x: ImageDiff['a']) => displayName(x);
  out.push(`A: ${name(d.a)}  ${human(d.a.size)} in ${d.a.files} files, ${d.a.packages} packages`);
  out.push(`B: ${name(d.b)}  ${human(d.b.size)} in ${d.b.files} files, ${d.b.packages} packages`);
  out.push(`B - A: ${human(d.b.size - d.a.size)} (${d.sharedLayers} shared layer${d.sharedLayers === 1 ? '' : 's'})`);
  out.push('');
  out.push(
    `Files: ${d.summary.added.count} added (${human(d.summary.added.bytes)}), ${d.summary.removed.count} removed (${human(d.summary.removed.bytes)}), ${d.summary.changed.count} changed (${human(d.summary.changed.bytes)})`,
  );
  const pk = (k: string) => d.packages.filter((p) => p.kind === k).length;
  out.push(`Packages: ${pk('added')} added, ${pk('removed')} removed, ${pk('changed')} changed`);
  if (d.packages.length) {
    out.push('');
    out.push('Packages:');
    for (const p of d.packages) {
      const v = p.kind === 'changed' ? `${p.versionA} -> ${p.versionB}` : (p.versionA ?? p.versionB);
      out.push(`  ${p.kind === 'added' ? '+' : p.kind === 'removed' ? '-' : '~'} ${p.type.padEnd(6)} ${p.name} ${v}`);
    }
  }
  const files = d.files.filter((f) => f.type !== 'directory');
  if (files.length) {
    out.push('');
    const size = (f: (typeof files)[number]) => Math.max(f.sizeA ?? 0, f.sizeB ?? 0);
    const shown = [...files].sort((x, y) => size(y) - size(x) || (x.path < y.path ? -1 : 1)).slice(0, limit);
    out.push(`Files (largest ${shown.length} of ${files.length}):`);
    for (const f of shown) {
      const s =
        f.kind === 'changed'
          ? `${human(f.sizeA ?? 0)} -> ${human(f.sizeB ?? 0)} (${(f.what ?? []).join(', ')})`
          : human(f.sizeA ?? f.sizeB ?? 0);
      out.push(`  ${f.kind === 'added' ? '+' : f.kind === 'removed' ? '-' : '~'} /${f.path}  ${s}`);
    }
  }
  return `${out.join('\n')}\n`;
}

export function register(program: Command): Command {
  return program
    .command('diff')
    .description(
      'compare two images: files and packages added, removed and changed, with sizes (e.g. the builder stage against the final image)',
    )
    .argument('<image-a>', 'the first image (name/ID in the store, an archive, or a registry reference)')
    .argument('<image-b>', 'the second image')
    .option('--format <format>', 'text or json', 'text')
    .option('--limit <n>', 'how many files to list in text output (largest first)', '50')
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from multi-platform images')
    .action(
      async (
        a: string,
        b: string,
        flags: { format: string; limit: string; output?: string; platform?: string },
        cmd: Command,
      ) => {
        if (flags.format !== 'text' && flags.format !== 'json')
          throw new KilnError('USAGE', `unknown --format "${flags.format}": use text or json`);
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit < 0) throw new KilnError('USAGE', `invalid --limit "${flags.limit}"`);
        const sa = await openImageFromCli(cmd, a, flags.platform);
        const sb = await openImageFromCli(cmd, b, flags.platform).catch(async (e) => {
          await sa.close();
          throw e;
        });
        const p = progress('diff');
        let d: ImageDiff;
        try {
          d = await diffImages(sa, sb, { onLayer: (_w, i, n) => p.onLayer(i, n) });
        } finally {
          p.done();
          await sa.close();
          await sb.close();
        }
        await emit(
          flags.format === 'json' ? `${JSON.stringify(d, null, 2)}\n` : formatDiffText(d, limit),
          flags.output,
        );
      },
    );
}
