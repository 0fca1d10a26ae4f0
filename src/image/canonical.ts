/**
 * Canonical JSON: object keys sorted, no insignificant whitespace, so the same image always has
 * the same bytes and the same digest.
 */
import { sha256, type Digest } from '../util/index.js';

export function canonicalJSON(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

export function canonicalDigest(value: unknown): Digest {
  return sha256(canonicalJSON(value));
}
