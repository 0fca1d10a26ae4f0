/**
 * What a COPY/ADD layer brought in, recorded by the engine when it wrote the layer (engine/provenance.ts)
 * and read by `kiln trace`, the SBOM's copied packages, `kiln analyze --copies` and the report's
 * stage graph. Kept in the store, keyed by the layer's diff_id (`provenance/<hex>.json`), beside the
 * layer facts: a builder stage's layers may be gone later (pruned, never shipped), so whatever is
 * worth knowing about them (source paths, the package that owned a file there) is copied in here
 * at build time. The record is not put in the image: see docs/trace.md for why.
 */
import { isDigest, type Digest } from '../util/index.js';

export const PROVENANCE_VERSION = 1;

/** A package that owned a copied file in the stage or image it was copied from. */
export interface ProvenancePackage {
  type: 'deb' | 'python' | 'npm';
  name: string;
  version: string;
  arch?: string;
  /** npm: a development dependency of the project (package-lock's "dev": true). */
  dev?: boolean;
}

/** The step that wrote a layer, and its stage. */
export interface ProvenanceStep {
  file: string;
  line: number;
  /** The instruction as written. */
  text: string;
  stage: { index: number; name?: string };
}

/** One hop of a COPY --from chain: a copy in the source stage that brought the file there. */
export interface ProvenanceHop extends ProvenanceStep {
  from: ProvenanceFrom;
  /** The file's path in that hop's source. */
  source: string;
}

export type ProvenanceFrom =
  | { kind: 'context' }
  | { kind: 'stage'; index: number; name?: string }
  | { kind: 'image'; ref: string }
  | { kind: 'remote'; what: string }
  /** A RUN or WORKDIR layer: made in the stage, not brought from anywhere. */
  | { kind: 'none' };

/** One file (or link) the layer holds: its path in the image, where it came from, its owner there. */
export interface ProvenanceFile {
  /** Path in the image (no leading '/'). */
  path: string;
  /** Path in the source (stage, image or context; no leading '/'). */
  source: string;
  size: number;
  link?: boolean;
  /** Index into the record's packages. */
  pkg?: number;
  /** COPY --from chain: how the file came into the source stage (nearest first). */
  via?: ProvenanceHop[];
}

/**
 * A layer's record. COPY/ADD list their files; RUN and WORKDIR layers are recorded too, without
 * files, so that `kiln trace` can name the Dockerfile line of any layer a build wrote.
 */
export interface CopyProvenance {
  version: number;
  diffId: Digest;
  kind: 'COPY' | 'ADD' | 'RUN' | 'WORKDIR';
  step: ProvenanceStep;
  from: ProvenanceFrom;
  /** The instruction's --exclude patterns. */
  exclude?: string[];
  /**
   * The chain id of the stage or image the files were copied from (a COPY --from): a later build
   * writing the same layer from the same source by the same step finds its owners here unchanged.
   */
  sourceChain?: string;
  packages: ProvenancePackage[];
  files: ProvenanceFile[];
}

/** A record read from disk, checked (a damaged one is as if unknown). */
export function parseProvenance(v: unknown): CopyProvenance | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Partial<CopyProvenance>;
  if (r.version !== PROVENANCE_VERSION || typeof r.diffId !== 'string' || !isDigest(r.diffId)) return undefined;
  if (!['COPY', 'ADD', 'RUN', 'WORKDIR'].includes(r.kind as string)) return undefined;
  if (!r.step || typeof r.step.line !== 'number' || typeof r.step.text !== 'string') return undefined;
  if (!r.from || typeof r.from.kind !== 'string') return undefined;
  if (r.sourceChain !== undefined && typeof r.sourceChain !== 'string') return undefined;
  if (!Array.isArray(r.packages) || !Array.isArray(r.files)) return undefined;
  const okPkg = (p: ProvenancePackage) =>
    typeof p === 'object' && p !== null && typeof p.name === 'string' && typeof p.version === 'string';
  const okFile = (f: ProvenanceFile) =>
    typeof f === 'object' &&
    f !== null &&
    typeof f.path === 'string' &&
    typeof f.source === 'string' &&
    typeof f.size === 'number' &&
    (f.pkg === undefined || (Number.isInteger(f.pkg) && f.pkg >= 0 && f.pkg < r.packages!.length));
  if (!r.packages.every(okPkg) || !r.files.every(okFile)) return undefined;
  return r as CopyProvenance;
}
