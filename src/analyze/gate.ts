/**
 * `kiln diff --ci --baseline REF IMAGE`: a CI gate comparing an image with a baseline (the last
 * release), offline. Each rule compares the two and breaks on what is new in IMAGE: size growth
 * beyond a limit, new packages, new setuid/setgid or world-writable files, a final user that
 * became root, new vulnerabilities (with an OSV database; split into those that came with the
 * base image's layers and those from the image's own layers), new exposed ports. Pure over the
 * two walks; the caller opens the images and the database.
 */
import type { FsTree } from './filetree.js';
import type { Package } from './sbom/types.js';
import type { ImageSource } from './source.js';
import type { Finding, ScanResult } from './scan.js';
import { imageSummary, type ImageSummary } from './analyze.js';
import { walkImage, type WalkResult } from './walk.js';

export const GATE_RULES = [
  'size-growth',
  'new-packages',
  'new-setuid',
  'new-world-writable',
  'root-user',
  'new-vulnerabilities',
  'new-ports',
] as const;
export type GateRuleId = (typeof GATE_RULES)[number];

export const GATE_RULE_DESCRIPTIONS: Record<GateRuleId, string> = {
  'size-growth': 'the image grew more than the limits allow',
  'new-packages': 'packages the baseline does not have',
  'new-setuid': 'setuid or setgid files the baseline does not have',
  'new-world-writable': 'world-writable files or directories (not sticky directories) the baseline does not have',
  'root-user': 'the final user is root and was not in the baseline',
  'new-vulnerabilities': 'vulnerabilities the baseline does not have (with --db)',
  'new-ports': 'exposed ports the baseline does not expose',
};

export interface GateOptions {
  /** Size growth limits: percent of the baseline's size and bytes; null: no limit. Defaults 10 % and 50 MB. */
  maxGrowthPercent?: number | null;
  maxGrowthBytes?: number | null;
  /** Rules not checked. */
  skip?: GateRuleId[];
  /**
   * Vulnerability scans of both images (the caller scans with its database); without them the
   * vulnerability rule is skipped.
   */
  scan?: (packages: Package[], os: WalkResult['os']) => Promise<ScanResult>;
  /** How many of IMAGE's first layers are its base image's (findings there are "from the base image"). */
  baseLayers?: number;
  onLayer?: (image: 'baseline' | 'image', index: number, count: number) => void;
}

export interface GateFinding {
  message: string;
  /** A path in the image, or a package's location. */
  path?: string;
  /** For vulnerabilities: where the package came from. */
  origin?: 'base image' | 'your layers';
  id?: string;
  severity?: string;
}

export interface GateRuleResult {
  rule: GateRuleId;
  status: 'pass' | 'fail' | 'skip';
  /** One line: what was measured, or why it was skipped. */
  message: string;
  findings: GateFinding[];
}

type Side = ImageSummary & { size: number; files: number; packages: number; user: string; layers: number };

export interface GateResult {
  baseline: Side;
  image: Side;
  pass: boolean;
  /** How many of the image's layers were counted as its base image's, and how that was decided. */
  baseLayers: number;
  rules: GateRuleResult[];
}

export const DEFAULT_MAX_GROWTH_PERCENT = 10;
export const DEFAULT_MAX_GROWTH_BYTES = 50_000_000;

export function isRootUser(user: string | undefined): boolean {
  return user === undefined || /^(|root|0)(:.*)?$/.test(user.trim());
}

/**
 * The number of leading layers an image took from its base, read from its history: the layers up
 * to the last one a Dockerfile step did not make (BuildKit and kiln mark theirs with the comment
 * `buildkit.dockerfile.v0`). 0 when every layer is marked (a base built by BuildKit too: pass the
 * base explicitly then).
 */
export function baseLayersFromHistory(src: ImageSource): number {
  let layer = 0;
  let base = 0;
  for (const h of src.config.history ?? []) {
    if (h.empty_layer) continue;
    layer++;
    if (h.comment !== 'buildkit.dockerfile.v0') base = layer;
  }
  return Math.min(base, src.layers.length);
}

