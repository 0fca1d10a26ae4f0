/**
 * What the store knows of a Dockerfile's base images, for UndefinedVar (their ENV names) and
 * InvalidBaseImagePlatform (their platform). Nothing is pulled: an image the store lacks is left
 * out, and the lint then does not guess about it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { normalizeImageName } from '../../image/index.js';
import type { Store } from '../../store/index.js';
import { sha256 } from '../../util/index.js';
import { codeIdentity } from './build-checks.js';
import type { BaseImageFacts } from './variables.js';

export async function baseImageFacts(store: Store, refs: string[]): Promise<Map<string, BaseImageFacts>> {
  const out = new Map<string, BaseImageFacts>();
  for (const ref of refs) {
    const img = await store
      .resolveImage(ref, { platform: { os: 'linux', architecture: 'amd64' } })
      .catch(() => undefined);
    if (!img) continue;
    const c = img.config;
    const facts: BaseImageFacts = { env: (c.config?.Env ?? []).map((e) => e.split('=', 1)[0]!) };
    if (c.os) facts.os = c.os;
    if (c.architecture) facts.architecture = c.architecture;
    if (c.variant) facts.variant = c.variant;
    out.set(ref, facts);
  }
  return out;
}

/**
 * `baseImageFacts` of a Dockerfile's base images, remembered in the store under what decides
 * which images they are: this build of kiln and the Dockerfile's text, target and build args
 * (`refs` plans the Dockerfile). The file holds each reference with the manifest (or index)
 * digest it named and that image's facts; while index.json still points each name at that digest
 * (a blob is named by its digest: the same image, the same facts), a rebuild reads that file and
 * the index instead of planning the Dockerfile and reading each base image's manifest and config.
 * A file that cannot be read or has not the facts' shape is recomputed and written again; a store
 * that cannot be written only costs time.
 */
export async function cachedBaseImageFacts(
  store: Store,
  input: { text: string; target?: string; buildArgs: Map<string, string> },
  refs: () => string[],
): Promise<Map<string, BaseImageFacts>> {
  const code = await codeIdentity();
  const images = await store.listImages().catch(() => undefined);
  if (code === undefined || images === undefined) return baseImageFacts(store, refs());
  const digestOf = (ref: string): string | null => {
    try {
      const name = normalizeImageName(ref);
      return images.find((i) => i.name === name)?.descriptor.digest ?? null;
    } catch {
      return null;
    }
  };
  const args = [...input.buildArgs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const key = sha256(JSON.stringify({ v: 1, code, text: input.text, target: input.target ?? null, args }));
  const file = store.layout.baseFactsFile(key);
  try {
    const kept = keptFacts(JSON.parse(readFileSync(file, 'utf8')));
    if (kept && kept.every((k) => digestOf(k.ref) === k.digest))
      return new Map(kept.flatMap((k) => (k.facts ? [[k.ref, k.facts] as const] : [])));
  } catch {
    // not remembered, or unreadable: read them
  }
  const wanted = refs();
  const facts = await baseImageFacts(store, wanted);
  const kept: KeptFacts[] = wanted.map((ref) => ({ ref, digest: digestOf(ref), facts: facts.get(ref) ?? null }));
  // Only images found by name are remembered (one found by id, or absent, is looked up each time).
  if (kept.some((k) => k.digest === null)) return facts;
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(kept), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // only costs the next build the reading
  }
  return facts;
}

/** One base image as remembered: its reference, the digest index.json named it by (null: untagged), its facts. */
interface KeptFacts {
  ref: string;
  digest: string | null;
  facts: BaseImageFacts | null;
}

function keptFacts(v: unknown): KeptFacts[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: KeptFacts[] = [];
  const optString = (x: unknown) => x === undefined || typeof x === 'string';
  for (const e of v as unknown[]) {
    const k = e as Record<string, unknown> | null;
    if (typeof k !== 'object' || k === null || typeof k.ref !== 'string') return undefined;
    if (k.digest !== null && typeof k.digest !== 'string') return undefined;
    const f = k.facts as Record<string, unknown> | null;
    if (f === null) {
      out.push({ ref: k.ref, digest: k.digest, facts: null });
      continue;
    }
    if (typeof f !== 'object' || !Array.isArray(f.env) || !f.env.every((x) => typeof x === 'string')) return undefined;
    if (!optString(f.os) || !optString(f.architecture) || !optString(f.variant)) return undefined;
    out.push({
      ref: k.ref,
      digest: k.digest,
      facts: {
        env: f.env as string[],
        ...(f.os !== undefined ? { os: f.os as string } : {}),
        ...(f.architecture !== undefined ? { architecture: f.architecture as string } : {}),
        ...(f.variant !== undefined ? { variant: f.variant as string } : {}),
      },
    });
  }
  return out;
}
