/**
 * The build cache in a registry: `--cache-to type=registry,ref=REF[,mode=min|max]` and
 * `--cache-from type=registry,ref=REF`, BuildKit's flags, with kiln's own format (not BuildKit's
 * application/vnd.buildkit.cacheconfig.v0 graph: a BuildKit cache cannot be read here, nor the
 * other way round).
 *
 * Format: one OCI image manifest under REF's tag (default "latest"), valid for any registry that
 * takes OCI artifacts (the distribution registry 2.8, Harbor, GHCR, ECR…):
 *
 *   { "schemaVersion": 2,
 *     "mediaType": "application/vnd.oci.image.manifest.v1+json",
 *     "config": { "mediaType": "application/vnd.kiln.cacheconfig.v1+json", "digest", "size" },
 *     "layers": [ the descriptor of every layer blob an exported record's state uses, each once,
 *                 in first-use order (base image layers included, so a machine that never pulled
 *                 the base still gets a complete state) ],
 *     "annotations": { "dev.kiln.cache.records": "<count>" } }
 *
 * The config blob is canonical JSON:
 *
 *   { "kilnCache": 1,
 *     "records": [ CacheRecord, … ],     // cache/records.ts: key → state after the step (layer
 *                                        // descriptors, image config, shell) and the layer it added
 *                                        // with its diff id and uncompressed size
 *     "memos": { "<memo key>": "<content digest>", … } }   // COPY --from content digests, so an
 *                                        // importer need not unpack a source stage to key a COPY
 *
 * Records are looked up by key: an importer computes a step's key as usual and, on a hit, pulls
 * the record's layer blobs it lacks (only those: a build that misses early pulls nothing).
 * A remote cache is trusted as a local one is: whoever can push to REF decides what a key maps to.
 */
import {
  canonicalJSON,
  parseReference,
  type ImageReference,
  MediaType,
  type Descriptor,
  parseDescriptor,
} from '../image/index.js';
import { type RegistryClient, readBody, eachLimited } from '../registry/index.js';
import { compressedLayer, type Store } from '../store/index.js';
import { isDigest, sha256, type Digest, KilnError } from '../util/index.js';
import {
  parseRecord,
  type CacheRecord,
  type CacheSink,
  type CacheSource,
  type PreparedCacheExport,
} from './records.js';

export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.kiln.cacheconfig.v1+json';
/** A cache config bigger than this is refused (a record is a few kB; 64 MiB is tens of thousands). */
const MAX_CONFIG = 64 << 20;

export interface CacheSpec {
  type: 'registry';
  ref: string;
  mode: 'min' | 'max';
  /** cache-to only: a failed export is a warning, not a failed build. */
  ignoreError: boolean;
}

/**
 * Parse a --cache-from / --cache-to value as BuildKit: `type=registry,ref=REF[,mode=min|max]
 * [,ignore-error=true]`, or a bare REF (type=registry). Other BuildKit cache types are refused.
 */
