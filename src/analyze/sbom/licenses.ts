/**
 * Licence names → SPDX. Package metadata says "MIT", "Apache-2.0", but Debian copyright files use
 * DEP-5 short names ("GPL-2+", "Expat", "BSD-3-clause"): the common ones are mapped to SPDX
 * identifiers; anything else stays a name (CycloneDX) or becomes a LicenseRef (SPDX).
 */

const SPDX_IDS = [
  '0BSD',
  'AFL-2.1',
  'AFL-3.0',
  'AGPL-3.0-only',
  'AGPL-3.0-or-later',
  'Apache-1.1',
  'Apache-2.0',
  'APSL-2.0',
  'Artistic-1.0',
  'Artistic-1.0-Perl',
  'Artistic-2.0',
  'Beerware',
  'BlueOak-1.0.0',
  'BSD-1-Clause',
  'BSD-2-Clause',
  'BSD-3-Clause',
  'BSD-4-Clause',
  'BSL-1.0',
  'bzip2-1.0.6',
  'CC-BY-3.0',
  'CC-BY-4.0',
  'CC-BY-SA-3.0',
  'CC-BY-SA-4.0',
  'CC0-1.0',
  'CDDL-1.0',
  'CDDL-1.1',
  'curl',
  'ECL-2.0',
  'EPL-1.0',
  'EPL-2.0',
  'EUPL-1.2',
  'FSFAP',
  'FSFUL',
  'FSFULLR',
  'FTL',
  'GFDL-1.2-only',
  'GFDL-1.2-or-later',
  'GFDL-1.3-only',
  'GFDL-1.3-or-later',
  'GPL-1.0-only',
  'GPL-1.0-or-later',
  'GPL-2.0-only',
  'GPL-2.0-or-later',
  'GPL-3.0-only',
  'GPL-3.0-or-later',
  'HPND',
  'ICU',
  'IJG',
  'Info-ZIP',
  'ISC',
  'LGPL-2.0-only',
  'LGPL-2.0-or-later',
  'LGPL-2.1-only',
  'LGPL-2.1-or-later',
  'LGPL-3.0-only',
  'LGPL-3.0-or-later',
  'Libpng',
  'libtiff',
  'LPPL-1.3c',
  'MIT',
  'MIT-0',
  'MPL-1.1',
  'MPL-2.0',
  'MS-PL',
  'NCSA',
  'OFL-1.1',
  'OLDAP-2.8',
  'OpenSSL',
  'PHP-3.01',
  'PostgreSQL',
  'PSF-2.0',
  'Python-2.0',
  'Ruby',
  'Sleepycat',
  'TCL',
  'Unicode-DFS-2016',
  'Unicode-3.0',
  'Unlicense',
  'UPL-1.0',
  'Vim',
  'W3C',
  'WTFPL',
  'X11',
  'Zlib',
  'ZPL-2.1',
];
const BY_LOWER = new Map(SPDX_IDS.map((id) => [id.toLowerCase(), id]));

/** DEP-5 and other common spellings → SPDX. */
const ALIASES: Record<string, string> = {
  expat: 'MIT',
  'mit license': 'MIT',
  'the mit license': 'MIT',
  'mit/x11': 'MIT',
  'apache 2.0': 'Apache-2.0',
  'apache-2': 'Apache-2.0',
  'apache license 2.0': 'Apache-2.0',
  'apache software license': 'Apache-2.0',
  'apache license, version 2.0': 'Apache-2.0',
  'bsd license': 'BSD-3-Clause',
  'bsd-3': 'BSD-3-Clause',
  'bsd-2': 'BSD-2-Clause',
  'gpl-1': 'GPL-1.0-only',
  'gpl-1+': 'GPL-1.0-or-later',
  'gpl-2': 'GPL-2.0-only',
  'gpl-2+': 'GPL-2.0-or-later',
  'gpl-2.0+': 'GPL-2.0-or-later',
  'gpl-3': 'GPL-3.0-only',
  'gpl-3+': 'GPL-3.0-or-later',
  'gpl-3.0+': 'GPL-3.0-or-later',
  'lgpl-2': 'LGPL-2.0-only',
  'lgpl-2+': 'LGPL-2.0-or-later',
  'lgpl-2.1': 'LGPL-2.1-only',
  'lgpl-2.1+': 'LGPL-2.1-or-later',
  'lgpl-3': 'LGPL-3.0-only',
  'lgpl-3+': 'LGPL-3.0-or-later',
  'agpl-3': 'AGPL-3.0-only',
  'agpl-3+': 'AGPL-3.0-or-later',
  'gfdl-1.2+': 'GFDL-1.2-or-later',
  'gfdl-1.3+': 'GFDL-1.3-or-later',
  'mpl-2': 'MPL-2.0',
  psf: 'PSF-2.0',
  'python software foundation license': 'PSF-2.0',
  'isc license': 'ISC',
  'zlib/libpng': 'Zlib',
  'public-domain': '',
  'public domain': '',
};

/** The SPDX identifier for a licence name, or undefined when there is none. */
export function toSpdxId(name: string): string | undefined {
  const n = name.trim();
  const exact = BY_LOWER.get(n.toLowerCase());
  if (exact) return exact;
  const a = ALIASES[n.toLowerCase()];
  return a ? a : undefined;
}

/** Is this an SPDX expression over known identifiers ("MIT OR Apache-2.0")? */
export function isSpdxExpression(s: string): boolean {
  const tokens = s.replace(/[()]/g, ' ').split(/\s+/).filter(Boolean);
  if (tokens.length < 3) return false;
  return tokens.every(
    (t) =>
      ['AND', 'OR', 'WITH'].includes(t) ||
      BY_LOWER.has(t.toLowerCase()) ||
      /^LicenseRef-[A-Za-z0-9.-]+$/.test(t) ||
      /-exception$/i.test(t),
  );
}

/** A LicenseRef for a name SPDX does not know. */
export function licenseRef(name: string): string {
  return `LicenseRef-${
    name
      .replace(/\+/g, '-plus')
      .replace(/[^A-Za-z0-9.-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'unknown'
  }`;
}
