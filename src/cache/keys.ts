/**
 * Build-cache keys. Pure: no I/O.
 *
 * A step's key is the digest of
 *   - the identity of the state it starts from (`stateId`: the image config with its timestamps
 *     removed; its diff_ids name the layers' contents) — content-based, so a step re-run with the
 *     same result (e.g. a --no-cache-filter stage whose output did not change) keeps the steps
 *     after it cached, and a layer stored as a plain tar here and exported gzipped to a registry
 *     cache is the same state on both machines;
 *   - the instruction after expansion (positions and the text as written left out);
 *   - the variables it can see (ENV and ARG values; proxy args excluded, as BuildKit does);
 *   - the platform, SOURCE_DATE_EPOCH, RUN's network;
 *   - the content digests of what it reads from outside the state: COPY/ADD sources from the
 *     context or another stage, RUN --mount=type=bind sources. Secrets never enter a key.
 */
import { canonicalJSON, type Descriptor, type ImageConfig } from '../image/index.js';
import { sha256, type Digest } from '../util/index.js';

export const CACHE_KEY_VERSION = 'kiln-cache-v2';

/** What the engine carries from step to step (the engine's StageState has this shape). */
export interface StepState {
  config: ImageConfig;
  layers: Descriptor[];
  cmdSet: boolean;
  shell: string[];
}

/** The image config without the fields that vary between identical builds (timestamps). */
export function timelessConfig(config: ImageConfig): ImageConfig {
  const { created: _c, ...rest } = config;
  void _c;
  return { ...rest, history: (config.history ?? []).map(({ created: _h, ...h }) => (void _h, h)) };
}

/**
 * Content identity of a build state: two states with equal ids build identical images, whichever
 * way their layers are compressed (the layers are named by the config's diff_ids).
 */
export function stateId(s: StepState): Digest {
  return sha256(
    canonicalJSON({
      v: CACHE_KEY_VERSION,
      config: timelessConfig(s.config),
      cmdSet: s.cmdSet,
      shell: s.shell,
    }),
  );
}

const DROPPED = new Set(['range', 'original', 'position']);

/** An instruction as it enters a key: expanded words, without positions or source text. */
export function instructionForKey(ins: object): unknown {
  return JSON.parse(JSON.stringify(ins, (k, v: unknown) => (DROPPED.has(k) ? undefined : v)));
}

export interface StepKeyInput {
  parent: Digest;
  /** The expanded instruction (instructionForKey is applied here). */
  instruction: object;
  /** Variables the step can see, in scope order. */
  env: [string, string][];
  platform: string;
  sourceDateEpoch?: number;
  network?: string;
  /** Content digests of the step's outside inputs, in a fixed order (sources, then mounts). */
  inputs?: string[];
}

export function stepKey(i: StepKeyInput): Digest {
  return sha256(
    canonicalJSON({
      v: CACHE_KEY_VERSION,
      parent: i.parent,
      instruction: instructionForKey(i.instruction),
      env: i.env.map(([k, v]) => `${k}=${v}`),
      platform: i.platform,
      sourceDateEpoch: i.sourceDateEpoch ?? null,
      network: i.network ?? null,
      inputs: i.inputs ?? [],
    }),
  );
}

/** Key under which the content digest of paths copied out of a file system is remembered. */
export function contentMemoKey(fsChain: string, spec: unknown): Digest {
  return sha256(canonicalJSON({ v: CACHE_KEY_VERSION, chain: fsChain, spec }));
}
