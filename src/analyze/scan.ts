/**
 * Vulnerability scan: the image's packages matched against an offline OSV database, each with
 * its ecosystem's version order. Findings are per package and per vulnerability as trivy counts
 * them: records that name the same CVE (a DSA and the DEBIAN-CVE record, a GHSA and a PYSEC...)
 * are one finding; an advisory covering several CVEs is one finding per CVE.
 */
import { matchRecord, type PackageQuery } from './osv/match.js';
import { OsvDatabase } from './osv/db.js';
import type { OsvRecord } from './osv/schema.js';
import { SEVERITIES, severityOf, severityRank, type Severity } from './osv/severity.js';
import { compareDpkgVersions, versionOrderFor } from './versions/index.js';
import type { OsRelease, Package } from './sbom/types.js';

export interface Finding {
  /** The vulnerability: a CVE id when the records name one, else the record id. */
  id: string;
  /** Every OSV record that reported it. */
  records: string[];
  aliases: string[];
  package: string;
  type: Package['type'];
  installedVersion: string;
  /** The version that fixes it (empty when no fix is known). */
  fixedVersion?: string;
  severity: Severity;
  severitySource: string;
  cvssScore?: number;
  title?: string;
  purl: string;
  location: string;
  layer: number;
  layerDiffId?: string;
  /** Internal: the severity came from a record about this vulnerability alone. */
  specific?: boolean;
}

export type SeverityCounts = Record<Severity, number>;

export interface ScanResult {
  findings: Finding[];
  summary: SeverityCounts;
  total: number;
  /** Packages looked up, and those kiln could not look up (no ecosystem for them). */
  scanned: number;
  skipped: { package: string; reason: string }[];
  db: { records: number; kept: number; files: number; problems: number };
}

/** The OSV ecosystem a package's records use, with its release. */
export function osvQuery(p: Package, os: OsRelease): PackageQuery | { skip: string } {
  switch (p.type) {
    case 'deb': {
      if (os.id && os.id !== 'debian') return { skip: `${os.id} packages: only Debian's OSV ecosystem is matched` };
      const major = (os.versionId ?? os.debianVersion ?? '').split('.')[0];
      if (!major || !/^\d+$/.test(major)) return { skip: 'unknown Debian release (no /etc/os-release VERSION_ID)' };
      // Debian's records name source packages and their versions (a binNMU "+bN" is the binary's).
      return { ecosystem: `Debian:${major}`, name: p.sourceName ?? p.name, version: p.sourceVersion ?? p.version };
    }
    case 'apk': {
      const m = /^(\d+)\.(\d+)/.exec(os.versionId ?? '');
      if (!m) return { skip: 'unknown Alpine release' };
      return { ecosystem: `Alpine:v${m[1]}.${m[2]}`, name: p.sourceName ?? p.name, version: p.version };
    }
    case 'python':
      return { ecosystem: 'PyPI', name: p.name, version: p.version };
    case 'npm':
      return { ecosystem: 'npm', name: p.name, version: p.version };
  }
}

/** CVE ids a record speaks for (its id, aliases, upstream), else its own id. */
function vulnKeys(r: OsvRecord): string[] {
  const all = [r.id, ...(r.aliases ?? []), ...(r.upstream ?? [])];
  const cves = [...new Set(all.filter((x) => /^CVE-\d{4}-\d+$/.test(x)))];
  return cves.length ? cves : [r.id];
}

export function emptyCounts(): SeverityCounts {
  return { UNKNOWN: 0, LOW: 0, MEDIUM: 0, HIGH: 0, CRITICAL: 0 };
}

