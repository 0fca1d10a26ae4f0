/**
 * Validation of image documents read from outside (archives, registries, layouts). A malformed
 * document is a KilnError('INVALID') naming the field, never a crash. Unknown fields are kept.
 */
import * as z from 'zod/mini';
import { KilnError } from '../util/index.js';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  type Descriptor,
  type ImageConfig,
  type Index,
  type Manifest,
} from './types.js';

// zod/mini: the same checks as zod, a tenth of the code to load (every `kiln build` reads manifests).
// Messages are written here: mini carries no locale.
// Built on first use, not when the module loads (~3 ms of every command's start): a build's own
// documents pass the hand checks below and never reach a schema.
function makeSchemas() {
  const str = () => z.string('expected a string');
  const opt = <T extends z.ZodMiniType>(t: T) => z.optional(t);
  const digest = z
    .string('expected a string')
    .check(z.regex(/^sha256:[a-f0-9]{64}$/, 'expected sha256:<64 hex digits>'));
  const platform = z.looseObject(
    {
      architecture: str(),
      os: str(),
      'os.version': opt(str()),
      'os.features': opt(z.array(str(), 'expected an array')),
      variant: opt(str()),
    },
    'expected an object',
  );
  const annotations = z.record(str(), str(), 'expected an object of strings');
  const descriptor = z.looseObject(
    {
      mediaType: str().check(z.minLength(1, 'expected a non-empty string')),
      digest,
      size: z.int('expected an integer').check(z.nonnegative('expected a size of 0 or more')),
      urls: opt(z.array(str(), 'expected an array')),
      annotations: opt(annotations),
      platform: opt(platform),
      artifactType: opt(str()),
    },
    'expected an object',
  );
  const schemaVersion2 = z.literal(2, 'expected 2');
  const manifest = z.looseObject(
    {
      schemaVersion: schemaVersion2,
      mediaType: opt(str()),
      artifactType: opt(str()),
      config: descriptor,
      layers: z.array(descriptor, 'expected an array'),
      subject: opt(descriptor),
      annotations: opt(annotations),
    },
    'expected an object',
  );
  const index = z.looseObject(
    {
      schemaVersion: schemaVersion2,
      mediaType: opt(str()),
      artifactType: opt(str()),
      manifests: z.array(descriptor, 'expected an array'),
      subject: opt(descriptor),
      annotations: opt(annotations),
    },
    'expected an object',
  );
  const stringList = opt(z.nullable(z.array(str(), 'expected an array of strings')));
  const emptyObjects = opt(z.nullable(z.record(str(), z.looseObject({}, 'expected an object'), 'expected an object')));
  const containerConfig = z.looseObject(
    {
      User: opt(str()),
      ExposedPorts: emptyObjects,
      Env: stringList,
      Entrypoint: stringList,
      Cmd: stringList,
      Volumes: emptyObjects,
      WorkingDir: opt(str()),
      Labels: opt(z.nullable(z.record(str(), str(), 'expected an object of strings'))),
      StopSignal: opt(str()),
      Healthcheck: opt(z.looseObject({ Test: stringList }, 'expected an object')),
      OnBuild: stringList,
      Shell: stringList,
    },
    'expected an object',
  );
  const imageConfig = z.looseObject(
    {
      created: opt(str()),
      author: opt(str()),
      architecture: str(),
      os: str(),
      variant: opt(str()),
      config: opt(z.nullable(containerConfig)),
      rootfs: z.looseObject(
        { type: z.literal('layers', 'expected "layers"'), diff_ids: z.array(digest, 'expected an array') },
        'expected an object',
      ),
      history: opt(
        z.array(
          z.looseObject(
            {
              created: opt(str()),
              created_by: opt(str()),
              comment: opt(str()),
              empty_layer: opt(z.boolean('expected true or false')),
            },
            'expected an object',
          ),
          'expected an array',
        ),
      ),
    },
    'expected an object',
  );
  return { descriptor, manifest, index, imageConfig };
}
let built: ReturnType<typeof makeSchemas> | undefined;
const schemas = () => (built ??= makeSchemas());

function check<T>(schema: z.ZodMiniType, json: unknown, what: string, where?: string): T {
  const r = schema.safeParse(json);
  if (r.success) return r.data as T;
  const issue = r.error.issues[0]!;
  const field = issue.path.length
    ? issue.path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
        .join('')
        .replace(/^\./, '')
    : '(document)';
  throw new KilnError('INVALID', `malformed ${what}: field ${field}: ${issue.message}`, where ? { image: where } : {});
}

