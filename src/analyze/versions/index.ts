/** Version orderings by ecosystem: dpkg for Debian, PEP 440 for PyPI, SemVer for npm. */
import { compareDpkgVersions } from './dpkg.js';
import { comparePep440 } from './pep440.js';
import { compareSemver } from './semver.js';
import { compareApkVersions } from './apk.js';

export { compareDpkgVersions, parseDpkgVersion, type DpkgVersion } from './dpkg.js';
export { comparePep440, parsePep440, normalizePep440, type Pep440Version } from './pep440.js';
export { compareSemver, parseSemver, type SemVer } from './semver.js';
export { compareApkVersions } from './apk.js';

export type VersionCompare = (a: string, b: string) => number;

/**
 * The ordering for an OSV ecosystem name ("Debian:12" → dpkg), undefined when kiln has none.
 * Only the part before ':' matters.
 */
export function versionOrderFor(ecosystem: string): VersionCompare | undefined {
  const base = ecosystem.split(':')[0]!.toLowerCase();
  switch (base) {
    case 'debian':
    case 'ubuntu':
      return compareDpkgVersions;
    case 'pypi':
      return comparePep440;
    case 'npm':
      return compareSemver;
    case 'alpine':
      return compareApkVersions;
    default:
      return undefined;
  }
}