export function scanPackages(packages: Package[], os: OsRelease, db: OsvDatabase): ScanResult {
  const findings: Finding[] = [];
  const skipped: ScanResult['skipped'] = [];
  let scanned = 0;
  for (const p of packages) {
    const q = osvQuery(p, os);
    if ('skip' in q) {
      skipped.push({ package: `${p.name}@${p.version}`, reason: q.skip });
      continue;
    }
    scanned++;
    const cmp = versionOrderFor(q.ecosystem) ?? compareDpkgVersions;
    const byKey = new Map<string, Finding>();
    const seen = new Set<string>();
    for (const rec of db.lookup(q.ecosystem, q.name)) {
      if (seen.has(rec.id)) continue;
      seen.add(rec.id);
      const m = matchRecord(rec, q);
      if (!m) continue;
      const sev = severityOf(rec, m.affected);
      for (const key of vulnKeys(rec)) {
        const f = byKey.get(key);
        if (!f) {
          const nf: Finding = {
            id: key,
            records: [rec.id],
            aliases: [
              ...new Set([rec.id, ...(rec.aliases ?? []), ...(rec.upstream ?? [])].filter((x) => x !== key)),
            ].sort(),
            package: p.name,
            type: p.type,
            installedVersion: p.version,
            severity: sev.severity,
            severitySource: sev.source,
            purl: p.purl,
            location: p.location,
            layer: p.layer,
            specific: vulnKeys(rec).length === 1,
          };
          if (m.fixed) nf.fixedVersion = m.fixed;
          if (sev.score !== undefined) nf.cvssScore = sev.score;
          const title = rec.summary ?? rec.details?.split('\n')[0];
          if (title) nf.title = title.length > 200 ? `${title.slice(0, 197)}...` : title;
          if (p.layerDiffId) nf.layerDiffId = p.layerDiffId;
          byKey.set(key, nf);
          continue;
        }
        // Another record about the same vulnerability: merge what it adds.
        f.records.push(rec.id);
        f.aliases = [
          ...new Set([...f.aliases, rec.id, ...(rec.aliases ?? []), ...(rec.upstream ?? [])].filter((x) => x !== key)),
        ].sort();
        // A record about this one CVE rates it better than an advisory bundling several; among
        // equals, the higher rating wins.
        const specific = vulnKeys(rec).length === 1;
        const better =
          sev.severity !== 'UNKNOWN' &&
          (f.severity === 'UNKNOWN' ||
            (specific && !f.specific) ||
            (specific === f.specific && severityRank(sev.severity) > severityRank(f.severity)));
        if (better) {
          f.specific = specific;
          f.severity = sev.severity;
          f.severitySource = sev.source;
          if (sev.score !== undefined) f.cvssScore = sev.score;
        }
        // The earliest version that fixes it wins.
        if (m.fixed && (!f.fixedVersion || cmp(m.fixed, f.fixedVersion) < 0)) f.fixedVersion = m.fixed;
        f.title ??= rec.summary;
      }
    }
    for (const f of byKey.values()) {
      delete f.specific;
      findings.push(f);
    }
  }
  findings.sort(
    (a, b) =>
      severityRank(b.severity) - severityRank(a.severity) ||
      (a.package < b.package ? -1 : a.package > b.package ? 1 : 0) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const summary = emptyCounts();
  for (const f of findings) summary[f.severity]++;
  return {
    findings,
    summary,
    total: findings.length,
    scanned,
    skipped,
    db: { ...db.stats, problems: db.problems.length },
  };
}

/** Load only the records that can matter for these packages, then scan. */
export async function scanWithDatabase(packages: Package[], os: OsRelease, dbDir: string): Promise<ScanResult> {
  const wanted = new Set<string>();
  for (const p of packages) {
    const q = osvQuery(p, os);
    if ('skip' in q) continue;
    const base = q.ecosystem.split(':')[0]!.toLowerCase();
    wanted.add(`${base}\0${base === 'pypi' ? q.name.toLowerCase().replace(/[-_.]+/g, '-') : q.name}`);
  }
  const db = await OsvDatabase.load(dbDir, { want: (eco, name) => wanted.has(`${eco}\0${name}`) });
  return scanPackages(packages, os, db);
}

/** Keep findings at or above `min` severity (trivy's --severity takes a list; see filterSeverities). */
export function filterSeverities(r: ScanResult, keep: Set<Severity>): ScanResult {
  const findings = r.findings.filter((f) => keep.has(f.severity));
  const summary = emptyCounts();
  for (const f of findings) summary[f.severity]++;
  return { ...r, findings, summary, total: findings.length };
}

export { SEVERITIES };
