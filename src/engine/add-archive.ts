/**
 * `ADD local.tar /dst/`: a tar archive of the context (plain, gzip, bzip2 or xz, by its magic
 * bytes, as docker's ADD) unpacked into a temp directory by kiln's own safe applier (the one layers
 * use): names are cleaned as docker's unpacker cleans them (a leading / dropped, inner `..`
 * resolved); an entry that still leaves the directory (`..` past its top, a hard link out of it, a
 * write through a symlink) is refused with an error naming it; hard links stay hard links; device
 * nodes and fifos are kept; `.wh.` members are plain files (docker's ADD knows no whiteouts).
 *
 * Only a file whose first bytes are no tar header at all (a lone .gz of a text file, say) is
 * copied as it is, as docker does; a tar that fails later fails the build.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { applyLayer, decodeHeader } from '../layer/index.js';
import { BuildContext } from '../context/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';
import type { CopyRequest } from './copy.js';

type Compression = 'gzip' | 'bzip2' | 'xz' | 'none';

function compressionOf(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return 'none';
}

function readHead(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** A tar archive by docker's ADD rule: compressed by a known method, or a ustar header. */
export function isArchive(file: string): boolean {
  const head = readHead(file, 512);
  return (
    compressionOf(head) !== 'none' || (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar')
  );
}

/** The archive's tar stream, decompressed. */
function openArchive(file: string): Readable {
  const kind = compressionOf(readHead(file, 6));
  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  if (kind === 'none') return src;
  if (kind === 'gzip') {
    const g = createGunzip({ chunkSize: 1 << 20 });
    src.on('error', (e) => g.destroy(e));
    return src.pipe(g);
  }
  const tool = kind === 'bzip2' ? 'bzip2' : 'xz';
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const child = spawn(tool, ['-d', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const errs: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => errs.push(b));
  child.on('error', (e) =>
    out.destroy(
      new KilnError(
        'NOT_FOUND',
        `cannot decompress a ${kind} archive: ${e.message}`,
        { path: file },
        { hint: `apt-get install ${kind === 'bzip2' ? 'bzip2' : 'xz-utils'}` },
      ),
    ),
  );
  child.stdin.on('error', () => undefined);
  child.on('close', (code) => {
    if (code !== 0)
      out.destroy(
        new KilnError('INVALID', `corrupt ${kind} archive: ${Buffer.concat(errs).toString().trim()}`, { path: file }),
      );
  });
  src.pipe(child.stdin);
  child.stdout.pipe(out);
  return out;
}

/** Whether the decompressed stream starts with a tar header (or the end-of-archive block). */
async function startsAsTar(file: string): Promise<boolean> {
  const s = openArchive(file);
  let head = Buffer.alloc(0);
  try {
    for await (const c of s) {
      head = Buffer.concat([head, c as Buffer]);
      if (head.length >= 512) break;
    }
  } catch {
    return false; // not even decompressible: copied as it is
  } finally {
    s.destroy();
  }
  if (head.length < 512) return false;
  try {
    decodeHeader(head.subarray(0, 512), new Map());
    return true;
  } catch {
    return false;
  }
}

/**
 * Unpack `file` (named `rel` in the context) into `dir`. 'copy' when it is no tar at all (the
 * caller copies it as it is). A hostile or broken archive: KilnError naming the archive and entry.
 */
export async function unpackArchive(
  file: string,
  rel: string,
  dir: string,
  place: ErrorPlace,
  what = `ADD ${rel}`,
): Promise<'unpacked' | 'copy'> {
  if (!(await startsAsTar(file))) return 'copy';
  try {
    await applyLayer(openArchive(file), dir, { whiteouts: 'none', uncompressed: true, names: 'docker' });
  } catch (e) {
    if (e instanceof KilnError) {
      const msg = e.message.replace(/^refusing layer entry/, 'refusing archive entry');
      throw new KilnError(e.code === 'UNSAFE' ? 'UNSAFE' : 'BUILD', `${what}: ${msg}`, place, {
        hint:
          e.code === 'UNSAFE' ? 'the archive is malformed or hostile; nothing outside the build was written' : e.hint,
      });
    }
    throw e;
  }
  return 'unpacked';
}

/**
 * The sources of `ADD <pattern>` from `ctx` when the pattern selects tar archives: each archive
 * unpacked into a temp directory under `tmpDir` (pushed to `cleanups`) whose members keep their
 * ownership, the other files matched as they are. Undefined when it selects no archive.
 */
export async function archiveSources(
  ctx: BuildContext,
  pattern: string,
  tmpDir: string,
  place: ErrorPlace,
  cleanups: string[],
): Promise<CopyRequest['sources'] | undefined> {
  const archives = ctx.select(pattern, place).filter((e) => e.stat.isFile() && isArchive(e.abs));
  if (!archives.length) return undefined;
  const sources: CopyRequest['sources'] = [];
  for (const a of archives) {
    const dir = path.join(tmpDir, `tmp-${process.pid}-add-${randomBytes(6).toString('hex')}`);
    mkdirSync(dir, { recursive: true });
    cleanups.push(dir);
    // kiln's safe applier, never GNU tar: a hostile entry fails the build, naming it. Not a tar
    // after all (e.g. a lone .gz file): docker copies it as it is.
    if ((await unpackArchive(a.abs, a.rel, dir, place)) === 'copy') sources.push({ ctx, pattern: a.rel });
    else sources.push({ ctx: BuildContext.plain(dir), pattern: '.', keepOwner: true, unpacked: true });
  }
  const rest = ctx.select(pattern, place).filter((e) => !archives.some((a) => a.rel === e.rel));
  for (const e of rest) sources.push({ ctx, pattern: e.rel });
  return sources;
}
