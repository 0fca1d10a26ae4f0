/** Package URLs (github.com/package-url/purl-spec) for the package types kiln catalogs. */
import type { OsRelease, PackageType } from './types.js';

/** purl-spec percent-encoding: everything but unreserved characters (and ':' in versions is encoded too). */
function enc(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function qualifiers(q: Record<string, string | undefined>): string {
  const parts = Object.keys(q)
    .filter((k) => q[k])
    .sort()
    .map((k) => `${k}=${enc(q[k]!)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export function distroQualifier(os: OsRelease | undefined): string | undefined {
  if (!os?.id) return undefined;
  const v = os.id === 'debian' ? (os.debianVersion ?? os.versionId) : os.versionId;
  return v ? `${os.id}-${v}` : os.id;
}

export function makePurl(
  type: PackageType,
  name: string,
  version: string,
  opts: { os?: OsRelease; arch?: string; upstream?: string } = {},
): string {
  switch (type) {
    case 'deb': {
      const ns = opts.os?.id === 'ubuntu' ? 'ubuntu' : 'debian';
      return `pkg:deb/${ns}/${enc(name)}@${enc(version)}${qualifiers({ arch: opts.arch, distro: distroQualifier(opts.os), upstream: opts.upstream })}`;
    }
    case 'apk':
      return `pkg:apk/alpine/${enc(name)}@${enc(version)}${qualifiers({ arch: opts.arch, distro: distroQualifier(opts.os) })}`;
    case 'python':
      // purl-spec: PyPI names are lower-cased with '_' replaced by '-'.
      return `pkg:pypi/${enc(name.toLowerCase().replace(/_/g, '-'))}@${enc(version)}`;
    case 'npm': {
      if (name.startsWith('@') && name.includes('/')) {
        const [scope, pkg] = [name.slice(0, name.indexOf('/')), name.slice(name.indexOf('/') + 1)];
        return `pkg:npm/${enc(scope)}/${enc(pkg)}@${enc(version)}`;
      }
      return `pkg:npm/${enc(name)}@${enc(version)}`;
    }
  }
}
