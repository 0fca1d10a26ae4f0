/**
 * The package catalogers, fed one layer at a time from a stream of tar entries (no unpacking).
 * They read only the metadata files package managers keep:
 *   Debian  var/lib/dpkg/status, var/lib/dpkg/status.d/* (distroless), licences from
 *           usr/share/doc/PKG/copyright
 *   Alpine  lib/apk/db/installed
 *   Python  *.dist-info/METADATA, *.egg-info/PKG-INFO or *.egg-info files under site-packages /
 *           dist-packages (system, user, virtualenvs such as /venv)
 *   Node    node_modules/**\/package.json, and package-lock.json files outside node_modules
 *           (their non-dev packages that are not installed in the image's node_modules)
 * Layers stack with overlay semantics: a later layer's whiteouts delete what it names, an opaque
 * directory hides what was below. Each package is attributed to the layer that first had it at
 * its current version (a layer that rewrites the same version, e.g. by chown, does not take it).
 */
import { type TarHeader } from '../../layer/index.js';
import { splitWhiteout } from '../filetree.js';
import {
  parseApkInstalled,
  parseDebianCopyright,
  parseDpkgStatus,
  parseOsRelease,
  parsePackageJson,
  parsePackageLock,
  parsePythonMetadata,
} from './parsers.js';
import { makePurl } from './purl.js';
import type { OsRelease, Package } from './types.js';

type Kind =
  | 'dpkg-status'
  | 'dpkg-status.d'
  | 'apk'
  | 'python'
  | 'npm'
  | 'npm-lock'
  | 'copyright'
  | 'doc-link'
  | 'os-release'
  | 'debian-version';

interface Item {
  key: string;
  layer: number;
  data: Record<string, unknown>;
}

interface Capture {
  kind: Kind;
  layer: number;
  items: Item[];
  /** For symlinks (os-release, doc directories): the link target. */
  linkname?: string;
  text?: string;
}

const PY_META = /(?:^|\/)(?:site|dist)-packages\/[^/]+\.(?:dist-info\/METADATA|egg-info\/PKG-INFO)$/;
const PY_EGG_FILE = /(?:^|\/)(?:site|dist)-packages\/[^/]+\.egg-info$/;
const NPM_PKG = /(?:^|\/)node_modules\/(?:@[^/]+\/)?[^/@.][^/]*\/package\.json$/;
const DOC_COPYRIGHT = /^usr\/share\/doc\/([^/]+)\/copyright$/;
const DOC_DIR = /^usr\/share\/doc\/([^/]+)$/;

/** Which cataloger reads this path (undefined: none). */
export function classifyPath(p: string, type: TarHeader['type']): Kind | undefined {
  if (type === 'symlink') {
    if (p === 'etc/os-release' || p === 'usr/lib/os-release') return 'os-release';
    if (DOC_DIR.test(p)) return 'doc-link';
    return undefined;
  }
  if (type !== 'file') return undefined;
  if (p === 'var/lib/dpkg/status') return 'dpkg-status';
  if (
    p.startsWith('var/lib/dpkg/status.d/') &&
    !p.endsWith('.md5sums') &&
    p.indexOf('/', 'var/lib/dpkg/status.d/'.length) < 0
  )
    return 'dpkg-status.d';
  if (p === 'lib/apk/db/installed') return 'apk';
  if (p === 'etc/os-release' || p === 'usr/lib/os-release') return 'os-release';
  if (p === 'etc/debian_version') return 'debian-version';
  if (DOC_COPYRIGHT.test(p)) return 'copyright';
  if (p.endsWith('/package.json') && NPM_PKG.test(p)) return 'npm';
  if (
    p.endsWith('package-lock.json') &&
    (p === 'package-lock.json' || p.endsWith('/package-lock.json')) &&
    !p.includes('node_modules/')
  )
    return 'npm-lock';
  if (PY_META.test(p) || PY_EGG_FILE.test(p)) return 'python';
  return undefined;
}

/** Largest metadata file read into memory (a bigger one is skipped as not plausible). */
export const MAX_METADATA_BYTES = 64 << 20;

/** dpkg states whose files are on disk (config-files / not-installed ones have none). */
const DPKG_PRESENT = new Set([
  'installed',
  'half-configured',
  'unpacked',
  'half-installed',
  'triggers-awaited',
  'triggers-pending',
]);

