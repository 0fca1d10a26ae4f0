/**
 * An offline OSV database: a directory the user supplies, holding OSV records as JSON files (one
 * record each, or a JSON array of records) and/or osv.dev's per-ecosystem all.zip exports, in any
 * sub-directory. Records are indexed by ecosystem and package name; with a `want` filter only the
 * records about packages that matter are kept in memory.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from '../../util/index.js';
import { ecosystemBase, normalizePackageName } from './match.js';
import { parseOsvRecord, type OsvRecord } from './schema.js';
import { ZipReader } from './zip.js';

export interface LoadOptions {
  /** Keep a record only when this says one of its (ecosystem base, normalised name) pairs matters. */
  want?: (ecosystemBase: string, name: string) => boolean;
}

export interface DbProblem {
  where: string;
  message: string;
}

function key(ecoBase: string, name: string): string {
  return `${ecoBase.toLowerCase()}\0${name}`;
}

export class OsvDatabase {
  private readonly byPackage = new Map<string, OsvRecord[]>();
  /** Records read (all), kept (matching `want`), and files read. */
  readonly stats = { records: 0, kept: 0, files: 0 };
  /** Records that failed validation (skipped), with where and why. */
  readonly problems: DbProblem[] = [];

  static async load(dir: string, opts: LoadOptions = {}): Promise<OsvDatabase> {
    const st = await fsp.stat(dir).catch(() => undefined);
    if (!st)
      throw new KilnError(
        'NOT_FOUND',
        'vulnerability database directory does not exist',
        { path: dir },
        { hint: 'give --db a directory of OSV JSON records or osv.dev all.zip exports' },
      );
    const db = new OsvDatabase();
    const files = st.isDirectory() ? await listFiles(dir) : [dir];
    for (const f of files) {
      if (f.endsWith('.json')) {
        db.stats.files++;
        db.addText(await fsp.readFile(f, 'utf8'), f, opts);
      } else if (f.endsWith('.zip')) {
        db.stats.files++;
        const zip = await ZipReader.open(f);
        try {
          for (const m of zip.members) {
            if (!m.name.endsWith('.json')) continue;
            db.addText((await zip.read(m)).toString('utf8'), `${f}:${m.name}`, opts);
          }
        } finally {
          await zip.close();
        }
      }
    }
    return db;
  }

  /** Add records from JSON text (a record or an array of records). */
  addText(text: string, where: string, opts: LoadOptions = {}): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      this.problems.push({ where, message: `not JSON: ${(e as Error).message}` });
      return;
    }
    for (const [i, item] of (Array.isArray(json) ? json : [json]).entries()) {
      this.stats.records++;
      let rec: OsvRecord;
      try {
        rec = parseOsvRecord(item, Array.isArray(json) ? `${where}[${i}]` : where);
      } catch (e) {
        this.problems.push({ where, message: (e as Error).message });
        continue;
      }
      this.add(rec, opts);
    }
  }

  add(rec: OsvRecord, opts: LoadOptions = {}): void {
    const keys = new Set<string>();
    for (const a of rec.affected ?? []) {
      if (!a.package) continue;
      const base = ecosystemBase(a.package.ecosystem);
      const name = normalizePackageName(a.package.ecosystem, a.package.name);
      if (opts.want && !opts.want(base.toLowerCase(), name)) continue;
      keys.add(key(base, name));
    }
    if (keys.size === 0) return;
    this.stats.kept++;
    for (const k of keys) {
      const list = this.byPackage.get(k);
      if (list) list.push(rec);
      else this.byPackage.set(k, [rec]);
    }
  }

  /** Records naming this package (any release of the ecosystem). */
  lookup(ecosystem: string, name: string): OsvRecord[] {
    return this.byPackage.get(key(ecosystemBase(ecosystem), normalizePackageName(ecosystem, name))) ?? [];
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    const entries = await fsp.readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  await walk(dir);
  return out;
}
