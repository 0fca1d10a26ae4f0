/**
 * The library's image reading: `analyze` (dive's efficiency and CI rules), `sbom`, `scan`,
 * `diff`, `history` and `report` (one HTML page). IMAGE is what the CLI takes: a name or id in
 * the store, an image archive (docker save / OCI tar), or a registry reference (pulled then).
 */
import {
  analyzeImage,
  catalogImage,
  type ImageAnalysis,
  type SbomResult,
  diffImages,
  type ImageDiff,
  evaluateCi,
  type CiRuleResult,
  type CiThresholds,
  imageHistory,
  type HistoryRow,
  type Severity,
  filterSeverities,
  scanWithDatabase,
  type ScanResult,
  openImageSource,
  type ImageSource,
  gateImages,
  type GateResult,
  type GateRuleId,
  scanImageSecrets,
  type SecretScanResult,
  imageProvenance,
  copiedPackages,
  traceImage,
  analyzeCopies,
  recordsFromDockerfile,
  type TraceResult,
  type CopyReport,
} from '../analyze/index.js';
import { parsePlatform } from '../image/index.js';
import { type BuildPlan } from '../plan/index.js';
import { renderReport } from '../report/index.js';
import { readPackageVersion } from '../util/index.js';
import { openStore, type StoreOptions } from './store.js';

export interface ReadOptions extends StoreOptions {
  /** The platform to pick from a multi-platform image (os/arch[/variant]). */
  platform?: string;
  /** Progress: layer `index` of `count` is being read. */
  onLayer?: (index: number, count: number) => void;
}

/** Opens IMAGE (store, archive or registry) for reading; close it when done. */
export async function openImage(image: string, o: StoreOptions & { platform?: string } = {}): Promise<ImageSource> {
  return openImageSource(image, {
    store: await openStore(o),
    platform: o.platform ? parsePlatform(o.platform) : undefined,
  });
}

async function reading<T>(image: string, o: ReadOptions, f: (src: ImageSource) => Promise<T>): Promise<T> {
  const src = await openImage(image, o);
  try {
    return await f(src);
  } finally {
    await src.close();
  }
}

export interface AnalyzeOptions extends ReadOptions {
  /** Evaluate dive's CI rules with these thresholds (undefined: a rule is skipped). */
  ci?: CiThresholds;
}

export interface AnalyzeResult extends ImageAnalysis {
  ci?: { pass: boolean; rules: CiRuleResult[] };
}

/** dive's analysis of an image: per layer the files added, modified, removed; wasted space; efficiency. */
export async function analyze(image: string, o: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  const a = await reading(image, o, (src) => analyzeImage(src, { onLayer: o.onLayer }));
  return o.ci ? { ...a, ci: evaluateCi(a.efficiency, o.ci) } : a;
}

/**
 * The packages in an image (dpkg, apk, Python, node), with the layer that brought each; and, from
 * the provenance this store's builds recorded, the packages a COPY --from brought without their
 * metadata (marked `copied`).
 */
export async function sbom(image: string, o: ReadOptions = {}): Promise<SbomResult> {
  const store = await openStore(o);
  return reading(image, { ...o, store }, async (src) => {
    const r = await catalogImage(src, { onLayer: o.onLayer });
    const records = await imageProvenance(store, src.config.rootfs.diff_ids);
    return { ...r, packages: [...r.packages, ...copiedPackages(records, r.packages, r.os)] };
  });
}

/** Where each PATH of an image came from: layer, Dockerfile line, COPY --from chain, owning package. */
export async function trace(image: string, paths: string[], o: ReadOptions = {}): Promise<TraceResult[]> {
  const store = await openStore(o);
  return reading(image, { ...o, store }, (src) => traceImage(src, store, paths));
}

export interface CopiesOptions extends ReadOptions {
  /** The plan of the build that made the image (`plan()`): its COPY --from steps where nothing was recorded. */
  plan?: BuildPlan;
}

/**
 * Each COPY --from of an image: size, what a runtime rarely needs, savings. From the provenance
 * this store's build recorded, else (given the Dockerfile's plan) from the image's layers.
 */
export async function copies(image: string, o: CopiesOptions = {}): Promise<CopyReport[]> {
  const store = await openStore(o);
  return reading(image, { ...o, store }, async (src) => {
    const recorded = await imageProvenance(store, src.config.rootfs.diff_ids);
    return analyzeCopies(o.plan ? await recordsFromDockerfile(src, o.plan, recorded) : recorded);
  });
}

export interface ScanOptions extends ReadOptions {
  /** Directory of OSV records (JSON files, or osv.dev all.zip exports per ecosystem). */
  db: string;
  /** Only report these severities. */
  severities?: Severity[];
}

export type ScanReport = ScanResult & Pick<SbomResult, 'image' | 'os'>;

/** Known vulnerabilities of an image's packages, from an offline OSV database. */
export async function scan(image: string, o: ScanOptions): Promise<ScanReport> {
  const cat = await sbom(image, o);
  let r = await scanWithDatabase(cat.packages, cat.os, o.db);
  if (o.severities) r = filterSeverities(r, new Set(o.severities));
  return { image: cat.image, os: cat.os, ...r };
}

