/**
 * Provenance of a COPY/ADD layer, recorded when the layer is written (copy-step.ts): for each file
 * the layer holds, where it came from (the context, a stage or an image, and its path there), the
 * package that owned it there, and for a stage whose file was itself copied in from another stage,
 * that chain. The owner is looked up now, in the source's file system (the builder view), because
 * a builder stage's layers may be gone when `kiln trace` or `kiln sbom` asks:
 *   Debian  var/lib/dpkg/info/*.list (with /usr-merged aliases) and var/lib/dpkg/status versions
 *   Python  *.dist-info/RECORD of the site-packages / dist-packages the copy touches (and the
 *           usual system ones), name and version from METADATA
 *   Node    the nearest node_modules/<name>/package.json; "dev" from the project's lockfile
 *           (node_modules/.package-lock.json, else package-lock.json)
 * The record goes to the store by the layer's diff_id (store/provenance.ts).
 */
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { type EntrySpec } from '../layer/index.js';
import {
  PROVENANCE_VERSION,
  type CopyProvenance,
  type ProvenanceFile,
  type ProvenanceFrom,
  type ProvenancePackage,
  type ProvenanceStep,
  type Store,
} from '../store/index.js';
import { canonicalJSON } from '../image/index.js';
import { chainId, type Digest, joinPath, normalizePath } from '../util/index.js';
import { copiedFiles, type CopiedFile } from './copy.js';
import { LineSpill } from './spill.js';

/** dpkg owner lookups searched in the lists' text before the whole map is made. */
const DPKG_SEARCHES = 32;

/** The files a package owns in a source file system, looked up lazily and cached per kind. */
export class SourceOwners {
  private dpkg: Map<string, ProvenancePackage> | undefined;
  private dpkgPkgs: Map<string, ProvenancePackage> | undefined;
  private lists: { key: string; text: string }[] | undefined;
  private dpkgLookups = 0;
  private readonly dirsNamed = new Map<string, boolean>();
  private readonly python = new Map<string, ProvenancePackage>();
  private readonly sitesRead = new Set<string>();
  private readonly npmDirs = new Map<string, ProvenancePackage | undefined>();
  private readonly npmLocks = new Map<string, Record<string, { dev?: boolean }> | undefined>();

  private readonly fs: { readFile(rel: string): string | undefined; readdir(rel: string): string[] };

  /**
   * `source`: the source's root directory (a view), or a reader of its layers (sandbox's layeredTree).
   * `undpkged`: directories (relative) whose files no dpkg list names: directories only the source's
   * top layer holds, made by a step that left dpkg's database alone (no var/lib/dpkg in that layer).
   * dpkg lists the files it unpacks, so a file there was unpacked by no package: its lists (several
   * MB of text in a full Debian image, ~15-20 ms a COPY --from) are not searched for it.
   */
  constructor(
    source: string | { readFile(rel: string): string | undefined; readdir(rel: string): string[] },
    private readonly undpkged: string[] = [],
  ) {
    this.fs =
      typeof source === 'string'
        ? {
            readFile: (rel) => {
              try {
                return readFileSync(joinPath(source, rel), 'utf8');
              } catch {
                return undefined;
              }
            },
            readdir: (rel) => readdirSync(joinPath(source, rel)),
          }
        : source;
  }

  /** The package that owns `rel` (no leading '/') in the source, if any says so. */
  owner(rel: string): ProvenancePackage | undefined {
    return this.npmOwner(rel) ?? this.pythonOwner(rel) ?? this.dpkgOwner(rel);
  }

  private read(rel: string): string | undefined {
    return this.fs.readFile(rel);
  }

  private dpkgOwner(rel: string): ProvenancePackage | undefined {
    if (this.dpkg) return this.dpkg.get(rel);
    if (this.undpkged.some((d) => rel.startsWith(`${d}/`))) return undefined;
    // A directory no list names a path in (an application's, e.g. /usr/src/app): none of its files
    // is owned, told by one search of the lists per directory, and not counted as a lookup.
    const alias = rel === '.' ? undefined : usrMergedAlias(rel);
    if (!this.listsNameIn(rel) && !(alias && this.listsNameIn(alias))) return undefined;
    // A few lookups (a COPY of an application's files, which no package owns): each is searched for
    // in the lists' text, not the ~60,000-line map of a full Debian image made (~70 ms, most of a
    // small COPY --from). Many: the map, once.
    if (++this.dpkgLookups > DPKG_SEARCHES) {
      this.dpkg = this.loadDpkg();
      return this.dpkg.get(rel);
    }
    return this.searchDpkg(rel);
  }

