/**
 * Hashing helpers. Digests are "sha256:<hex>" strings everywhere (OCI's form).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { KilnError } from './errors.js';

export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** Validate a digest read from outside; throws INVALID naming what carried it. */
export function assertDigest(s: unknown, what = 'digest'): Digest {
  if (!isDigest(s))
    throw new KilnError('INVALID', `invalid ${what} ${JSON.stringify(s)}: expected sha256:<64 hex digits>`);
  return s;
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Chain ids computed so far, by the text each is the sha256 of (`PARENT DIFF_ID`): a build asks for
 * the chain ids of the same few stacks over and over (each cache lookup's layers, each snapshot's
 * path, each COPY --from key), a sha256 per layer each time. Bounded: emptied when full.
 */
const chainSteps = new Map<string, Digest>();
const CHAIN_STEPS_MAX = 4096;

/** OCI chain ids of every prefix of a layer stack (bottom → top diff_ids): [0] is the bottom layer's. */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    if (out.length === 0) {
      out.push(d);
      continue;
    }
    const text = `${out[out.length - 1]} ${d}`;
    let chain = chainSteps.get(text);
    if (chain === undefined) {
      if (chainSteps.size >= CHAIN_STEPS_MAX) chainSteps.clear();
      chainSteps.set(text, (chain = sha256(text)));
    }
    out.push(chain);
  }
  return out;
}

/** OCI chain id of a layer stack (the identity of its file system); '' for no layers. */
export function chainId(diffIds: readonly Digest[]): string {
  return chainIds(diffIds).at(-1) ?? '';
}

/** The hex part of a digest (for file names). */
export function digestHex(d: Digest | string): string {
  return d.startsWith('sha256:') ? d.slice(7) : d;
}

/**
 * A pass-through stream that hashes and counts what flows through it. Read `.digest()` and
 * `.bytes` after the stream has finished.
 */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private final_: Digest | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  digest(): Digest {
    this.final_ ??= `sha256:${this.hash.digest('hex')}`;
    return this.final_;
  }
}
