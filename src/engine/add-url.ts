/**
 * ADD of an http(s) URL, as BuildKit does it: the body streamed to a temporary file (never held in
 * memory) named after the last segment of the URL's path ("__unnamed__" when there is none), mode
 * 0600, mtime from the Last-Modified header (the Unix epoch without one), `--checksum` verified.
 * The file then goes through COPY's destination rules like any source; a remote archive is not
 * unpacked (docker's rule).
 */
import { createHash } from 'node:crypto';
import { chmodSync, createWriteStream, mkdirSync, utimesSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { httpRequest, drain } from '../registry/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';

export function isHttpUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/** The file name BuildKit gives a download: the base of the URL's (decoded) path. */
export function urlFileName(url: URL): string {
  let p = url.pathname;
  try {
    p = decodeURIComponent(p);
  } catch {
    // keep it encoded
  }
  const base = path.posix.basename(p);
  return base === '' || base === '.' || base === '..' || base === '/' ? '__unnamed__' : base;
}

const ALGOS: Record<string, { hex: number; node: string }> = {
  sha256: { hex: 64, node: 'sha256' },
  sha384: { hex: 96, node: 'sha384' },
  sha512: { hex: 128, node: 'sha512' },
};

export interface Download {
  /** A directory holding only the file (remove it when done). */
  dir: string;
  name: string;
}

/** Without credentials, for messages. */
function shown(u: URL): string {
  if (!u.username && !u.password) return u.href;
  const c = new URL(u.href);
  c.username = '';
  c.password = '';
  return c.href;
}

export async function downloadUrl(o: {
  url: string;
  tmpDir: string;
  checksum?: string;
  place: ErrorPlace;
  signal?: AbortSignal;
}): Promise<Download> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new KilnError('BUILD', `ADD: invalid URL "${o.url}"`, o.place);
  }
  const what = shown(url);
  let algo: { hex: number; node: string } | undefined;
  let want: string | undefined;
  if (o.checksum !== undefined) {
    const m = /^([a-z0-9]+):([0-9a-f]+)$/.exec(o.checksum);
    algo = m ? ALGOS[m[1]!] : undefined;
    if (!m || !algo || m[2]!.length !== algo.hex)
      throw new KilnError('BUILD', `ADD ${what}: invalid --checksum "${o.checksum}"`, o.place, {
        hint: 'expected sha256:<64 hex digits> (or sha384:, sha512:)',
      });
    want = o.checksum;
  }
  const name = urlFileName(url);
  const dir = path.join(o.tmpDir, `tmp-${process.pid}-addurl-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  try {
    let res;
    try {
      res = await httpRequest({
        method: 'GET',
        url,
        followRedirects: true,
        signal: o.signal,
        headers: { accept: '*/*' },
      });
    } catch (e) {
      throw new KilnError('BUILD', `ADD ${what}: ${(e as Error).message}`, o.place, { cause: e });
    }
    if (res.status < 200 || res.status >= 300) {
      drain(res);
      throw new KilnError('BUILD', `ADD ${what}: the server answered HTTP ${res.status}`, o.place);
    }
    const hash = createHash(algo?.node ?? 'sha256');
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(res.body, tap, createWriteStream(file, { mode: 0o600 }), { signal: o.signal });
    } catch (e) {
      throw new KilnError('BUILD', `ADD ${what}: download failed: ${(e as Error).message}`, o.place, { cause: e });
    }
    const got = `${algo ? o.checksum!.slice(0, o.checksum!.indexOf(':')) : 'sha256'}:${hash.digest('hex')}`;
    if (want !== undefined && got !== want)
      throw new KilnError('DIGEST', `ADD ${what}: checksum mismatch: got ${got}, expected ${want}`, o.place, {
        hint: 'the file at the URL changed, or --checksum is wrong',
      });
    chmodSync(file, 0o600);
    const lm = res.headers['last-modified'];
    const t = lm ? Date.parse(lm) : NaN;
    const mtime = Number.isFinite(t) ? t / 1000 : 0;
    utimesSync(file, mtime, mtime);
    return { dir, name };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