export function parseDescriptor(json: unknown, where?: string): Descriptor {
  return check<Descriptor>(schemas().descriptor, json, 'descriptor', where);
}
export function parseManifest(json: unknown, where?: string): Manifest {
  return check<Manifest>(schemas().manifest, json, 'image manifest', where);
}
export function parseIndex(json: unknown, where?: string): Index {
  return check<Index>(schemas().index, json, 'image index', where);
}
export function parseImageConfig(json: unknown, where?: string): ImageConfig {
  const c = check<ImageConfig>(schemas().imageConfig, json, 'image config', where);
  // Docker writes null for empty lists and maps; the model uses absent.
  if (c.config === null) delete c.config;
  return c;
}

/**
 * `parseImageConfig` of a document the caller has just parsed from JSON and owns (it is returned
 * as it is, not copied): checked by hand first, ~20× faster than the schema — a build validates
 * the config of every cache record and base image it reads, most of them on its critical path.
 * The hand check accepts only documents the schema accepts, as the schema would return them
 * (test/unit/image/validate.test.ts); anything else goes to the schema, which accepts it or
 * names the field.
 */
export function parseOwnImageConfig(json: unknown, where?: string): ImageConfig {
  if (!plainImageConfig(json)) return parseImageConfig(json, where);
  if (json.config === null) delete json.config;
  return json;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
// An own "__proto__" key (JSON.parse makes one) is left to the schema, whose copy treats it its own way.
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.hasOwn(v, '__proto__');
const optString = (v: unknown) => v === undefined || typeof v === 'string';
// Index by index (`every` skips the holes of a sparse array, which the schema refuses).
const stringArray = (v: unknown) => {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
};
const optStringList = (v: unknown) => v === undefined || v === null || stringArray(v);
const optObjects = (v: unknown) => v === undefined || v === null || (isObject(v) && Object.values(v).every(isObject));
const optStringMap = (v: unknown) =>
  v === undefined || v === null || (isObject(v) && Object.values(v).every((x) => typeof x === 'string'));

/** What `imageConfig` (above) accepts, checked by hand; false when in doubt (the schema then decides). */
function plainImageConfig(v: unknown): v is ImageConfig & { config?: ImageConfig['config'] | null } {
  if (!isObject(v) || typeof v.architecture !== 'string' || typeof v.os !== 'string') return false;
  if (!optString(v.created) || !optString(v.author) || !optString(v.variant)) return false;
  const c = v.config;
  if (c !== undefined && c !== null) {
    if (!isObject(c)) return false;
    if (!optString(c.User) || !optString(c.WorkingDir) || !optString(c.StopSignal)) return false;
    if (!optStringList(c.Env) || !optStringList(c.Entrypoint) || !optStringList(c.Cmd)) return false;
    if (!optStringList(c.OnBuild) || !optStringList(c.Shell)) return false;
    if (!optObjects(c.ExposedPorts) || !optObjects(c.Volumes) || !optStringMap(c.Labels)) return false;
    if (c.Healthcheck !== undefined && !(isObject(c.Healthcheck) && optStringList(c.Healthcheck.Test))) return false;
  }
  const r = v.rootfs;
  if (!isObject(r) || r.type !== 'layers' || !Array.isArray(r.diff_ids)) return false;
  for (let i = 0; i < r.diff_ids.length; i++) {
    const d: unknown = r.diff_ids[i];
    if (typeof d !== 'string' || !DIGEST.test(d)) return false;
  }
  const h = v.history;
  if (h !== undefined) {
    if (!Array.isArray(h)) return false;
    for (let i = 0; i < h.length; i++) {
      const e: unknown = h[i];
      if (!isObject(e) || !optString(e.created) || !optString(e.created_by) || !optString(e.comment)) return false;
      if (e.empty_layer !== undefined && typeof e.empty_layer !== 'boolean') return false;
    }
  }
  return true;
}

const optStrictStringArray = (v: unknown) => v === undefined || stringArray(v);
const optAnnotations = (v: unknown) =>
  v === undefined || (isObject(v) && Object.values(v).every((x) => typeof x === 'string'));

/** What `descriptor` (above) accepts, checked by hand; false when in doubt (the schema then decides). */
function plainDescriptor(v: unknown): v is Descriptor {
  if (!isObject(v) || typeof v.mediaType !== 'string' || v.mediaType === '') return false;
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest)) return false;
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) return false;
  if (!optStrictStringArray(v.urls) || !optAnnotations(v.annotations) || !optString(v.artifactType)) return false;
  const p = v.platform;
  if (p !== undefined) {
    if (!isObject(p) || typeof p.architecture !== 'string' || typeof p.os !== 'string') return false;
    if (!optString(p['os.version']) || !optString(p.variant) || !optStrictStringArray(p['os.features'])) return false;
  }
  return true;
}