/** Compare `image` with `baseline` under the rules. */
export async function gateImages(baseline: ImageSource, image: ImageSource, o: GateOptions = {}): Promise<GateResult> {
  const wa = await walkImage(baseline, {
    entries: true,
    catalog: true,
    hash: 'none',
    onLayer: (i, n) => o.onLayer?.('baseline', i, n),
  });
  const wb = await walkImage(image, {
    entries: true,
    catalog: true,
    hash: 'none',
    onLayer: (i, n) => o.onLayer?.('image', i, n),
  });
  const side = (src: ImageSource, w: WalkResult): Side => {
    let size = 0;
    let files = 0;
    for (const n of w.tree!.walk()) {
      if (n.info!.type === 'directory') continue;
      size += n.info!.size;
      files++;
    }
    return {
      ...imageSummary(src),
      size,
      files,
      packages: w.packages.length,
      user: src.config.config?.User ?? '',
      layers: src.layers.length,
    };
  };
  const a = side(baseline, wa);
  const b = side(image, wb);
  const skip = new Set(o.skip ?? []);
  const baseLayers = o.baseLayers ?? baseLayersFromHistory(image);
  const rules: GateRuleResult[] = [];
  const add = (rule: GateRuleId, check: () => Promise<Omit<GateRuleResult, 'rule'>> | Omit<GateRuleResult, 'rule'>) =>
    skip.has(rule)
      ? Promise.resolve(rules.push({ rule, status: 'skip', message: 'skipped (--skip-rule)', findings: [] }))
      : Promise.resolve(check()).then((r) => rules.push({ rule, ...r }));

  await add('size-growth', () => {
    const grew = b.size - a.size;
    const pct = a.size > 0 ? (grew / a.size) * 100 : grew > 0 ? Infinity : 0;
    const maxPct = o.maxGrowthPercent === undefined ? DEFAULT_MAX_GROWTH_PERCENT : o.maxGrowthPercent;
    const maxBytes = o.maxGrowthBytes === undefined ? DEFAULT_MAX_GROWTH_BYTES : o.maxGrowthBytes;
    const over: string[] = [];
    if (maxPct !== null && pct > maxPct) over.push(`more than ${maxPct} %`);
    if (maxBytes !== null && grew > maxBytes) over.push(`more than ${mb(maxBytes)}`);
    const measured = `${mb(a.size)} → ${mb(b.size)} (${grew >= 0 ? '+' : ''}${mb(grew)}, ${grew >= 0 ? '+' : ''}${Number.isFinite(pct) ? pct.toFixed(1) : '∞'} %)`;
    return {
      status: over.length ? 'fail' : 'pass',
      message: over.length ? `grew ${over.join(' and ')}: ${measured}` : measured,
      findings: [],
    };
  });

  await add('new-packages', () => {
    const key = (p: Package) => `${p.type}\0${p.name}\0${p.arch ?? ''}`;
    const had = new Set(wa.packages.map(key));
    const seen = new Set<string>();
    const added = wb.packages.filter((p) => !had.has(key(p)) && !seen.has(key(p)) && seen.add(key(p)));
    return {
      status: added.length ? 'fail' : 'pass',
      message: `${added.length} new package${added.length === 1 ? '' : 's'}`,
      findings: added
        .map((p) => ({ message: `${p.type} ${p.name} ${p.version}`, path: p.location }))
        .sort((x, y) => (x.message < y.message ? -1 : 1)),
    };
  });

  const fa = modes(wa.tree!);
  const fb = modes(wb.tree!);
  await add('new-setuid', () => {
    const bits = (m: number) => m & 0o6000;
    const found: GateFinding[] = [];
    for (const [p, f] of fb) {
      if (f.type !== 'file' || !bits(f.mode)) continue;
      const was = fa.get(p);
      if (was && was.type === 'file' && (bits(was.mode) & bits(f.mode)) === bits(f.mode)) continue;
      const what = [f.mode & 0o4000 ? 'setuid' : '', f.mode & 0o2000 ? 'setgid' : ''].filter(Boolean).join('+');
      found.push({ message: `${what} ${octal(f.mode)} ${p}`, path: p });
    }
    return {
      status: found.length ? 'fail' : 'pass',
      message: `${found.length} new setuid/setgid files`,
      findings: found,
    };
  });

  await add('new-world-writable', () => {
    const ww = (f: { type: string; mode: number }) =>
      f.type !== 'symlink' && (f.mode & 0o002) !== 0 && !(f.type === 'directory' && (f.mode & 0o1000) !== 0);
    const found: GateFinding[] = [];
    for (const [p, f] of fb) {
      if (!ww(f)) continue;
      const was = fa.get(p);
      if (was && ww(was)) continue;
      found.push({ message: `${f.type} ${octal(f.mode)} ${p}`, path: p });
    }
    return {
      status: found.length ? 'fail' : 'pass',
      message: `${found.length} new world-writable files or directories`,
      findings: found,
    };
  });

  await add('root-user', () => {
    const became = isRootUser(b.user) && !isRootUser(a.user);
    const show = (u: string) => (u === '' ? 'root (no USER)' : u);
    return {
      status: became ? 'fail' : 'pass',
      message: became ? `the final user became root: ${show(a.user)} → ${show(b.user)}` : `final user ${show(b.user)}`,
      findings: [],
    };
  });

  await add('new-vulnerabilities', async () => {
    if (!o.scan) return { status: 'skip', message: 'no vulnerability database (--db DIR)', findings: [] };
    const [sa, sb] = [await o.scan(wa.packages, wa.os), await o.scan(wb.packages, wb.os)];
    const key = (f: Finding) => `${f.id}\0${f.package}`;
    const had = new Set(sa.findings.map(key));
    const added = sb.findings.filter((f) => !had.has(key(f)));
    const found = added.map((f): GateFinding => ({
      message: `${f.id} (${f.severity}) in ${f.package} ${f.installedVersion}${f.fixedVersion ? `, fixed in ${f.fixedVersion}` : ''}`,
      path: f.location,
      origin: f.layer < baseLayers ? 'base image' : 'your layers',
      id: f.id,
      severity: f.severity,
    }));
    const fromBase = found.filter((f) => f.origin === 'base image').length;
    return {
      status: found.length ? 'fail' : 'pass',
      message: `${found.length} new vulnerabilities: ${fromBase} from the base image, ${found.length - fromBase} from your layers`,
      findings: found.sort((x, y) =>
        x.origin === y.origin ? (x.message < y.message ? -1 : 1) : x.origin === 'base image' ? -1 : 1,
      ),
    };
  });

  await add('new-ports', () => {
    const ports = (src: ImageSource) => Object.keys(src.config.config?.ExposedPorts ?? {});
    const had = new Set(ports(baseline));
    const added = ports(image).filter((p) => !had.has(p));
    return {
      status: added.length ? 'fail' : 'pass',
      message: added.length ? `new exposed ports: ${added.join(', ')}` : 'no new exposed ports',
      findings: added.map((p) => ({ message: `EXPOSE ${p}` })),
    };
  });

  return { baseline: a, image: b, pass: rules.every((r) => r.status !== 'fail'), baseLayers, rules };
}

function modes(tree: FsTree): Map<string, { type: string; mode: number }> {
  const m = new Map<string, { type: string; mode: number }>();
  for (const n of tree.walk()) m.set(`/${n.path()}`.replace(/^\/+/, '/'), { type: n.info!.type, mode: n.info!.mode });
  return m;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function mb(n: number): string {
  const s =
    Math.abs(n) >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : Math.abs(n) >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;
  return s;
}