export function parseCacheSpec(spec: string, flag: '--cache-from' | '--cache-to'): CacheSpec {
  const hint = `${flag} type=registry,ref=REGISTRY/NAME:TAG${flag === '--cache-to' ? '[,mode=max]' : ''}`;
  if (!spec.includes('=')) {
    if (spec.trim() === '') throw new KilnError('USAGE', `empty ${flag}`, {}, { hint });
    parseRefOrUsage(spec, flag, hint);
    return { type: 'registry', ref: spec, mode: 'min', ignoreError: false };
  }
  const kv = new Map<string, string>();
  for (const part of spec.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw new KilnError('USAGE', `invalid ${flag} "${spec}": "${part}" is not KEY=VALUE`, {}, { hint });
    kv.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  const type = kv.get('type') ?? 'registry';
  if (type !== 'registry') {
    throw new KilnError(
      'USAGE',
      `${flag} type=${type} is not supported: kiln shares its build cache through a registry only`,
      {},
      { hint: `${hint} (the local store is always used as the cache)` },
    );
  }
  const ref = kv.get('ref');
  if (!ref) throw new KilnError('USAGE', `${flag} "${spec}" needs ref=REF`, {}, { hint });
  parseRefOrUsage(ref, flag, hint);
  const mode = kv.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max')
    throw new KilnError('USAGE', `invalid ${flag} mode "${mode}": use min or max`, {}, { hint });
  if (flag === '--cache-from' && kv.has('mode'))
    throw new KilnError('USAGE', '--cache-from takes no mode (it is a --cache-to option)', {}, { hint });
  const ie = kv.get('ignore-error') ?? 'false';
  if (ie !== 'true' && ie !== 'false')
    throw new KilnError('USAGE', `invalid ${flag} ignore-error "${ie}": use true or false`, {}, { hint });
  // Options of BuildKit's registry exporter that describe its own format: accepted, meaningless here.
  const known = new Set([
    'type',
    'ref',
    'mode',
    'ignore-error',
    'oci-mediatypes',
    'image-manifest',
    'compression',
    'compression-level',
    'force-compression',
  ]);
  for (const k of kv.keys())
    if (!known.has(k)) throw new KilnError('USAGE', `unknown ${flag} option "${k}"`, {}, { hint });
  return { type: 'registry', ref, mode, ignoreError: ie === 'true' };
}

function parseRefOrUsage(ref: string, flag: string, hint: string): ImageReference {
  try {
    return cacheRef(ref);
  } catch (e) {
    throw new KilnError('USAGE', `invalid ${flag} ref "${ref}": ${(e as Error).message}`, {}, { hint });
  }
}

/** REF with its tag (default latest) or digest. */
function cacheRef(ref: string): ImageReference {
  const r = parseReference(ref);
  return r.tag === undefined && r.digest === undefined ? parseReference(`${r.name()}:latest`) : r;
}

interface Imported {
  records: Map<Digest, CacheRecord>;
  memos: Map<Digest, Digest>;
  layers: Map<Digest, Descriptor>;
}

/** Records from a registry cache: the manifest and config are read once, layer blobs on a hit. */
export class RegistryCacheSource implements CacheSource {
  readonly ref: ImageReference;
  private loaded?: Promise<Imported>;

  constructor(
    ref: string,
    private readonly client: RegistryClient,
    private readonly warn: (message: string) => void = () => undefined,
  ) {
    this.ref = cacheRef(ref);
  }

  get name(): string {
    return this.ref.toString();
  }

  /** The cache's records (empty, with a warning, when it cannot be read: a first build has none). */
  load(): Promise<Imported> {
    this.loaded ??= this.fetch().catch((e: unknown) => {
      this.warn(`cannot import the build cache from ${this.ref.toString()}: ${(e as Error).message}`);
      return { records: new Map(), memos: new Map(), layers: new Map() };
    });
    return this.loaded;
  }

  private async fetch(): Promise<Imported> {
    const m = await this.client.getManifest(this.ref);
    const where = `build cache ${this.ref.toString()}`;
    let doc: { config?: unknown; layers?: unknown };
    try {
      doc = JSON.parse(m.body.toString('utf8')) as typeof doc;
    } catch {
      throw new KilnError('INVALID', `${where}: the manifest is not JSON`);
    }
    const notCache = (what: string) =>
      new KilnError(
        'INVALID',
        `${where} is not a kiln cache (${what})`,
        {},
        {
          hint: 'a BuildKit cache or an image cannot be imported as a kiln cache; point --cache-from at what --cache-to wrote',
        },
      );
    if (m.mediaType !== MediaType.OciManifest) throw notCache(`it is a ${m.mediaType || 'document of unknown type'}`);
    const config = parseDescriptor(doc.config, where);
    if (config.mediaType !== CACHE_CONFIG_MEDIA_TYPE)
      throw notCache(`its config is a ${config.mediaType}, not ${CACHE_CONFIG_MEDIA_TYPE}`);
    if (config.size > MAX_CONFIG)
      throw new KilnError('INVALID', `${where}: the cache config is too large (${config.size} bytes)`);
    const layers = new Map<Digest, Descriptor>();
    for (const l of Array.isArray(doc.layers) ? doc.layers : []) {
      const d = parseDescriptor(l, where);
      layers.set(d.digest, d);
    }
    const res = await this.client.fetchBlob(this.ref, config.digest);
    const body = await readBody(res, MAX_CONFIG);
    if (sha256(body) !== config.digest)
      throw new KilnError('DIGEST', `${where}: the cache config does not match its digest ${config.digest}`);
    let cfg: { kilnCache?: unknown; records?: unknown; memos?: unknown };
    try {
      cfg = JSON.parse(body.toString('utf8')) as typeof cfg;
    } catch {
      throw new KilnError('INVALID', `${where}: the cache config is not JSON`);
    }
    if (cfg.kilnCache !== 1)
      throw new KilnError('INVALID', `${where}: unknown cache config version ${JSON.stringify(cfg.kilnCache)}`);
    const records = new Map<Digest, CacheRecord>();
    let bad = 0;
    for (const r of Array.isArray(cfg.records) ? cfg.records : []) {
      try {
        const rec = parseRecord(r);
        // Usable only when the manifest names every blob of its state (else it cannot be pulled).
        if (rec.state.layers.every((l) => layers.get(l.digest)?.size === l.size)) records.set(rec.key, rec);
        else bad++;
      } catch {
        bad++;
      }
    }
    if (bad) this.warn(`${where}: ${bad} invalid cache record(s) ignored`);
    const memos = new Map<Digest, Digest>();
    if (typeof cfg.memos === 'object' && cfg.memos !== null) {
      for (const [k, v] of Object.entries(cfg.memos as Record<string, unknown>))
        if (isDigest(k) && isDigest(v)) memos.set(k, v);
    }
    return { records, memos, layers };
  }

  async record(key: Digest, store: Store): Promise<CacheRecord | undefined> {
    const c = await this.load();
    const rec = c.records.get(key);
    if (!rec) return undefined;
    // The layer blobs of the state, those the store lacks (verified as any pull).
    await eachLimited(rec.state.layers, 4, async (l) => {
      await this.client.pullBlobToStore(store, this.ref, c.layers.get(l.digest)!);
      await store.noteBlobSource(l.digest, this.ref.name());
    });
    return structuredClone(rec);
  }

  async memo(key: Digest): Promise<Digest | undefined> {
    return (await this.load()).memos.get(key);
  }
}

/** Writes the records a build used to a registry (replacing what REF held). */
export class RegistryCacheSink implements CacheSink {
  readonly ref: ImageReference;

  constructor(
    ref: string,
    readonly mode: 'min' | 'max',
    private readonly client: RegistryClient,
    private readonly opts: {
      ignoreError?: boolean;
      warn?: (message: string) => void;
      info?: (message: string) => void;
    } = {},
  ) {
    this.ref = cacheRef(ref);
    if (this.ref.digest !== undefined && this.ref.tag === undefined)
      throw new KilnError('USAGE', `--cache-to ref ${ref}: a cache is written under a tag, not a digest`);
  }

  async prepare(
    store: Store,
    records: CacheRecord[],
    memos: Map<Digest, Digest>,
  ): Promise<PreparedCacheExport | undefined> {
    let ready: { cfgBytes: Buffer; kept: CacheRecord[]; layers: Map<Digest, Descriptor> };
    try {
      ready = await this.document(store, records, memos);
    } catch (e) {
      this.failed(e);
      return undefined;
    }
    return {
      name: this.ref.toString(),
      config: ready.cfgBytes,
      records: ready.kept,
      push: async () => {
        try {
          await this.write(store, ready.cfgBytes, ready.kept, ready.layers);
        } catch (e) {
          this.failed(e);
        }
      },
    };
  }

  private failed(e: unknown): void {
    if (!this.opts.ignoreError) throw e;
    this.opts.warn?.(`cannot export the build cache to ${this.ref.toString()}: ${(e as Error).message}`);
  }

  /** The cache config document (the bytes pushed) and the layer blobs it names; nothing is sent. */
  private async document(store: Store, records: CacheRecord[], memos: Map<Digest, Digest>) {
    const layers = new Map<Digest, Descriptor>();
    const kept: CacheRecord[] = [];
    for (const r of records) {
      const have = await Promise.all(r.state.layers.map((l) => store.hasBlob(l.digest)));
      if (!have.every(Boolean)) continue; // a blob gone since (pruned): the record is of no use elsewhere
      const ids = r.state.config.rootfs.diff_ids;
      // Layers the store keeps as plain tars go gzipped (each is compressed once: the store remembers it).
      const sent: Descriptor[] = [];
      for (const [i, l] of r.state.layers.entries())
        sent.push(await compressedLayer(store, l, ids[i]!, { compression: 'gzip' }));
      for (const l of sent)
        if (!layers.has(l.digest)) layers.set(l.digest, { mediaType: l.mediaType, digest: l.digest, size: l.size });
      const own = r.layer ? r.state.layers.findIndex((l) => l.digest === r.layer!.digest) : -1;
      kept.push({
        ...r,
        state: { ...r.state, layers: sent },
        ...(r.layer && own >= 0
          ? { layer: { ...r.layer, mediaType: sent[own]!.mediaType, digest: sent[own]!.digest, size: sent[own]!.size } }
          : {}),
      });
    }
    const memoObj: Record<string, Digest> = {};
    for (const k of [...memos.keys()].sort()) memoObj[k] = memos.get(k)!;
    const cfgBytes = Buffer.from(canonicalJSON({ kilnCache: 1, records: kept, memos: memoObj }));
    return { cfgBytes, kept, layers };
  }

  private async write(
    store: Store,
    cfgBytes: Buffer,
    kept: CacheRecord[],
    layers: Map<Digest, Descriptor>,
  ): Promise<void> {
    const cfg = await store.putBlob(cfgBytes);
    const config: Descriptor = { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: cfg.digest, size: cfg.size };
    const blobs = [config, ...layers.values()];
    await eachLimited(blobs, 4, async (b) => {
      const mountFrom = (await store.blobSources(b.digest))
        .filter((s) => s.startsWith(`${this.ref.registry}/`) && s !== this.ref.name())
        .map((s) => s.slice(this.ref.registry.length + 1));
      await this.client.pushBlobFromStore(store, this.ref, b, { mountFrom });
      await store.noteBlobSource(b.digest, this.ref.name());
    });
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config,
      layers: [...layers.values()],
      annotations: { 'dev.kiln.cache.records': String(kept.length) },
    };
    await this.client.putManifest(
      this.ref,
      this.ref.tag ?? 'latest',
      Buffer.from(canonicalJSON(manifest)),
      MediaType.OciManifest,
    );
    this.opts.info?.(`exported ${kept.length} cache record(s) and ${layers.size} layer(s) to ${this.ref.toString()}`);
  }
}