  /**
   * Whether some list has a line in the directory of `rel` (a list naming /D/F has "/D/" in its
   * text: without it, no list names any file of D). Searched once per directory.
   */
  private listsNameIn(rel: string): boolean {
    const at = rel.lastIndexOf('/');
    if (at <= 0) return true; // at the root: the lists are searched as before
    const dir = `/${rel.slice(0, at)}/`;
    let named = this.dirsNamed.get(dir);
    if (named === undefined) {
      named = this.dpkgLists().some((l) => l.text.includes(dir));
      this.dirsNamed.set(dir, named);
    }
    return named;
  }

  /** The dpkg status's installed packages, by name and name:arch. */
  private dpkgPackages(): Map<string, ProvenancePackage> {
    if (this.dpkgPkgs) return this.dpkgPkgs;
    const pkgs = new Map<string, ProvenancePackage>();
    this.dpkgPkgs = pkgs;
    const status = this.read('var/lib/dpkg/status');
    if (status === undefined) return pkgs;
    for (const para of status.split(/\n\s*\n/)) {
      const f = new Map<string, string>();
      for (const line of para.split('\n')) {
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (m) f.set(m[1]!.toLowerCase(), m[2]!.trim());
      }
      const name = f.get('package');
      const version = f.get('version');
      if (!name || !version || !/\binstalled$/.test(f.get('status') ?? 'installed')) continue;
      const arch = f.get('architecture');
      const p: ProvenancePackage = { type: 'deb', name, version, ...(arch ? { arch } : {}) };
      pkgs.set(name, p);
      if (arch) pkgs.set(`${name}:${arch}`, p);
    }
    return pkgs;
  }

  /** The .list files (sorted: a later list's claim on a path wins), read once; their package is looked up when needed. */
  private dpkgLists(): { key: string; text: string }[] {
    if (this.lists) return this.lists;
    this.lists = [];
    if (this.read('var/lib/dpkg/status') === undefined) return this.lists;
    let names: string[];
    try {
      names = this.fs.readdir('var/lib/dpkg/info').filter((n) => n.endsWith('.list'));
    } catch {
      return this.lists;
    }
    for (const l of names.sort())
      this.lists.push({ key: l.slice(0, -'.list'.length), text: this.read(`var/lib/dpkg/info/${l}`) ?? '' });
    return this.lists;
  }

  /** A list's installed package (none: the list is not an owner). */
  private listPackage(key: string): ProvenancePackage | undefined {
    const pkgs = this.dpkgPackages();
    return pkgs.get(key) ?? pkgs.get(key.split(':')[0]!);
  }

  /**
   * loadDpkg's answer for one path without its map: the last list naming the path itself, else the
   * first naming its merged-/usr alias (the map sets a path over anything, an alias only where
   * nothing is yet). The status is read only when some list names the path.
   */
  private searchDpkg(rel: string): ProvenancePackage | undefined {
    if (rel === '.') return undefined; // the map skips "/."
    const alias = usrMergedAlias(rel);
    const names = (text: string, want: string) =>
      text.includes(`/${want}`) && text.split('\n').some((line) => line.trim() === `/${want}`);
    let direct: ProvenancePackage | undefined;
    let aliased: ProvenancePackage | undefined;
    for (const { key, text } of this.dpkgLists()) {
      if (names(text, rel)) direct = this.listPackage(key) ?? direct;
      else if (alias && !aliased && names(text, alias)) aliased = this.listPackage(key);
    }
    return direct ?? aliased;
  }

  private loadDpkg(): Map<string, ProvenancePackage> {
    const out = new Map<string, ProvenancePackage>();
    for (const { key, text } of this.dpkgLists()) {
      const p = this.listPackage(key);
      if (!p) continue;
      for (const line of text.split('\n')) {
        const abs = line.trim();
        if (!abs.startsWith('/') || abs === '/.') continue;
        const rel = abs.slice(1);
        out.set(rel, p);
        // Debian's merged /usr: /lib/x is /usr/lib/x; a list may name either.
        const alias = usrMergedAlias(rel);
        if (alias && !out.has(alias)) out.set(alias, p);
      }
    }
    return out;
  }

  private pythonOwner(rel: string): ProvenancePackage | undefined {
    const m = /^(.*?(?:site|dist)-packages)\//.exec(rel);
    if (m) this.loadSite(m[1]!);
    else this.loadStandardSites();
    return this.python.get(rel);
  }

  private loadStandardSites(): void {
    if (this.sitesRead.has('*')) return;
    this.sitesRead.add('*');
    for (const lib of ['usr/local/lib', 'usr/lib']) {
      let names: string[];
      try {
        names = this.fs.readdir(lib).filter((n) => /^python3(\.\d+)?$/.test(n));
      } catch {
        continue;
      }
      for (const n of names) for (const s of ['site-packages', 'dist-packages']) this.loadSite(`${lib}/${n}/${s}`);
    }
  }