export class Cataloger {
  private readonly state = new Map<string, Capture>();
  private pending = new Map<string, Capture>();
  private pendingDeletes: ({ kind: 'whiteout'; target: string } | { kind: 'opaque'; dir: string })[] = [];

  /** Should the walker read this entry's content for us? */
  wants(path: string, header: Pick<TarHeader, 'type' | 'size'>): boolean {
    const k = classifyPath(path, header.type);
    return k !== undefined && header.type === 'file' && header.size <= MAX_METADATA_BYTES;
  }

  /** One tar entry of `layer` (content given when `wants` said so). Whiteouts are entries too. */
  entry(layer: number, path: string, header: Pick<TarHeader, 'type' | 'size' | 'linkname'>, content?: Buffer): void {
    const w = splitWhiteout(path);
    if (w) {
      this.pendingDeletes.push(w);
      return;
    }
    const kind = classifyPath(path, header.type);
    if (!kind) {
      // Something else now lives at a path we tracked (e.g. a file replaced by a directory).
      if (this.state.has(path)) this.pendingDeletes.push({ kind: 'whiteout', target: path });
      return;
    }
    if (header.type === 'symlink') {
      this.pending.set(path, { kind, layer, items: [], linkname: header.linkname });
      return;
    }
    if (!content) return;
    const text = content.toString('utf8');
    this.pending.set(path, {
      kind,
      layer,
      items: this.parse(kind, path, text, layer),
      text: kind === 'os-release' || kind === 'debian-version' ? text : undefined,
    });
  }

  private parse(kind: Kind, path: string, text: string, layer: number): Item[] {
    switch (kind) {
      case 'dpkg-status':
      case 'dpkg-status.d':
        return parseDpkgStatus(text).map((e) => ({
          key: `${e.name}:${e.arch ?? ''}@${e.version}`,
          layer,
          data: { ...e },
        }));
      case 'apk':
        return parseApkInstalled(text).map((e) => ({ key: `${e.name}@${e.version}`, layer, data: { ...e } }));
      case 'python': {
        const m = parsePythonMetadata(text);
        return m ? [{ key: `${m.name}@${m.version}`, layer, data: { ...m } }] : [];
      }
      case 'npm': {
        const m = parsePackageJson(text);
        return m ? [{ key: `${m.name}@${m.version}`, layer, data: { ...m } }] : [];
      }
      case 'npm-lock':
        return parsePackageLock(text).map((p) => ({ key: `${p.path}@${p.version}`, layer, data: { ...p } }));
      case 'copyright':
        return [{ key: 'licenses', layer, data: { licenses: parseDebianCopyright(text) } }];
      default:
        void path;
        return [];
    }
  }

  /** The layer is complete: its deletions apply to what was below, then its files. */
  endLayer(): void {
    for (const d of this.pendingDeletes) {
      const prefix = d.kind === 'whiteout' ? d.target : d.dir;
      for (const p of [...this.state.keys()]) {
        if (
          d.kind === 'whiteout'
            ? p === prefix || p.startsWith(`${prefix}/`)
            : prefix === '' || p.startsWith(`${prefix}/`)
        )
          this.state.delete(p);
      }
    }
    for (const [p, cap] of this.pending) {
      const prev = this.state.get(p);
      if (prev && prev.kind === cap.kind) {
        const before = new Map(prev.items.map((i) => [i.key, i.layer]));
        for (const it of cap.items) it.layer = before.get(it.key) ?? it.layer;
      }
      this.state.set(p, cap);
    }
    this.pending = new Map();
    this.pendingDeletes = [];
  }

  /** What the image's os-release says (following a symlink between the two usual places). */
  osRelease(): OsRelease {
    const read = (p: string, depth = 0): string | undefined => {
      const c = this.state.get(p);
      if (!c || depth > 4) return undefined;
      if (c.linkname !== undefined) {
        const target = c.linkname.startsWith('/')
          ? c.linkname.slice(1)
          : normalize(`${p.slice(0, p.lastIndexOf('/'))}/${c.linkname}`);
        return read(target, depth + 1);
      }
      return c.text;
    };
    const text = read('etc/os-release') ?? read('usr/lib/os-release');
    const os = text ? parseOsRelease(text) : {};
    const dv = this.state.get('etc/debian_version')?.text?.trim();
    if (dv) {
      os.debianVersion = dv;
      os.id ??= 'debian';
    }
    return os;
  }

