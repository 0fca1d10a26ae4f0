/**
 * CVSS base scores from vector strings (v3.0/v3.1 and v2), and the qualitative rating NVD gives
 * them. v4.0 vectors are recognised but not scored (their score needs FIRST's macro-vector tables).
 */

export type Severity = 'UNKNOWN' | 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export const SEVERITIES: readonly Severity[] = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

function metrics(vector: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of vector.split('/')) {
    const [k, v] = part.split(':');
    if (k && v !== undefined) m.set(k, v);
  }
  return m;
}

/** CVSS 3.1's Roundup: the smallest one-decimal number ≥ x, robust to floating-point noise. */
function roundup31(x: number): number {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
}

/** Base score of a CVSS:3.x vector, undefined when a base metric is missing or unknown. */
export function cvss3BaseScore(vector: string): number | undefined {
  const m = metrics(vector);
  const version = m.get('CVSS');
  if (version !== '3.0' && version !== '3.1') return undefined;
  const changed = m.get('S') === 'C';
  if (m.get('S') !== 'U' && !changed) return undefined;
  const AV = { N: 0.85, A: 0.62, L: 0.55, P: 0.2 }[m.get('AV') ?? ''];
  const AC = { L: 0.77, H: 0.44 }[m.get('AC') ?? ''];
  const PR = (changed ? { N: 0.85, L: 0.68, H: 0.5 } : { N: 0.85, L: 0.62, H: 0.27 })[m.get('PR') ?? ''];
  const UI = { N: 0.85, R: 0.62 }[m.get('UI') ?? ''];
  const cia = { H: 0.56, L: 0.22, N: 0 };
  const C = cia[m.get('C') as keyof typeof cia];
  const I = cia[m.get('I') as keyof typeof cia];
  const A = cia[m.get('A') as keyof typeof cia];
  if ([AV, AC, PR, UI, C, I, A].some((x) => x === undefined)) return undefined;
  const iss = 1 - (1 - C!) * (1 - I!) * (1 - A!);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 : 6.42 * iss;
  const exploitability = 8.22 * AV! * AC! * PR! * UI!;
  if (impact <= 0) return 0;
  const round = version === '3.1' ? roundup31 : (x: number) => Math.ceil(x * 10) / 10;
  return changed ? round(Math.min(1.08 * (impact + exploitability), 10)) : round(Math.min(impact + exploitability, 10));
}

/** Base score of a CVSS v2 vector ("AV:N/AC:L/Au:N/C:P/I:P/A:P", optionally "(...)"-wrapped). */
export function cvss2BaseScore(vector: string): number | undefined {
  const m = metrics(vector.replace(/^\(|\)$/g, '').replace(/^CVSS:2\.0\//, ''));
  const AV = { L: 0.395, A: 0.646, N: 1.0 }[m.get('AV') ?? ''];
  const AC = { H: 0.35, M: 0.61, L: 0.71 }[m.get('AC') ?? ''];
  const Au = { M: 0.45, S: 0.56, N: 0.704 }[m.get('Au') ?? ''];
  const cia = { N: 0, P: 0.275, C: 0.66 };
  const C = cia[m.get('C') as keyof typeof cia];
  const I = cia[m.get('I') as keyof typeof cia];
  const A = cia[m.get('A') as keyof typeof cia];
  if ([AV, AC, Au, C, I, A].some((x) => x === undefined)) return undefined;
  const impact = 10.41 * (1 - (1 - C!) * (1 - I!) * (1 - A!));
  const exploitability = 20 * AV! * AC! * Au!;
  const f = impact === 0 ? 0 : 1.176;
  return Math.round((0.6 * impact + 0.4 * exploitability - 1.5) * f * 10) / 10;
}

/** NVD's qualitative rating of a v3 score (0.0 "None" has no level here: UNKNOWN). */
export function ratingV3(score: number): Severity {
  if (score >= 9) return 'CRITICAL';
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  if (score > 0) return 'LOW';
  return 'UNKNOWN';
}

/** NVD's rating of a v2 score (v2 has no CRITICAL). */
export function ratingV2(score: number): Severity {
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  return 'LOW';
}
