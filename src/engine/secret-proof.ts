/**
 * The secret proof: after a build that was given `--secret` values, before anything leaves the
 * machine (push, archive output, cache export), search what would ship for the bytes of each
 * secret, as they are and in the encodings a RUN might write them with. docs/security.md says what
 * is searched and why.
 *
 * What is searched: every layer of the final image that this build made or reused from its cache
 * (the base images' layers were not made with the secrets), every layer a `--cache-to` export
 * carries, the image config (env, labels, history), and the config document each `--cache-to`
 * export will push (every record's state: its image config with env, labels and history) — the
 * very bytes the exporter made ready, searched before it sends them. A builder stage's layer that
 * neither the image nor an exported cache record carries never leaves the machine: it is not a
 * leak, and not searched. Files a later layer deleted are still in their layer's blob, and are
 * found there.
 */
import { type CacheRecord } from '../cache/index.js';
import { canonicalJSON, type Descriptor, type ImageConfig } from '../image/index.js';
import { BLOCK, decodeHeader, openLayer, parsePax } from '../layer/index.js';
import { type Store } from '../store/index.js';
import { type Digest, MultiSearch, KilnError, type ErrorPlace } from '../util/index.js';
import { readSecret, type SecretSource, type SshSource } from './run-flags.js';
import { type CacheExport, type RecordStep } from './cache-step.js';

/** Shorter values would give false hits (a word, a small number): they are not searched, with a warning. */
export const MIN_SECRET_BYTES = 8;
/** Values up to this size are searched whole; longer ones by windows of their middle (see secretPatterns). */
const WHOLE_MAX = 256;
const WINDOW = 64;
const WINDOWS = 4;
/** Encoded forms are also searched by pieces of this many characters: `base64` and `xxd -p` wrap lines. */
const PIECE = 24;

export interface SecretValue {
  /** `secret ID` or the like: how messages name it. */
  name: string;
  bytes: Buffer;
}

