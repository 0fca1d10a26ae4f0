/**
 * `kiln prune`: garbage-collect blobs and snapshots no image uses. The build cache keeps what its
 * records need (gc roots), so a plain prune leaves the cache working; `--cache` drops cache
 * records first — all of them, or with `--keep-storage SIZE` the least recently used until the
 * layers the cache made fit in SIZE — and, when dropping everything, RUN --mount=type=cache
 * directories (STORE/cache-mounts) too. Then the gc frees the blobs nothing references any more.
 * First of all, what a killed kiln left behind is torn down: its runs' and views' mounts, runtime
 * state and private tmpfs files; and the failed steps `--on-error=keep` kept (kiln debug) go.
 */
import type { Command } from 'commander';
import { pruneCacheMounts, pruneKeptSteps } from '../../engine/index.js';
import { CacheIndex } from '../../cache/index.js';
import { KilnError } from '../../util/index.js';
import { cleanupStaleRuns, sweepPrivateDirs } from '../../sandbox/index.js';
import { humanSize } from '../../ui/index.js';
import { openStoreFromCli } from '../store.js';

/** Sizes as docker's --keep-storage takes them (go-units RAMInBytes: "512MB", "10g", "1.5GiB", bytes); units are 1024-based. */
export function parseKeepStorage(s: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([kmgtp])(?:i?b)?|(b))?\s*$/i.exec(s);
  if (!m)
    throw new KilnError(
      'USAGE',
      `invalid --keep-storage "${s}"`,
      {},
      { hint: 'a size in bytes or with a unit: 500MB, 10GB, 1.5GiB' },
    );
  const exp = m[2] ? ' kmgtp'.indexOf(m[2].toLowerCase()) : 0;
  return Math.floor(Number(m[1]) * 1024 ** exp);
}

interface PruneFlags {
  allAges?: boolean;
  cache?: boolean;
  keepStorage?: string;
}

export function register(program: Command): Command {
  return program
    .command('prune')
    .description(
      'remove failed steps kept for kiln debug, and blobs, snapshots and temporary files that no tagged image or build-cache record references',
    )
    .option('--all-ages', 'also remove what was written in the last 10 minutes (only when no build runs)')
    .option(
      '--cache',
      'also drop the build cache (its records, context file digests and RUN --mount=type=cache directories)',
    )
    .option(
      '--keep-storage <size>',
      'with --cache: keep the most recently used cache records whose layers fit in SIZE (e.g. 5GB); mount caches are kept',
    )
    .action(async (flags: PruneFlags, cmd: Command) => {
      if (flags.keepStorage !== undefined && !flags.cache)
        throw new KilnError(
          'USAGE',
          '--keep-storage goes with --cache',
          {},
          { hint: 'kiln prune --cache --keep-storage 5GB' },
        );
      const keepBytes = flags.keepStorage !== undefined ? parseKeepStorage(flags.keepStorage) : undefined;
      const store = await openStoreFromCli(cmd);
      // What killed kiln processes left: run and view dirs (mounts, runtime state), private tmpfs dirs.
      const runs = await cleanupStaleRuns(store.root);
      sweepPrivateDirs();
      if (runs > 0) process.stdout.write(`Cleaned up ${runs} run(s) left by stopped kiln processes\n`);
      // Failed steps kept for kiln debug: their gc roots go with them, so the gc below frees their snapshots.
      const kept = await pruneKeptSteps(store.root);
      if (kept > 0) process.stdout.write(`Deleted ${kept} kept failed step(s)\n`);
      if (flags.cache) {
        const c = await CacheIndex.forStore(store).prune({ keepBytes });
        let mounts = '';
        if (keepBytes === undefined) {
          // RUN --mount=type=cache directories: shared between builds, in no layer; only a full prune drops them.
          // Only directories no running build holds are removed.
          const m = await pruneCacheMounts(store.root);
          if (m.dirs > 0) mounts = `, ${m.dirs} cache mount(s) (${humanSize(m.bytes)})`;
        }
        process.stdout.write(
          `Deleted ${c.records} build-cache record(s)${mounts}; cache layers kept: ${humanSize(c.keptBytes)}\n`,
        );
      }
      const r = await store.gc({ minAgeMs: flags.allAges ? 0 : undefined });
      process.stdout.write(
        `Deleted ${r.blobs} blob(s) and ${r.snapshots} snapshot(s)\nTotal reclaimed space: ${humanSize(r.bytes)}\n`,
      );
    });
}
