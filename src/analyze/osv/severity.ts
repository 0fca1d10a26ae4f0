/**
 * A finding's severity as trivy shows it: the ecosystem's own rating first (Debian's urgency,
 * GitHub's database_specific.severity, Ubuntu priorities), else the CVSS vectors' NVD rating,
 * else UNKNOWN.
 */
import { cvss2BaseScore, cvss3BaseScore, ratingV2, ratingV3, type Severity } from './cvss.js';
import type { OsvAffected, OsvRecord, OsvSeverity } from './schema.js';

export { type Severity, SEVERITIES, severityRank } from './cvss.js';

/** trivy-db's mapping of Debian security-tracker urgencies. */
export function severityFromDebianUrgency(urgency: string): Severity {
  switch (urgency.trim().toLowerCase()) {
    case 'unimportant':
    case 'low':
    case 'low*':
    case 'low**':
      return 'LOW';
    case 'medium':
    case 'medium*':
    case 'medium**':
      return 'MEDIUM';
    case 'high':
    case 'high*':
    case 'high**':
      return 'HIGH';
    default: // "not yet assigned", "end-of-life", ...
      return 'UNKNOWN';
  }
}

/** Vendor words (GitHub: MODERATE; Red Hat: IMPORTANT; Ubuntu: negligible) → trivy's levels. */
export function severityFromLabel(label: string): Severity {
  switch (label.trim().toUpperCase()) {
    case 'CRITICAL':
      return 'CRITICAL';
    case 'HIGH':
    case 'IMPORTANT':
      return 'HIGH';
    case 'MEDIUM':
    case 'MODERATE':
      return 'MEDIUM';
    case 'LOW':
    case 'NEGLIGIBLE':
    case 'UNIMPORTANT':
      return 'LOW';
    default:
      return 'UNKNOWN';
  }
}

function fromVectors(
  list: OsvSeverity[] | undefined,
): { severity: Severity; score?: number; vector?: string } | undefined {
  if (!list) return undefined;
  // Prefer the newest scoring system kiln can compute.
  for (const type of ['CVSS_V3', 'CVSS_V2', 'Ubuntu']) {
    for (const s of list) {
      if (s.type !== type) continue;
      if (type === 'CVSS_V3') {
        const score = cvss3BaseScore(s.score);
        if (score !== undefined) return { severity: ratingV3(score), score, vector: s.score };
      } else if (type === 'CVSS_V2') {
        const score = cvss2BaseScore(s.score);
        if (score !== undefined) return { severity: ratingV2(score), score, vector: s.score };
      } else {
        const sev = severityFromLabel(s.score);
        if (sev !== 'UNKNOWN') return { severity: sev };
      }
    }
  }
  return undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export interface SeverityInfo {
  severity: Severity;
  /** Where it came from: "debian-urgency", "database_specific", "cvss_v3"... */
  source: string;
  score?: number;
  vector?: string;
}

export function severityOf(record: OsvRecord, affected: OsvAffected | undefined): SeverityInfo {
  const urgency = str(affected?.ecosystem_specific?.urgency);
  if (urgency) {
    const s = severityFromDebianUrgency(urgency);
    if (s !== 'UNKNOWN') return { severity: s, source: 'debian-urgency' };
  }
  for (const [label, where] of [
    [str(affected?.ecosystem_specific?.severity), 'ecosystem_specific'],
    [str(affected?.database_specific?.severity), 'database_specific'],
    [str(record.database_specific?.severity), 'database_specific'],
  ] as const) {
    if (!label) continue;
    const s = severityFromLabel(label);
    if (s !== 'UNKNOWN') return { severity: s, source: where };
  }
  const v = fromVectors(affected?.severity) ?? fromVectors(record.severity);
  if (v)
    return {
      ...v,
      source: v.score === undefined ? 'severity' : v.vector?.startsWith('CVSS:3') ? 'cvss_v3' : 'cvss_v2',
    };
  return { severity: 'UNKNOWN', source: 'none' };
}
