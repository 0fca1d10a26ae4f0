/**
 * Is a package version affected by an OSV record? The evaluation algorithm of the OSV schema
 * (IsVulnerable / IncludedInRanges / BeforeLimits), with each ecosystem's own version order for
 * ECOSYSTEM ranges and SemVer for SEMVER ranges. GIT ranges need the repository and are skipped
 * (the record's `versions` list still applies).
 */
import { compareSemver, versionOrderFor, type VersionCompare } from '../versions/index.js';
import type { OsvAffected, OsvEvent, OsvRange, OsvRecord } from './schema.js';

export interface PackageQuery {
  /** OSV ecosystem with its release where there is one: "Debian:12", "Alpine:v3.19", "PyPI", "npm". */
  ecosystem: string;
  /** Name as the ecosystem's records use it (Debian and Alpine: the source package). */
  name: string;
  version: string;
}

export interface AffectedMatch {
  affected: OsvAffected;
  /** The first version that fixes it, after the installed one (undefined: no fix known). */
  fixed?: string;
  /** A `last_affected` bound, when the range has one instead of a fix. */
  lastAffected?: string;
}

/** The ecosystem without its release suffix: "Debian:12" → "Debian". */
export function ecosystemBase(e: string): string {
  const i = e.indexOf(':');
  return i < 0 ? e : e.slice(0, i);
}

/** Package names as each ecosystem compares them (PyPI: PEP 503 normalisation). */
export function normalizePackageName(ecosystem: string, name: string): string {
  const base = ecosystemBase(ecosystem).toLowerCase();
  if (base === 'pypi') return name.toLowerCase().replace(/[-_.]+/g, '-');
  return name;
}

/**
 * Does a record's ecosystem cover the query's? Equal strings match; a record without a release
 * ("Debian") covers every release ("Debian:12"). Base names compare case-insensitively.
 */
export function ecosystemCovers(recordEco: string, queryEco: string): boolean {
  if (recordEco === queryEco) return true;
  const rb = ecosystemBase(recordEco);
  const qb = ecosystemBase(queryEco);
  if (rb.toLowerCase() !== qb.toLowerCase()) return false;
  const rr = recordEco.slice(rb.length);
  const qr = queryEco.slice(qb.length);
  return rr === '' || rr === qr;
}

type Cmp = (a: string, b: string) => number;

/** Order with OSV's special values: introduced "0" before everything, limit "*" after everything. */
function eventVersion(
  e: OsvEvent,
): { kind: 'introduced' | 'fixed' | 'last_affected' | 'limit'; v: string } | undefined {
  if (e.introduced !== undefined) return { kind: 'introduced', v: e.introduced };
  if (e.fixed !== undefined) return { kind: 'fixed', v: e.fixed };
  if (e.last_affected !== undefined) return { kind: 'last_affected', v: e.last_affected };
  if (e.limit !== undefined) return { kind: 'limit', v: e.limit };
  return undefined;
}

function compareWithSpecials(cmp: Cmp, a: { kind: string; v: string }, b: { kind: string; v: string }): number {
  const lowA = a.kind === 'introduced' && a.v === '0';
  const lowB = b.kind === 'introduced' && b.v === '0';
  if (lowA || lowB) return lowA && lowB ? 0 : lowA ? -1 : 1;
  const infA = a.kind === 'limit' && a.v.includes('*');
  const infB = b.kind === 'limit' && b.v.includes('*');
  if (infA || infB) return infA && infB ? 0 : infA ? 1 : -1;
  return cmp(a.v, b.v);
}

/** Evaluate one range; undefined when the range cannot be evaluated here (GIT, unknown order). */
export function evaluateRange(
  range: OsvRange,
  version: string,
  ecosystem: string,
): { affected: boolean; fixed?: string; lastAffected?: string } | undefined {
  let cmp: VersionCompare | undefined;
  if (range.type === 'SEMVER') cmp = compareSemver;
  else if (range.type === 'ECOSYSTEM') cmp = versionOrderFor(ecosystem);
  if (!cmp) return undefined;
  const events = range.events.map(eventVersion).filter((e): e is NonNullable<typeof e> => e !== undefined);
  // BeforeLimits: with no limit events an implicit "*" applies.
  const limits = events.filter((e) => e.kind === 'limit');
  if (limits.length && !limits.some((l) => l.v.includes('*') || cmp!(version, l.v) < 0)) return { affected: false };
  const sorted = events.filter((e) => e.kind !== 'limit').sort((a, b) => compareWithSpecials(cmp!, a, b));
  const me = { kind: 'version', v: version };
  let vulnerable = false;
  let lastAffected: string | undefined;
  for (const e of sorted) {
    if (e.kind === 'introduced' && compareWithSpecials(cmp, me, e) >= 0) {
      vulnerable = true;
      lastAffected = undefined;
    } else if (e.kind === 'fixed' && compareWithSpecials(cmp, me, e) >= 0) vulnerable = false;
    else if (e.kind === 'last_affected') {
      if (compareWithSpecials(cmp, me, e) > 0) vulnerable = false;
      else if (vulnerable && lastAffected === undefined) lastAffected = e.v;
    }
  }
  if (!vulnerable) return { affected: false };
  const fixed = sorted.find((e) => e.kind === 'fixed' && cmp!(e.v, version) > 0)?.v;
  return { affected: true, fixed, lastAffected: fixed === undefined ? lastAffected : undefined };
}

/** The `affected` entry of `record` that makes `q` vulnerable, or undefined. Withdrawn records never match. */
export function matchRecord(record: OsvRecord, q: PackageQuery): AffectedMatch | undefined {
  if (record.withdrawn) return undefined;
  const wantName = normalizePackageName(q.ecosystem, q.name);
  for (const a of record.affected ?? []) {
    if (!a.package || !ecosystemCovers(a.package.ecosystem, q.ecosystem)) continue;
    if (normalizePackageName(a.package.ecosystem, a.package.name) !== wantName) continue;
    let hit: AffectedMatch | undefined;
    for (const r of a.ranges ?? []) {
      const res = evaluateRange(r, q.version, q.ecosystem);
      if (res?.affected) {
        hit = { affected: a, fixed: res.fixed, lastAffected: res.lastAffected };
        break;
      }
    }
    if (!hit && a.versions?.includes(q.version)) {
      // Listed explicitly: a fix, if any, comes from the ranges.
      let fixed: string | undefined;
      const cmp = versionOrderFor(q.ecosystem);
      for (const r of a.ranges ?? []) {
        for (const e of r.events) if (e.fixed !== undefined && (!cmp || cmp(e.fixed, q.version) > 0)) fixed ??= e.fixed;
      }
      hit = { affected: a, fixed };
    }
    if (hit) return hit;
  }
  return undefined;
}
