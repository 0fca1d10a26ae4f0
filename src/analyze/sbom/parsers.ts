/**
 * Parsers for the package metadata files the catalogers read. Pure functions over file text;
 * malformed input yields what could be read, never an exception.
 */
import type { OsRelease } from './types.js';

/** RFC 822-style stanzas (dpkg status, control files): fields with continuation lines. */
export function parseStanzas(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let cur = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (cur.size) out.push(cur);
      cur = new Map();
      last = undefined;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      cur.set(last, `${cur.get(last)}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim();
    cur.set(last, line.slice(colon + 1).trim());
  }
  if (cur.size) out.push(cur);
  return out;
}

export interface DpkgEntry {
  name: string;
  version: string;
  arch?: string;
  sourceName?: string;
  sourceVersion?: string;
  /** The third word of Status ("installed", "config-files", ...); undefined in status.d files. */
  state?: string;
}

/** dpkg's status database (or one status.d file): the packages with their state. */
export function parseDpkgStatus(text: string): DpkgEntry[] {
  const out: DpkgEntry[] = [];
  for (const s of parseStanzas(text)) {
    const name = s.get('Package');
    const version = s.get('Version');
    if (!name || !version) continue;
    const e: DpkgEntry = { name, version };
    const arch = s.get('Architecture');
    if (arch) e.arch = arch;
    const status = s.get('Status');
    if (status) e.state = status.split(/\s+/)[2];
    const src = s.get('Source');
    if (src) {
      const m = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(src);
      if (m) {
        e.sourceName = m[1];
        if (m[2]) e.sourceVersion = m[2];
      }
    }
    out.push(e);
  }
  return out;
}

/**
 * Licences named in a Debian copyright file: DEP-5 "License:" fields, and for free-form files the
 * licences they point to in /usr/share/common-licenses (as syft reads them). In order, deduplicated.
 */
export function parseDebianCopyright(text: string): string[] {
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^License:\s*(\S.*)$/i.exec(line);
    if (!m) continue;
    const lic = m[1]!.trim();
    if (lic) seen.add(lic);
  }
  if (seen.size === 0) {
    for (const m of text.matchAll(/\/usr\/share\/common-licenses\/([0-9A-Za-z_.+-]+?)(?=[.,;:)'"`]*(?:\s|$))/g))
      seen.add(m[1]!);
  }
  return [...seen];
}

export interface ApkEntry {
  name: string;
  version: string;
  arch?: string;
  license?: string;
  origin?: string;
}

/** Alpine's installed database (/lib/apk/db/installed): "P:name", "V:version", ... per package. */
export function parseApkInstalled(text: string): ApkEntry[] {
  const out: ApkEntry[] = [];
  let cur: Partial<ApkEntry> = {};
  const flush = () => {
    if (cur.name && cur.version) out.push(cur as ApkEntry);
    cur = {};
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    const k = line[0];
    const v = line.slice(2);
    if (line[1] !== ':') continue;
    if (k === 'P') cur.name = v;
    else if (k === 'V') cur.version = v;
    else if (k === 'A') cur.arch = v;
    else if (k === 'L') cur.license = v;
    else if (k === 'o') cur.origin = v;
  }
  flush();
  return out;
}

export interface PythonMeta {
  name: string;
  version: string;
  licenses: string[];
}

