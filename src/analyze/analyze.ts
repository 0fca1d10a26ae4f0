/**
 * The library entry points behind `kiln analyze`, `kiln sbom` and `kiln report`: one streaming
 * pass over an image's layers, then dive's efficiency, per-layer changes, the largest
 * directories and the packages.
 */
import { familiarName } from '../image/index.js';
import { computeEfficiency, type EfficiencyResult } from './efficiency.js';
import { largestDirectories, type DirSize, type LayerChanges } from './filetree.js';
import type { OsRelease, Package } from './sbom/types.js';
import type { ImageSource } from './source.js';
import { walkImage } from './walk.js';

export interface ImageSummary {
  name?: string;
  display: string;
  id: string;
  digest?: string;
  created?: string;
  platform: string;
  user?: string;
  entrypoint?: string[] | null;
  cmd?: string[] | null;
}

export interface LayerReport {
  index: number;
  diffId: string;
  digest?: string;
  /** Compressed blob size, when known. */
  blobSize?: number;
  /** dive's layer size: Σ tar entry sizes. */
  size: number;
  createdBy: string;
  /** The history entry's comment (e.g. "Imported from …"). */
  comment?: string;
  created?: string;
  entries: number;
  changes: LayerChanges;
}

export interface ImageAnalysis {
  image: ImageSummary;
  layers: LayerReport[];
  efficiency: EfficiencyResult;
  /** The final filesystem's largest directories, nested (for a treemap). */
  directories: DirSize;
  /** Σ sizes of the files a container sees. */
  finalSize: number;
  fileCount: number;
  packages?: Package[];
  os?: OsRelease;
}

/** How to call an image in text: its short docker name (debian:12), else what the user typed. */
export function displayName(s: Pick<ImageSummary, 'name' | 'display'>): string {
  if (!s.name) return s.display;
  try {
    return familiarName(s.name);
  } catch {
    return s.name;
  }
}

export function imageSummary(src: ImageSource): ImageSummary {
  const c = src.config;
  const s: ImageSummary = {
    display: src.display,
    id: src.id,
    platform: [c.os, c.architecture, c.variant].filter(Boolean).join('/'),
  };
  if (src.name) s.name = src.name;
  if (src.digest) s.digest = src.digest;
  if (c.created) s.created = c.created;
  if (c.config?.User) s.user = c.config.User;
  if (c.config?.Entrypoint !== undefined) s.entrypoint = c.config.Entrypoint;
  if (c.config?.Cmd !== undefined) s.cmd = c.config.Cmd;
  return s;
}

export interface AnalyzeOptions {
  /** Also catalog packages (for the report). */
  packages?: boolean;
  onLayer?: (index: number, count: number) => void;
}

export async function analyzeImage(src: ImageSource, opts: AnalyzeOptions = {}): Promise<ImageAnalysis> {
  const walked = await walkImage(src, { entries: true, catalog: opts.packages, onLayer: opts.onLayer });
  const layersEntries = walked.layers.map((l) => l.entries!);
  const efficiency = computeEfficiency(layersEntries);
  const tree = walked.tree!;
  const fileCount = tree.countFiles();
  const directories = largestDirectories(tree);
  const result: ImageAnalysis = {
    image: imageSummary(src),
    layers: walked.layers.map((l, i) => {
      const ref = src.layers[i]!;
      const r: LayerReport = {
        index: i,
        diffId: l.diffId,
        size: efficiency.layerSizes[i]!,
        createdBy: ref.history?.created_by ?? '',
        entries: l.entries!.length,
        changes: l.changes!,
      };
      if (ref.digest) r.digest = ref.digest;
      if (ref.size !== undefined) r.blobSize = ref.size;
      if (ref.history?.created) r.created = ref.history.created;
      if (ref.history?.comment) r.comment = ref.history.comment;
      return r;
    }),
    efficiency,
    directories,
    finalSize: directories.bytes,
    fileCount,
  };
  if (opts.packages) {
    result.packages = walked.packages;
    result.os = walked.os;
  }
  return result;
}

export interface SbomResult {
  image: ImageSummary;
  os: OsRelease;
  packages: Package[];
}

/** Only the package catalogers: no entry lists kept, no hashing. */
export async function catalogImage(
  src: ImageSource,
  opts: { onLayer?: (index: number, count: number) => void } = {},
): Promise<SbomResult> {
  const walked = await walkImage(src, { catalog: true, hash: 'none', onLayer: opts.onLayer });
  return { image: imageSummary(src), os: walked.os, packages: walked.packages };
}
