/**
 * Validation of image documents read from outside (archives, registries, layouts). A malformed
 * document is a KilnError('INVALID') naming the field, never a crash. Unknown fields are kept.
 */
import { z } from 'zod';
import { KilnError } from '../util/errors.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, type Descriptor, type ImageConfig, type Index, type Manifest } from './types.js';

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'expected sha256:<64 hex digits>');
const platform = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
});
const annotations = z.record(z.string(), z.string());
const descriptor = z.looseObject({
  mediaType: z.string().min(1),
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: annotations.optional(),
  platform: platform.optional(),
  artifactType: z.string().optional(),
});
const manifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});
const index = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});
const stringList = z.array(z.string()).nullable().optional();
const emptyObjects = z.record(z.string(), z.looseObject({})).nullable().optional();
const containerConfig = z.looseObject({
  User: z.string().optional(),
  ExposedPorts: emptyObjects,
  Env: stringList,
  Entrypoint: stringList,
  Cmd: stringList,
  Volumes: emptyObjects,
  WorkingDir: z.string().optional(),
  Labels: z.record(z.string(), z.string()).nullable().optional(),
  StopSignal: z.string().optional(),
  Healthcheck: z.looseObject({ Test: stringList }).optional(),
  OnBuild: stringList,
  Shell: stringList,
});
const imageConfig = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  config: containerConfig.nullable().optional(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  history: z
    .array(z.looseObject({ created: z.string().optional(), created_by: z.string().optional(), comment: z.string().optional(), empty_layer: z.boolean().optional() }))
    .optional(),
});

function check<T>(schema: z.ZodType, json: unknown, what: string, where?: string): T {
  const r = schema.safeParse(json);
  if (r.success) return r.data as T;
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(document)';
  throw new KilnError('INVALID', `malformed ${what}: field ${field}: ${issue.message}`, where ? { image: where } : {});
}

export function parseDescriptor(json: unknown, where?: string): Descriptor {
  return check<Descriptor>(descriptor, json, 'descriptor', where);
}
export function parseManifest(json: unknown, where?: string): Manifest {
  return check<Manifest>(manifest, json, 'image manifest', where);
}
export function parseIndex(json: unknown, where?: string): Index {
  return check<Index>(index, json, 'image index', where);
}
export function parseImageConfig(json: unknown, where?: string): ImageConfig {
  const c = check<ImageConfig>(imageConfig, json, 'image config', where);
  // Docker writes null for empty lists and maps; the model uses absent.
  if (c.config === null) delete c.config;
  return c;
}

/** Parse JSON text; a syntax error is INVALID, not a crash. */
export function parseJSONText(text: string | Buffer, what: string, where?: string): unknown {
  try {
    return JSON.parse(text.toString());
  } catch (e) {
    throw new KilnError('INVALID', `malformed ${what}: not JSON (${(e as Error).message})`, where ? { image: where } : {});
  }
}

export type ManifestOrIndex = { kind: 'manifest'; manifest: Manifest } | { kind: 'index'; index: Index };

/** Tell a manifest from an index by the media type given (e.g. Content-Type) or the document's own. */
export function parseManifestOrIndex(json: unknown, mediaType?: string, where?: string): ManifestOrIndex {
  const own = (json as { mediaType?: unknown } | null)?.mediaType;
  const mt = typeof own === 'string' ? own : mediaType;
  if (mt !== undefined && INDEX_MEDIA_TYPES.includes(mt)) return { kind: 'index', index: parseIndex(json, where) };
  if (mt !== undefined && MANIFEST_MEDIA_TYPES.includes(mt)) return { kind: 'manifest', manifest: parseManifest(json, where) };
  if (json !== null && typeof json === 'object' && 'manifests' in json) return { kind: 'index', index: parseIndex(json, where) };
  if (json !== null && typeof json === 'object' && 'config' in json) return { kind: 'manifest', manifest: parseManifest(json, where) };
  throw new KilnError('INVALID', `unsupported manifest media type ${JSON.stringify(mt ?? null)}`, where ? { image: where } : {});
}