/** Core metadata (METADATA / PKG-INFO): Name, Version, License-Expression, License, classifiers. */
export function parsePythonMetadata(text: string): PythonMeta | undefined {
  // Headers end at the first blank line; the body is the long description.
  const head = text.split(/\r?\n\r?\n/, 1)[0]!;
  const fields = new Map<string, string[]>();
  let last: string | undefined;
  for (const line of head.split(/\r?\n/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      const l = fields.get(last)!;
      l[l.length - 1] += `\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    const v = line.slice(colon + 1).trim();
    const l = fields.get(last);
    if (l) l.push(v);
    else fields.set(last, [v]);
  }
  const name = fields.get('name')?.[0];
  const version = fields.get('version')?.[0];
  if (!name || !version) return undefined;
  const licenses: string[] = [];
  const expr = fields.get('license-expression')?.[0];
  if (expr) licenses.push(expr);
  else {
    const lic = fields.get('license')?.[0];
    // A long licence text in License: is not a name; keep one-line values only.
    if (lic && !lic.includes('\n') && lic.length <= 100 && lic.toUpperCase() !== 'UNKNOWN') licenses.push(lic);
    if (!licenses.length) {
      for (const c of fields.get('classifier') ?? []) {
        const m = /^License :: (?:OSI Approved :: )?(.+)$/.exec(c);
        if (m && m[1] !== 'OSI Approved') licenses.push(m[1]!.trim());
      }
    }
  }
  return { name, version, licenses };
}

/** The licence of a package.json: "license" (string or {type}), or the legacy "licenses" list. */
export function npmLicenses(pkg: Record<string, unknown>): string[] {
  const one = (l: unknown): string | undefined =>
    typeof l === 'string'
      ? l
      : l && typeof l === 'object' && typeof (l as { type?: unknown }).type === 'string'
        ? (l as { type: string }).type
        : undefined;
  const l = one(pkg.license);
  if (l) return [l];
  if (Array.isArray(pkg.licenses)) return pkg.licenses.map(one).filter((x): x is string => !!x);
  return [];
}

export interface NpmManifest {
  name: string;
  version: string;
  licenses: string[];
}

export function parsePackageJson(text: string): NpmManifest | undefined {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!j || typeof j !== 'object') return undefined;
  const o = j as Record<string, unknown>;
  if (typeof o.name !== 'string' || typeof o.version !== 'string' || !o.name || !o.version) return undefined;
  return { name: o.name, version: o.version, licenses: npmLicenses(o) };
}

export interface LockPackage {
  name: string;
  version: string;
  /** Install path relative to the lock's directory ("node_modules/a/node_modules/b"). */
  path: string;
  dev: boolean;
  licenses: string[];
}

/** package-lock.json (lockfileVersion 1, 2 or 3): every locked package with its install path. */
export function parsePackageLock(text: string): LockPackage[] {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return [];
  }
  if (!j || typeof j !== 'object') return [];
  const lock = j as {
    packages?: Record<string, Record<string, unknown>>;
    dependencies?: Record<string, Record<string, unknown>>;
  };
  const out: LockPackage[] = [];
  if (lock.packages && typeof lock.packages === 'object') {
    for (const [p, info] of Object.entries(lock.packages)) {
      if (!p || !info || typeof info !== 'object') continue; // "" is the project itself
      if (info.link === true) continue; // workspace symlink: its target is listed too
      const idx = p.lastIndexOf('node_modules/');
      if (idx < 0) continue;
      const name = typeof info.name === 'string' ? info.name : p.slice(idx + 'node_modules/'.length);
      if (typeof info.version !== 'string') continue;
      out.push({
        name,
        version: info.version,
        path: p,
        dev: info.dev === true || info.devOptional === true,
        licenses: npmLicenses(info),
      });
    }
    return out;
  }
  // lockfileVersion 1: a nested "dependencies" tree.
  const walk = (deps: Record<string, Record<string, unknown>> | undefined, prefix: string) => {
    for (const [name, info] of Object.entries(deps ?? {})) {
      if (!info || typeof info !== 'object' || typeof info.version !== 'string') continue;
      const p = `${prefix}node_modules/${name}`;
      out.push({ name, version: info.version, path: p, dev: info.dev === true, licenses: [] });
      walk(info.dependencies as Record<string, Record<string, unknown>> | undefined, `${p}/`);
    }
  };
  walk(lock.dependencies, '');
  return out;
}

/** /etc/os-release: KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): OsRelease {
  const v = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let val = m[2]!.trim();
    if ((val.startsWith('"') && val.endsWith('"')) || (val.startsWith("'") && val.endsWith("'")))
      val = val.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    v.set(m[1]!, val);
  }
  const out: OsRelease = {};
  if (v.get('ID')) out.id = v.get('ID');
  if (v.get('VERSION_ID')) out.versionId = v.get('VERSION_ID');
  if (v.get('VERSION_CODENAME')) out.versionCodename = v.get('VERSION_CODENAME');
  if (v.get('PRETTY_NAME')) out.prettyName = v.get('PRETTY_NAME');
  return out;
}