  /** The packages of the stacked layers. `diffIds[i]` names layer i. */
  packages(diffIds: string[] = []): Package[] {
    const os = this.osRelease();
    const out: Package[] = [];
    const at = (layer: number) => ({ layer, layerDiffId: diffIds[layer] });
    const copyright = (name: string): string[] => {
      let dir = `usr/share/doc/${name}`;
      const link = this.state.get(dir);
      if (link?.linkname)
        dir = link.linkname.startsWith('/') ? link.linkname.slice(1) : normalize(`usr/share/doc/${link.linkname}`);
      const c = this.state.get(`${dir}/copyright`);
      return (c?.items[0]?.data.licenses as string[] | undefined) ?? [];
    };
    const installedNpm = new Set<string>();
    for (const [p, cap] of this.state) if (cap.kind === 'npm') installedNpm.add(p.slice(0, -'/package.json'.length));
    for (const [p, cap] of [...this.state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      for (const it of cap.items) {
        const d = it.data;
        switch (cap.kind) {
          case 'dpkg-status':
          case 'dpkg-status.d': {
            const state = d.state as string | undefined;
            if (state !== undefined && !DPKG_PRESENT.has(state)) break;
            const name = d.name as string;
            const version = d.version as string;
            const pkg: Package = {
              type: 'deb',
              name,
              version,
              purl: makePurl('deb', name, version, {
                os,
                arch: d.arch as string | undefined,
                upstream: d.sourceName && d.sourceName !== name ? (d.sourceName as string) : undefined,
              }),
              licenses: copyright(name),
              location: p,
              ...at(it.layer),
              foundBy: cap.kind,
            };
            if (d.arch) pkg.arch = d.arch as string;
            if (d.sourceName) pkg.sourceName = d.sourceName as string;
            if (d.sourceVersion) pkg.sourceVersion = d.sourceVersion as string;
            out.push(pkg);
            break;
          }
          case 'apk': {
            const name = d.name as string;
            const version = d.version as string;
            const pkg: Package = {
              type: 'apk',
              name,
              version,
              purl: makePurl('apk', name, version, { os, arch: d.arch as string | undefined }),
              licenses: d.license ? [d.license as string] : [],
              location: p,
              ...at(it.layer),
              foundBy: 'apk-db',
            };
            if (d.arch) pkg.arch = d.arch as string;
            if (d.origin) pkg.sourceName = d.origin as string;
            out.push(pkg);
            break;
          }
          case 'python': {
            const name = d.name as string;
            const version = d.version as string;
            const loc = p.endsWith('/METADATA') || p.endsWith('/PKG-INFO') ? p.slice(0, p.lastIndexOf('/')) : p;
            out.push({
              type: 'python',
              name,
              version,
              purl: makePurl('python', name, version),
              licenses: d.licenses as string[],
              location: loc,
              ...at(it.layer),
              foundBy: 'python-metadata',
            });
            break;
          }
          case 'npm': {
            const name = d.name as string;
            const version = d.version as string;
            out.push({
              type: 'npm',
              name,
              version,
              purl: makePurl('npm', name, version),
              licenses: d.licenses as string[],
              location: p.slice(0, -'/package.json'.length),
              ...at(it.layer),
              foundBy: 'npm-package.json',
            });
            break;
          }
          case 'npm-lock': {
            if (d.dev) break;
            const base = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
            const loc = base ? `${base}/${d.path as string}` : (d.path as string);
            if (installedNpm.has(loc)) break; // installed: reported from its package.json
            const name = d.name as string;
            const version = d.version as string;
            out.push({
              type: 'npm',
              name,
              version,
              purl: makePurl('npm', name, version),
              licenses: d.licenses as string[],
              location: loc,
              ...at(it.layer),
              foundBy: 'npm-package-lock',
            });
            break;
          }
          default:
            break;
        }
      }
    }
    const rank = { deb: 0, apk: 1, python: 2, npm: 3 };
    const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    return out.sort(
      (a, b) =>
        rank[a.type] - rank[b.type] || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.location, b.location),
    );
  }
}

function normalize(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}