  private loadSite(site: string): void {
    if (this.sitesRead.has(site)) return;
    this.sitesRead.add(site);
    let names: string[];
    try {
      names = this.fs.readdir(site).filter((n) => n.endsWith('.dist-info'));
    } catch {
      return;
    }
    for (const d of names) {
      const meta = this.read(`${site}/${d}/METADATA`) ?? '';
      const name = /^Name:\s*(.+)$/m.exec(meta)?.[1]?.trim();
      const version = /^Version:\s*(.+)$/m.exec(meta)?.[1]?.trim();
      if (!name || !version) continue;
      const p: ProvenancePackage = { type: 'python', name, version };
      for (const line of (this.read(`${site}/${d}/RECORD`) ?? '').split('\n')) {
        const file = recordPath(line);
        if (!file) continue;
        const rel = normalizePath(`${site}/${file}`);
        if (!rel.startsWith('..')) this.python.set(rel, p);
      }
    }
  }

  private npmOwner(rel: string): ProvenancePackage | undefined {
    const m = /^(.*?)node_modules\/(.*)$/.exec(rel);
    if (!m) return undefined;
    // The innermost package directory: …/node_modules/(@scope/)name
    const parts = rel.split('/');
    let dir: string | undefined;
    for (let i = parts.length - 2; i >= 0; i--) {
      if (parts[i] !== 'node_modules') continue;
      const name = parts[i + 1]!.startsWith('@') ? parts.slice(i + 1, i + 3) : parts.slice(i + 1, i + 2);
      if (name.length === (parts[i + 1]!.startsWith('@') ? 2 : 1) && i + name.length < parts.length - 1) {
        dir = [...parts.slice(0, i + 1), ...name].join('/');
        break;
      }
    }
    if (dir === undefined) return undefined;
    if (!this.npmDirs.has(dir)) this.npmDirs.set(dir, this.npmPackage(dir, m[1]!));
    return this.npmDirs.get(dir);
  }

  private npmPackage(dir: string, project: string): ProvenancePackage | undefined {
    let j: { name?: unknown; version?: unknown };
    try {
      j = JSON.parse(this.read(`${dir}/package.json`) ?? '') as typeof j;
    } catch {
      return undefined;
    }
    if (typeof j.name !== 'string' || typeof j.version !== 'string') return undefined;
    if (!this.npmLocks.has(project)) this.npmLocks.set(project, this.npmLock(project));
    const dev = this.npmLocks.get(project)?.[dir.slice(project.length)]?.dev === true;
    return { type: 'npm', name: j.name, version: j.version, ...(dev ? { dev } : {}) };
  }

  private npmLock(project: string): Record<string, { dev?: boolean }> | undefined {
    for (const f of [`${project}node_modules/.package-lock.json`, `${project}package-lock.json`]) {
      try {
        const j = JSON.parse(this.read(f) ?? '') as { packages?: Record<string, { dev?: boolean }> };
        if (j.packages) return j.packages;
      } catch {
        /* next */
      }
    }
    return undefined;
  }
}