export interface SecretPattern {
  secret: string;
  /** as-is, base64, base64url, hex, HEX, url-encoded, json-escaped */
  encoding: string;
  bytes: Buffer;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function asText(b: Buffer): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

/**
 * The inner characters of base64(data) that depend on `b` alone, when `b` starts `align` bytes
 * after a multiple of 3 in the encoded stream (0, 1, 2: one of the three is where it lies).
 */
export function base64Inner(b: Buffer, align: number): string {
  const e = Buffer.concat([Buffer.alloc(align), b]).toString('base64');
  return e.slice(Math.ceil((8 * align) / 6), Math.floor((8 * (align + b.length)) / 6));
}

/** Consecutive pieces of `s` (the last one ending at its end) when it is longer than one piece. */
function pieces(s: string): string[] {
  if (s.length <= PIECE) return [s];
  const out: string[] = [];
  for (let i = 0; i + PIECE <= s.length; i += PIECE) out.push(s.slice(i, i + PIECE));
  if (s.length % PIECE) out.push(s.slice(s.length - PIECE));
  return out;
}

/** The raw parts of a value searched: the whole value, or windows of the middle of a long one. */
function rawParts(v: Buffer): Buffer[] {
  if (v.length <= WHOLE_MAX) return [v];
  // A long value (a private key, a config file) often starts and ends with text shared by every
  // value of its kind (-----BEGIN …, a registry URL): the windows skip those ends.
  const lo = 32;
  const hi = v.length - 32 - WINDOW;
  const out: Buffer[] = [];
  for (let k = 0; k < WINDOWS; k++) {
    const at = lo + Math.floor(((hi - lo) * k) / (WINDOWS - 1));
    out.push(v.subarray(at, at + WINDOW));
  }
  return out;
}

/**
 * The byte patterns that betray each value: as-is, base64 (standard and URL alphabets, the three
 * alignments), hex (lower and upper case), URL-encoded, JSON-escaped. Leading and trailing
 * whitespace is dropped first (a secret file's final newline is often not what a RUN writes).
 * Values shorter than MIN_SECRET_BYTES are returned in `tooShort`, not searched.
 */
export function secretPatterns(values: SecretValue[]): { patterns: SecretPattern[]; tooShort: SecretValue[] } {
  const patterns: SecretPattern[] = [];
  const tooShort: SecretValue[] = [];
  for (const v of values) {
    const trimmed = Buffer.from(v.bytes.toString('latin1').trim(), 'latin1');
    if (trimmed.length < MIN_SECRET_BYTES) {
      tooShort.push(v);
      continue;
    }
    const seen = new Set<string>();
    const add = (encoding: string, s: string | Buffer) => {
      const bytes = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
      const k = bytes.toString('latin1');
      if (bytes.length === 0 || seen.has(k)) return;
      seen.add(k);
      patterns.push({ secret: v.name, encoding, bytes });
    };
    for (const part of rawParts(trimmed)) {
      add('as-is', part);
      const plain = part.toString('latin1');
      // A piece of an encoding that is also plain text of the value is found as-is already.
      const addEncoded = (encoding: string, s: string) => {
        if (!plain.includes(s)) add(encoding, s);
      };
      for (const align of [0, 1, 2]) {
        const b64 = base64Inner(part, align);
        for (const p of pieces(b64)) addEncoded('base64', p);
        for (const p of pieces(b64.replaceAll('+', '-').replaceAll('/', '_'))) addEncoded('base64url', p);
      }
      for (const p of pieces(part.toString('hex'))) addEncoded('hex', p);
      for (const p of pieces(part.toString('hex').toUpperCase())) addEncoded('HEX', p);
      const text = asText(part);
      if (text !== undefined) {
        const url = encodeURIComponent(text);
        if (url !== text) for (const p of pieces(url)) addEncoded('url-encoded', p);
        const json = JSON.stringify(text).slice(1, -1);
        if (json !== text) for (const p of pieces(json)) addEncoded('json-escaped', p);
      }
    }
  }
  return { patterns, tooShort };
}

/** A layer the proof searches, and the step that made it (for the message). */
export interface LayerToSearch {
  descriptor: Descriptor;
  diffId: Digest;
  /** The image, an exported cache record, or both. */
  shippedIn: string;
  step?: ErrorPlace & { text?: string };
}

export interface SecretHit {
  secret: string;
  encoding: string;
  /** `layer` (a file, its name, a link target or an xattr), `config`, or an exported cache config. */
  in: 'layer' | 'config' | 'cache-config';
  layer?: LayerToSearch;
  /** The path inside the layer (with a leading /), what part of the config, or the cache's reference. */
  path: string;
  /** A cache config hit: the record's stage and step, and the field (env NAME, label KEY, history line N). */
  record?: { stage: string; step?: RecordStep['step']; field: string };
}

/** A cache config document an export will push, and the records it holds. */
export interface CacheConfigToSearch {
  /** The cache's reference. */
  name: string;
  /** Exactly the bytes the export pushes. */
  bytes: Buffer;
  /** Its records in document order, each with its stage (as messages name it) and step when known. */
  records: { record: CacheRecord; stage: string; step?: RecordStep['step'] }[];
}

/** The fields of a record that a value can lie in, each as serialized (JSON) in the document. */
function recordFields(r: CacheRecord): { field: string; bytes: Buffer }[] {
  const out: { field: string; bytes: Buffer }[] = [];
  const c = r.state.config;
  for (const e of c.config?.Env ?? []) {
    const eq = e.indexOf('=');
    out.push({ field: `env ${eq < 0 ? e : e.slice(0, eq)}`, bytes: Buffer.from(JSON.stringify(e)) });
  }
  for (const [k, v] of Object.entries(c.config?.Labels ?? {}))
    out.push({ field: `label ${k}`, bytes: Buffer.from(`${JSON.stringify(k)}:${JSON.stringify(v)}`) });
  (c.history ?? []).forEach((h, i) =>
    out.push({ field: `history line ${i + 1}`, bytes: Buffer.from(canonicalJSON(h)) }),
  );
  // Anything else (the shell, a command, a workdir, a user…): the record as a whole.
  out.push({ field: 'record', bytes: Buffer.from(canonicalJSON(r)) });
  return out;
}

/**
 * Search a cache config document — the bytes as they will be pushed — and, where it matches,
 * name the record (its stage and step) and the field each match lies in: the first record of a
 * stage that carries it (later records of the stage repeat the state they inherit).
 */
function searchCacheConfig(
  search: MultiSearch,
  patterns: SecretPattern[],
  c: CacheConfigToSearch,
  note: (h: SecretHit) => void,
): void {
  const inDocument = new Set(search.findAll(c.bytes).map((m) => m.pattern));
  if (!inDocument.size) return;
  const where = `exported cache config (${c.name})`;
  const named = new Set<number>();
  const seen = new Set<string>();
  for (const { record, stage, step } of c.records) {
    let inFields = false;
    for (const f of recordFields(record)) {
      if (f.field === 'record' && inFields) break; // the record's hits are named by field already
      for (const m of search.findAll(f.bytes)) {
        if (!inDocument.has(m.pattern)) continue;
        inFields = true;
        named.add(m.pattern);
        const p = patterns[m.pattern]!;
        const k = `${p.secret}\0${stage}\0${f.field}`;
        if (seen.has(k)) continue;
        seen.add(k);
        note({
          secret: p.secret,
          encoding: p.encoding,
          in: 'cache-config',
          path: where,
          record: { stage, ...(step ? { step } : {}), field: f.field },
        });
      }
    }
  }
  // A match no record field holds (outside the records): still a hit, on the document.
  for (const pattern of inDocument)
    if (!named.has(pattern)) {
      const p = patterns[pattern]!;
      note({ secret: p.secret, encoding: p.encoding, in: 'cache-config', path: where });
    }
}

/** Search the layers (streamed: blob → decompress → tar entries) and the configs for the patterns. */
export async function searchForSecrets(
  store: Store,
  patterns: SecretPattern[],
  layers: LayerToSearch[],
  configs: { name: string; config: ImageConfig }[],
  cacheConfigs: CacheConfigToSearch[] = [],
): Promise<SecretHit[]> {
  if (!patterns.length) return [];
  const search = new MultiSearch(patterns.map((p) => p.bytes));
  const hits: SecretHit[] = [];
  const seen = new Set<string>();
  const note = (h: SecretHit) => {
    const k = `${h.secret}\0${h.layer?.diffId ?? 'config'}\0${h.path}\0${h.record?.stage ?? ''}\0${h.record?.field ?? ''}`;
    if (seen.has(k)) return; // one hit per value and file is enough
    seen.add(k);
    hits.push(h);
  };
  const onMatch = (pattern: number, where: Omit<SecretHit, 'secret' | 'encoding'>) => {
    const p = patterns[pattern]!;
    note({ secret: p.secret, encoding: p.encoding, ...where });
  };
  for (const c of configs) {
    const json = Buffer.from(JSON.stringify(c.config));
    for (const m of search.findAll(json)) onMatch(m.pattern, { in: 'config', path: c.name });
  }
  for (const c of cacheConfigs) searchCacheConfig(search, patterns, c, note);
  for (const layer of layers) {
    // One pass over the layer's bytes — headers, PAX records (xattrs, long names), file data, the
    // files a later layer deleted — as one stream: no per-file work, so a layer of 30,000 small
    // files costs what its bytes cost. Only a layer with a match is read again, with the tar's
    // structure followed beside the search to name the file each match lies in.
    const scan = async (walker?: TarWalker) => {
      const found: { start: number; pattern: number }[] = [];
      search.reset();
      for await (const chunk of openLayer(store.openBlob(layer.descriptor.digest)) as AsyncIterable<Buffer>) {
        search.feed(chunk, (m) => found.push({ start: m.end - patterns[m.pattern]!.bytes.length, pattern: m.pattern }));
        walker?.push(chunk);
      }
      return found;
    };
    if (!(await scan()).length) continue;
    const walker = new TarWalker();
    for (const f of await scan(walker)) onMatch(f.pattern, { in: 'layer', layer, path: walker.pathAt(f.start) });
  }
  return hits;
}

/** One line per hit, for the error or the warning. */
export function describeHit(h: SecretHit): string {
  const enc = h.encoding === 'as-is' ? '' : ` (${h.encoding})`;
  if (h.in === 'config') return `${h.secret}${enc} in the ${h.path}`;
  if (h.in === 'cache-config') {
    const r = h.record;
    if (!r) return `${h.secret}${enc} in the ${h.path}`;
    const step =
      r.step?.line !== undefined ? `, ${r.step.file}:${r.step.line}${r.step.text ? ` ${r.step.text}` : ''}` : '';
    return `${h.secret}${enc} in the ${h.path}: ${r.field} of the record of stage ${r.stage}${step}`;
  }
  const l = h.layer!;
  const step =
    l.step?.line !== undefined ? ` made by ${l.step.file}:${l.step.line}${l.step.text ? ` ${l.step.text}` : ''}` : '';
  return `${h.secret}${enc} in ${h.path}, layer ${l.descriptor.digest.slice(0, 19)}${step} (${l.shippedIn})`;
}

export interface SecretProofRequest {
  store: Store;
  values: SecretValue[];
  layers: LayerToSearch[];
  configs: { name: string; config: ImageConfig }[];
  cacheConfigs?: CacheConfigToSearch[];
  /** --allow-secret-in-image: hits are warnings, not an error. */
  allow?: boolean;
  warn: (message: string) => void;
}

const MAX_LISTED = 10;

/** What the hits are in: the image, the exported cache (its layers or config), or both. */
function carrier(hits: SecretHit[]): string {
  const inCache = (h: SecretHit) => h.in === 'cache-config' || h.layer?.shippedIn === 'in the exported cache';
  const cache = hits.filter(inCache).length;
  return cache === 0 ? 'the image' : cache === hits.length ? 'the exported cache' : 'the image and the exported cache';
}

/**
 * Search, then fail the build on a hit (at the step that made the first layer found), or warn
 * when the user allowed it. Values too short to search are named in a warning.
 */
export async function proveNoSecrets(r: SecretProofRequest): Promise<SecretHit[]> {
  const { patterns, tooShort } = secretPatterns(r.values);
  for (const v of tooShort)
    r.warn(
      `${v.name} is shorter than ${MIN_SECRET_BYTES} bytes: not searched for in the image (it would match by chance)`,
    );
  const hits = await searchForSecrets(r.store, patterns, r.layers, r.configs, r.cacheConfigs);
  if (!hits.length) return hits;
  const lines = hits.slice(0, MAX_LISTED).map((h) => `  ${describeHit(h)}`);
  if (hits.length > MAX_LISTED) lines.push(`  … and ${hits.length - MAX_LISTED} more`);
  if (r.allow) {
    r.warn(`--allow-secret-in-image: ${carrier(hits)} carries a build secret:\n${lines.join('\n')}`);
    return hits;
  }
  const stepOf = (h: SecretHit) => h.layer?.step ?? h.record?.step;
  const first = hits.find((h) => stepOf(h)?.line !== undefined) ?? hits[0]!;
  const step = stepOf(first);
  throw new KilnError(
    'BUILD',
    `a build secret would leave the machine in ${carrier(hits)}:\n${lines.join('\n')}`,
    step ? { file: step.file, line: step.line, column: step.column, source: step.source } : { path: first.path },
    {
      hint: 'read the secret where it is needed without writing it to a file the layer keeps (RUN --mount=type=secret), or pass --allow-secret-in-image if it is meant to be there',
    },
  );
}

/** A layer a step of this build made or took from the cache, by diff id. */
export interface MadeLayer {
  layer: { digest: Digest; diffId: Digest; mediaType: string; size: number };
  stage: number;
  step: ErrorPlace & { text?: string };
}

/**
 * The layers that would leave the machine and that this build made: those of the final image,
 * and those of the cache records a `--cache-to` exports (mode max: every stage's; min: the
 * image's stages').
 */
export function layersToSearch(
  image: { layers: Descriptor[]; diffIds: Digest[] },
  made: Map<Digest, MadeLayer>,
  cacheExport: { stages: Set<number> | 'all' } | undefined,
): LayerToSearch[] {
  const out = new Map<Digest, LayerToSearch>();
  image.layers.forEach((descriptor, i) => {
    const diffId = image.diffIds[i];
    const m = diffId !== undefined ? made.get(diffId) : undefined;
    if (m && diffId) out.set(diffId, { descriptor, diffId, shippedIn: 'in the image', step: m.step });
  });
  if (cacheExport)
    for (const [diffId, m] of made) {
      if (cacheExport.stages !== 'all' && !cacheExport.stages.has(m.stage)) continue;
      const have = out.get(diffId);
      if (have) have.shippedIn = 'in the image and the exported cache';
      else
        out.set(diffId, {
          descriptor: { mediaType: m.layer.mediaType, digest: m.layer.digest, size: m.layer.size },
          diffId,
          shippedIn: 'in the exported cache',
          step: m.step,
        });
    }
  return [...out.values()];
}

export interface BuildSecretProof {
  store: Store;
  secrets?: SecretSource[];
  ssh?: SshSource[];
  cacheTo?: { mode: 'min' | 'max' }[];
  /** The stages the image is made of (what a mode=min cache export carries). */
  shippedStages: Set<number>;
  made: Map<Digest, MadeLayer>;
  image: { manifest: { layers: Descriptor[] }; config: ImageConfig };
  /** The `--cache-to` exports made ready (their config documents are searched before they are sent). */
  cacheExports?: CacheExport[];
  /** How messages name a stage (its name, or its index). */
  stageLabel?: (stage: number) => string;
  allow?: boolean;
  warn: (message: string) => void;
}

/** The proof for one build: nothing to do without secrets; else search and fail (or warn) on a hit. */
export async function proveBuildHasNoSecrets(b: BuildSecretProof): Promise<SecretHit[]> {
  if (b.ssh?.length)
    b.warn(
      `--ssh ${b.ssh.map((s) => s.id).join(', ')}: the keys stay inside the ssh agent, which gives out signatures, never the keys; kiln cannot search the image for them (what a RUN asked the agent to sign is not a key)`,
    );
  const values: SecretValue[] = [];
  for (const s of b.secrets ?? []) {
    const bytes = readSecret(s);
    if (bytes) values.push({ name: `secret "${s.id}"`, bytes });
  }
  if (!values.length) return [];
  const sinks = b.cacheTo ?? [];
  const layers = layersToSearch(
    { layers: b.image.manifest.layers, diffIds: b.image.config.rootfs.diff_ids },
    b.made,
    sinks.length ? { stages: sinks.some((s) => s.mode === 'max') ? 'all' : b.shippedStages } : undefined,
  );
  return proveNoSecrets({
    store: b.store,
    values,
    layers,
    configs: [{ name: 'image config (env, labels, history)', config: b.image.config }],
    cacheConfigs: (b.cacheExports ?? []).map((e) => ({
      name: e.ready.name,
      bytes: e.ready.config,
      records: e.ready.records.map((record) => {
        const at = e.steps.get(record.key);
        return {
          record,
          stage: at ? (b.stageLabel?.(at.stage) ?? String(at.stage)) : '(unknown)',
          ...(at ? { step: at.step } : {}),
        };
      }),
    })),
    allow: b.allow,
    warn: b.warn,
  });
}

/**
 * Follows a tar stream's structure as its bytes go by (synchronously, chunk by chunk): where each
 * header starts and which file it belongs to (a PAX or GNU long-name header belongs to the entry
 * after it), so that an offset in the stream can be named by its file.
 */
export class TarWalker {
  private pos = 0;
  /** Where the next header starts (bytes before it are data or padding). */
  private next = 0;
  private header: Buffer[] = [];
  private headerLength = 0;
  private meta?: { typeflag: string; size: number; parts: Buffer[]; got: number };
  private pax = new Map<string, Buffer>();
  private readonly globalPax = new Map<string, Buffer>();
  private longName?: Buffer;
  private longLink?: Buffer;
  private ended = false;
  private readonly starts: number[] = [];
  private readonly entryOf: number[] = [];
  private readonly names: string[] = [];

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.ended) {
      const at = this.pos + i;
      if (this.meta) {
        const m = this.meta;
        const take = Math.min(m.size - m.got, chunk.length - i);
        if (m.got < 1 << 20) m.parts.push(chunk.subarray(i, i + take));
        m.got += take;
        i += take;
        if (m.got === m.size) this.endMeta();
        continue;
      }
      if (at < this.next) {
        i += Math.min(this.next - at, chunk.length - i);
        continue;
      }
      const take = Math.min(BLOCK - this.headerLength, chunk.length - i);
      this.header.push(chunk.subarray(i, i + take));
      this.headerLength += take;
      i += take;
      if (this.headerLength < BLOCK) continue;
      this.startEntry(Buffer.concat(this.header), this.pos + i - BLOCK);
      this.header = [];
      this.headerLength = 0;
    }
    this.pos += chunk.length;
  }

  private startEntry(block: Buffer, start: number): void {
    let d: ReturnType<typeof decodeHeader>;
    try {
      d = decodeHeader(block, new Map([...this.globalPax, ...this.pax]), this.longName, this.longLink);
    } catch {
      d = undefined; // not a tar past here: the bytes are still searched, without names
    }
    if (!d) {
      this.ended = true;
      return;
    }
    this.starts.push(start);
    this.entryOf.push(this.names.length);
    const dataStart = start + BLOCK;
    const size = d.header.size;
    if (['x', 'g', 'L', 'K'].includes(d.typeflag)) {
      this.meta = { typeflag: d.typeflag, size, parts: [], got: 0 };
      this.next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
      if (size === 0) this.endMeta();
      return;
    }
    this.names.push(d.header.name);
    this.pax = new Map();
    this.longName = undefined;
    this.longLink = undefined;
    this.next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
  }

  private endMeta(): void {
    const m = this.meta!;
    this.meta = undefined;
    const data = Buffer.concat(m.parts).subarray(0, m.size);
    try {
      if (m.typeflag === 'x') parsePax(data, this.pax);
      else if (m.typeflag === 'g') parsePax(data, this.globalPax);
      else if (m.typeflag === 'L') this.longName = data;
      else this.longLink = data;
    } catch {
      // a malformed record: the entry keeps its header's own name
    }
  }

  /** The path (with a leading /) of the entry whose header or data holds this offset of the stream. */
  pathAt(offset: number): string {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return '(before the first entry)';
    const name = this.names[this.entryOf[found]!];
    return name === undefined ? '(after the last entry)' : `/${name}`;
  }
}
