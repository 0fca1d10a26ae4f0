/** `kiln prune`: garbage-collect blobs and snapshots no image uses. */
import type { Command } from 'commander';
import { humanSize, openStoreFromCli } from '../store.js';

export function register(program: Command): Command {
  return program
    .command('prune')
    .description('remove blobs, snapshots and temporary files that no tagged image references')
    .option('--all-ages', 'also remove what was written in the last 10 minutes (only when no build runs)')
    .action(async (flags: { allAges?: boolean }, cmd: Command) => {
      const store = await openStoreFromCli(cmd);
      const r = await store.gc({ minAgeMs: flags.allAges ? 0 : undefined });
      process.stdout.write(`Deleted ${r.blobs} blob(s) and ${r.snapshots} snapshot(s)\nTotal reclaimed space: ${humanSize(r.bytes)}\n`);
    });
}