/** The fields a manifest and an index share, checked by hand (see plainDescriptor). */
function plainDocument(v: unknown): v is Record<string, unknown> {
  return (
    isObject(v) &&
    v.schemaVersion === 2 &&
    optString(v.mediaType) &&
    optString(v.artifactType) &&
    (v.subject === undefined || plainDescriptor(v.subject)) &&
    optAnnotations(v.annotations)
  );
}

const descriptorList = (v: unknown) => {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!plainDescriptor(v[i])) return false;
  return true;
};

/**
 * The `parseOwn…` functions take a document the caller has just parsed from JSON and owns: one
 * that passes a hand check (~20× faster than the schema; a build reads the descriptors of every
 * cache record and the store's index.json on its critical path) is returned as it is, not copied;
 * anything else goes to the schema, which accepts it or names the field. The hand checks accept
 * only what the schemas accept, as the schemas would return it (test/unit/image/validate.test.ts).
 */
export function parseOwnDescriptor(json: unknown, where?: string): Descriptor {
  return plainDescriptor(json) ? json : parseDescriptor(json, where);
}
export function parseOwnManifest(json: unknown, where?: string): Manifest {
  if (plainDocument(json) && plainDescriptor(json.config) && descriptorList(json.layers))
    return json as unknown as Manifest;
  return parseManifest(json, where);
}
export function parseOwnIndex(json: unknown, where?: string): Index {
  if (plainDocument(json) && descriptorList(json.manifests)) return json as unknown as Index;
  return parseIndex(json, where);
}

/** Parse JSON text; a syntax error is INVALID, not a crash. */
export function parseJSONText(text: string | Buffer, what: string, where?: string): unknown {
  try {
    return JSON.parse(text.toString());
  } catch (e) {
    throw new KilnError(
      'INVALID',
      `malformed ${what}: not JSON (${(e as Error).message})`,
      where ? { image: where } : {},
    );
  }
}

export type ManifestOrIndex = { kind: 'manifest'; manifest: Manifest } | { kind: 'index'; index: Index };

/** Tell a manifest from an index by the media type given (e.g. Content-Type) or the document's own. */
export function parseManifestOrIndex(json: unknown, mediaType?: string, where?: string): ManifestOrIndex {
  return manifestOrIndex(json, mediaType, where, parseManifest, parseIndex);
}

/** `parseManifestOrIndex` of a document the caller has just parsed and owns (see parseOwnDescriptor). */
export function parseOwnManifestOrIndex(json: unknown, mediaType?: string, where?: string): ManifestOrIndex {
  return manifestOrIndex(json, mediaType, where, parseOwnManifest, parseOwnIndex);
}

function manifestOrIndex(
  json: unknown,
  mediaType: string | undefined,
  where: string | undefined,
  manifest: (json: unknown, where?: string) => Manifest,
  index: (json: unknown, where?: string) => Index,
): ManifestOrIndex {
  const own = (json as { mediaType?: unknown } | null)?.mediaType;
  const mt = typeof own === 'string' ? own : mediaType;
  if (mt !== undefined && INDEX_MEDIA_TYPES.includes(mt)) return { kind: 'index', index: index(json, where) };
  if (mt !== undefined && MANIFEST_MEDIA_TYPES.includes(mt))
    return { kind: 'manifest', manifest: manifest(json, where) };
  if (json !== null && typeof json === 'object' && 'manifests' in json)
    return { kind: 'index', index: index(json, where) };
  if (json !== null && typeof json === 'object' && 'config' in json)
    return { kind: 'manifest', manifest: manifest(json, where) };
  throw new KilnError(
    'INVALID',
    `unsupported manifest media type ${JSON.stringify(mt ?? null)}`,
    where ? { image: where } : {},
  );
}
