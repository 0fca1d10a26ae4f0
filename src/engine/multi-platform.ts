/**
 * A build for several platforms (`--platform linux/amd64,linux/arm64`): the engine builds the
 * target once per platform, all at once, sharing the machine's RUN slots and the steps whose cache
 * key is the same for several platforms (a FROM --platform=$BUILDPLATFORM stage that does not read
 * TARGET* runs once: the other platforms wait for it and take its cache record), then one OCI
 * index of the images, with their platforms, is written to the store (store.writeIndex).
 *
 * A `--cache-to` export is one for the whole build, as BuildKit's: each platform's build makes its
 * export ready (the secret proof searches that document) but sends nothing; once every platform
 * has built, one document of every platform's records (shared steps once) goes to each REF.
 */
import { withStop, settleAll } from './fail-fast.js';
import { availableParallelism } from 'node:os';
import { build, type BuildOptions, type BuildResult } from './engine.js';
import type { BuildEvent, EventSink } from './events.js';
import type { CacheRecord, CacheSink, PreparedCacheExport } from '../cache/index.js';
import { formatPlatform, parsePlatform, type Descriptor } from '../image/index.js';
import { normalizePlatform } from '../plan/index.js';
import { writeIndex } from '../store/index.js';
import { KilnError, Slots, type Digest } from '../util/index.js';

/** A build event of one platform of a multi-platform build. */
export type PlatformEvent = BuildEvent & { platform: string };

export interface PlatformBuild {
  platform: string;
  result: BuildResult;
}

export interface MultiPlatformResult {
  /** The index (what the tags name). */
  index: Descriptor;
  builds: PlatformBuild[];
}

/** "a,b" or ["a", "b,c"] → normalized, distinct platforms in the order given; a USAGE error for a bad one. */
export function parsePlatforms(given: string | string[]): string[] {
  const out: string[] = [];
  for (const p of (Array.isArray(given) ? given : [given]).flatMap((s) => s.split(',')).map((s) => s.trim())) {
    if (p === '') continue;
    const n = normalizePlatform(formatPlatform(parsePlatform(p)));
    if (!out.includes(n)) out.push(n);
  }
  if (!out.length) throw new KilnError('USAGE', '--platform needs at least one os/arch, e.g. linux/amd64,linux/arm64');
  return out;
}

/**
 * Builds `o` for each of `platforms` (events tagged with their platform) and writes the index of the
 * images; `o.tags` name the index. Nothing is tagged when a platform fails.
 */
export async function buildPlatforms(
  o: BuildOptions,
  platforms: string[],
  emit: (e: PlatformEvent) => void = () => undefined,
): Promise<MultiPlatformResult> {
  const runSlots = o.runSlots ?? new Slots(availableParallelism());
  const inflight = o.inflight ?? new Map<Digest, Promise<void>>();
  const exports = (o.cacheTo ?? []).map((sink) => new WholeBuildExport(sink));
  // The first platform to fail stops the others (fail-fast.ts).
  const stopOthers = new AbortController();
  const signal = withStop(o.signal, stopOthers);
  const stopped = withStop(o.stopped, stopOthers);
  const builds = await settleAll(
    platforms.map(async (platform) => {
      const sink: EventSink = (e) => emit({ ...e, platform });
      const cacheTo = exports.map((x) => x.platformSink(platforms.indexOf(platform)));
      const result = await build(
        { ...o, platform, tags: undefined, runSlots, inflight, cacheTo, signal, stopped },
        sink,
      );
      return { platform, result };
    }),
    stopOthers,
  );
  for (const x of exports) await x.push(o.store);
  const index = await writeIndex(
    o.store,
    builds.map((b) => ({ descriptor: b.result.descriptor, platform: parsePlatform(b.platform) })),
  );
  for (const t of o.tags ?? []) await o.store.setTag(t, index);
  return { index, builds };
}

/**
 * One `--cache-to` export for every platform of the build: the sink each platform's build gets
 * gathers its records and makes its document ready (for that build's secret proof: the whole
 * document holds the same records, serialized the same way), and pushes nothing; `push` then
 * sends one document of all of them, so no platform's export replaces another's.
 */
class WholeBuildExport {
  /** Each platform's records and memos, by its place in the build's platforms (the document's order). */
  private readonly gathered: { records: CacheRecord[]; memos: Map<Digest, Digest> }[] = [];

  constructor(private readonly sink: CacheSink) {}

  platformSink(i: number): CacheSink {
    return {
      mode: this.sink.mode,
      prepare: async (store, records, memos): Promise<PreparedCacheExport | undefined> => {
        this.gathered[i] = { records, memos };
        const ready = await this.sink.prepare(store, records, memos);
        return ready && { name: ready.name, config: ready.config, records: ready.records, push: async () => undefined };
      },
    };
  }

  async push(store: BuildOptions['store']): Promise<void> {
    const records = new Map<Digest, CacheRecord>();
    const memos = new Map<Digest, Digest>();
    for (const g of this.gathered) {
      for (const r of g?.records ?? []) if (!records.has(r.key)) records.set(r.key, r);
      for (const [k, v] of g?.memos ?? []) memos.set(k, v);
    }
    const ready = await this.sink.prepare(store, [...records.values()], memos);
    await ready?.push();
  }
}