/** /lib/x ↔ /usr/lib/x (bin, sbin, lib*): the other name of a path on a /usr-merged system. */
export function usrMergedAlias(rel: string): string | undefined {
  if (/^(bin|sbin|lib|lib32|lib64|libx32)\//.test(rel)) return `usr/${rel}`;
  if (/^usr\/(bin|sbin|lib|lib32|lib64|libx32)\//.test(rel)) return rel.slice(4);
  return undefined;
}

/** The path of a RECORD line (CSV: path,hash,size; the path may be quoted). */
function recordPath(line: string): string | undefined {
  const l = line.trim();
  if (!l) return undefined;
  if (l.startsWith('"')) {
    const end = l.indexOf('",');
    return end > 0 ? l.slice(1, end).replace(/""/g, '"') : undefined;
  }
  const i = l.indexOf(',');
  return i > 0 ? l.slice(0, i) : l;
}

export interface CopyRecordInput {
  store: Store;
  diffId: Digest;
  kind: 'COPY' | 'ADD';
  step: ProvenanceStep;
  from: ProvenanceFrom;
  exclude?: string[];
  /** The layer's entries (planCopy's, with sizes). */
  entries: EntrySpec[];
  /** Each target's source file, absolute (planCopy's `provenance` map). */
  sources: Map<string, string>;
  /** The root the sources are relative to (the context, or the stage's / image's view). */
  sourceRoot: string;
  /** A stage's or image's view: look owners up there. */
  owners?: SourceOwners;
  /** The source stage's or image's layers (diff_ids, bottom first): their records give chains. */
  sourceDiffIds?: Digest[];
}

/** recordCopy of a list of entries and their sources; the record as stored. */
export async function recordCopy(i: CopyRecordInput): Promise<CopyProvenance> {
  const { entries, sources, ...rest } = i;
  await recordCopied({ ...rest, copied: copiedFiles(entries, sources), tmpDir: i.store.tmpDir });
  const rec = await i.store.provenance(i.diffId);
  if (!rec) throw new Error(`the provenance record of ${i.diffId} was not stored`);
  return rec;
}

export interface CopiedRecordInput extends Omit<CopyRecordInput, 'entries' | 'sources'> {
  /** The layer's files and links with their sources, in the layer's order (copy.ts CopyPlan.copied). */
  copied: AsyncIterable<CopiedFile>;
  /** Where the record's file list is spilled while its packages are found. */
  tmpDir: string;
}

/**
 * Writes the layer's provenance record to the store, unless the store has it already: the same
 * layer (diff_id: the same files), written by the same step from the same source (the context, or
 * a stage or image of the same chain id) has the same record. That is a rebuild whose COPY --from
 * reruns only because a layer below it changed (`COPY app.js` then `COPY --from=build
 * node_modules`): the owners' lookup in the source (its dpkg lists, ~50 ms) is not done again.
 * Nothing is held per file: the files are read as they come, their JSON spilled (spill.ts) until
 * the packages, written before them, are known.
 */
export async function recordCopied(i: CopiedRecordInput): Promise<void> {
  const sourceChain = i.sourceDiffIds?.length ? chainId(i.sourceDiffIds) : undefined;
  // The head first (a few synchronous reads): a rebuild making the same layer from the same source
  // finds its record and reads none of the source layers' (a RUN layer's can be megabytes of JSON,
  // parsed for nothing, at a one-file rebuild's end).
  const known = await i.store.provenanceHead(i.diffId);
  if (
    known &&
    known.kind === i.kind &&
    known.sourceChain === sourceChain &&
    canonicalJSON(known.step) === canonicalJSON(i.step) &&
    canonicalJSON(known.from) === canonicalJSON(i.from) &&
    canonicalJSON(known.exclude ?? []) === canonicalJSON(i.exclude ?? [])
  )
    return;
  // Files that reached the source through a copy there: that copy's record (the top one wins).
  // All read at once: one file open each (most are absent, a base image's layers), in turn ~1 ms
  // apiece through a busy thread pool.
  const sourceRecords = await Promise.all([...(i.sourceDiffIds ?? [])].reverse().map((d) => i.store.provenance(d)));
  const upstream = new Map<string, { rec: CopyProvenance; file: ProvenanceFile }>();
  for (const rec of sourceRecords) {
    if (!rec) continue;
    for (const f of rec.files) if (!upstream.has(f.path)) upstream.set(f.path, { rec, file: f });
  }
  const packages: ProvenancePackage[] = [];
  const pkgIndex = new Map<string, number>();
  const indexOf = (p: ProvenancePackage): number => {
    const key = `${p.type}:${p.name}@${p.version}:${p.arch ?? ''}`;
    let n = pkgIndex.get(key);
    if (n === undefined) {
      n = packages.push(p) - 1;
      pkgIndex.set(key, n);
    }
    return n;
  };
  const rootPrefix = i.sourceRoot.endsWith('/') ? i.sourceRoot : `${i.sourceRoot}/`;
  const files = new LineSpill(i.tmpDir);
  try {
    for await (const c of i.copied) {
      const source = c.abs.startsWith(rootPrefix) ? c.abs.slice(rootPrefix.length) : path.basename(c.abs);
      const f: ProvenanceFile = { path: c.path, source, size: c.size };
      if (c.link) f.link = true;
      const up = upstream.get(source);
      if (up) {
        f.via = [{ ...up.rec.step, from: up.rec.from, source: up.file.source }, ...(up.file.via ?? [])];
        const p = up.file.pkg !== undefined ? up.rec.packages[up.file.pkg] : undefined;
        if (p) f.pkg = indexOf(p);
      }
      if (f.pkg === undefined && i.owners) {
        const p = i.owners.owner(source);
        if (p) f.pkg = indexOf(p);
      }
      files.push(JSON.stringify(f));
    }
    const head: Omit<CopyProvenance, 'files'> = {
      version: PROVENANCE_VERSION,
      diffId: i.diffId,
      kind: i.kind,
      step: i.step,
      from: i.from,
      ...(i.exclude?.length ? { exclude: i.exclude } : {}),
      ...(sourceChain !== undefined ? { sourceChain } : {}),
      packages,
    };
    await i.store.putProvenanceParts(head, files.lines());
  } finally {
    files.dispose();
  }
}