export interface SecretScanOptions extends ReadOptions {
  /** Binary files larger than this are skipped, and listed as skipped (default 10 MB). */
  maxFileSize?: number;
}

export interface SecretScanReport extends SecretScanResult {
  image: string;
}

/**
 * Credential patterns (private keys, cloud and SaaS tokens, .npmrc/.pypirc/.netrc/.git-credentials,
 * docker config.json auths) in every layer — files a later layer deleted too — and in the config's
 * env, labels and history; masked, with the layer, path, line and step of each.
 */
export function scanSecrets(image: string, o: SecretScanOptions = {}): Promise<SecretScanReport> {
  return reading(image, o, async (src) => ({
    image: src.name ?? src.display,
    ...(await scanImageSecrets(src, { maxFileSize: o.maxFileSize, onLayer: o.onLayer })),
  }));
}

export interface DiffOptions extends StoreOptions {
  platform?: string;
  onLayer?: (image: 'a' | 'b', index: number, count: number) => void;
}

/** Files and packages added, removed and changed from image A to image B. */
export async function diff(a: string, b: string, o: DiffOptions = {}): Promise<ImageDiff> {
  const sa = await openImage(a, o);
  const sb = await openImage(b, o).catch(async (e: unknown) => {
    await sa.close();
    throw e;
  });
  try {
    return await diffImages(sa, sb, { onLayer: o.onLayer });
  } finally {
    await sa.close();
    await sb.close();
  }
}

export interface GateOptions extends StoreOptions {
  platform?: string;
  /** Size growth limits (percent of the baseline, bytes); null: no limit. Defaults 10 % and 50 MB. */
  maxGrowthPercent?: number | null;
  maxGrowthBytes?: number | null;
  skip?: GateRuleId[];
  /** OSV database directory: check new vulnerabilities. */
  db?: string;
  /**
   * IMAGE's base image: the layers IMAGE shares with it (from the bottom) are "the base image's"
   * for vulnerabilities. Default: read from IMAGE's history (analyze/gate.ts).
   */
  base?: string;
  onLayer?: (image: 'baseline' | 'image', index: number, count: number) => void;
}

/** The CI gate: IMAGE against BASELINE under the rules (analyze/gate.ts); `pass` false when one breaks. */
export async function gate(baseline: string, image: string, o: GateOptions = {}): Promise<GateResult> {
  const opened: ImageSource[] = [];
  try {
    const sa = await openImage(baseline, o);
    opened.push(sa);
    const sb = await openImage(image, o);
    opened.push(sb);
    let baseLayers: number | undefined;
    if (o.base !== undefined) {
      const base = await openImage(o.base, o);
      opened.push(base);
      baseLayers = 0;
      while (
        baseLayers < base.layers.length &&
        baseLayers < sb.layers.length &&
        base.layers[baseLayers]!.diffId === sb.layers[baseLayers]!.diffId
      )
        baseLayers++;
    }
    const db = o.db;
    return await gateImages(sa, sb, {
      maxGrowthPercent: o.maxGrowthPercent,
      maxGrowthBytes: o.maxGrowthBytes,
      skip: o.skip,
      ...(baseLayers !== undefined ? { baseLayers } : {}),
      ...(db !== undefined ? { scan: (packages, os) => scanWithDatabase(packages, os, db) } : {}),
      onLayer: o.onLayer,
    });
  } finally {
    for (const s of opened) await s.close();
  }
}

/** docker history's rows of an image, newest first. */
export function history(image: string, o: ReadOptions = {}): Promise<HistoryRow[]> {
  return reading(image, o, (src) => imageHistory(src));
}

export interface ReportOptions extends ReadOptions {
  /** OSV database directory: include the vulnerability scan. */
  db?: string;
  /** The plan of the build that made the image (`plan()`): include the stage graph. */
  plan?: BuildPlan;
  /** When the report was made (ISO; default now). */
  generated?: string;
  /** Compare with this image under the CI gate's rules (`gate()`, default limits; `db` too). */
  baseline?: string;
}

/** One self-contained HTML page about an image: layers, treemap, wasted files, packages, vulnerabilities, stages. */
export async function report(image: string, o: ReportOptions = {}): Promise<string> {
  const store = await openStore(o);
  let copiedFrom: (string | undefined)[] = [];
  const analysis = await reading(image, { ...o, store }, async (src) => {
    const records = await imageProvenance(store, src.config.rootfs.diff_ids);
    copiedFrom = records.map((r) => (r?.from.kind === 'stage' ? (r.from.name ?? String(r.from.index)) : undefined));
    return analyzeImage(src, { packages: true, onLayer: o.onLayer });
  });
  const scanned = o.db ? await scanWithDatabase(analysis.packages ?? [], analysis.os ?? {}, o.db) : undefined;
  const baseline =
    o.baseline !== undefined
      ? await gate(o.baseline, image, {
          store,
          platform: o.platform,
          db: o.db,
        })
      : undefined;
  return renderReport({
    analysis,
    scan: scanned,
    ...(baseline ? { baseline } : {}),
    plan: o.plan,
    copiedFrom,
    tool: { name: 'kiln', version: readPackageVersion() },
    generated: o.generated ?? new Date().toISOString(),
  });
}
