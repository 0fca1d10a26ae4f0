/**
 * An image's final filesystem from a docker-archive tar (`docker save`, `kiln save`): its layers
 * applied in order (whiteouts and opaque directories honoured) into a map path → entry, with a
 * content hash per file. Used to compare kiln's images with BuildKit's, and to look inside layers.
 */
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tarStream = require('tar-stream') as {
  extract(): NodeJS.WritableStream & {
    on(ev: 'entry', fn: (h: TarHeader, stream: Readable, next: (e?: Error) => void) => void): void;
    on(ev: 'finish' | 'error', fn: (e?: Error) => void): void;
  };
};

interface TarHeader {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname?: string | null;
  mtime?: Date;
}

export interface FsEntry {
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  linkname?: string;
  mtime: number;
}

export interface LayerEntry extends FsEntry {
  path: string;
  /** 'link' for a hard link (linkname is its target), the tar type otherwise. */
  tarType: string;
}

export interface SavedImage {
  config: Record<string, unknown> & {
    config?: Record<string, unknown>;
    history?: { created_by?: string; empty_layer?: boolean; comment?: string }[];
  };
  /** Each layer's entries, bottom first. */
  layers: LayerEntry[][];
  /** The filesystem after applying every layer. */
  fs: Map<string, FsEntry>;
}

const clean = (p: string) => path.posix.normalize(`/${p}`).replace(/\/+$/, '') || '/';

/** Read one layer tar (plain, gzip) into its entries (file contents hashed). */
export async function readLayer(file: string): Promise<LayerEntry[]> {
  const head = Buffer.alloc(2);
  const fd = openSync(file, 'r');
  readSync(fd, head, 0, 2, 0);
  closeSync(fd);
  let input: Readable = createReadStream(file);
  if (head[0] === 0x1f && head[1] === 0x8b) input = input.pipe(createGunzip());
  else if (head[0] === 0x28 && head[1] === 0xb5) {
    const r = spawnSync('zstd', ['-dc', file], { maxBuffer: 1 << 30 });
    input = Readable.from([r.stdout]);
  }
  const out: LayerEntry[] = [];
  await new Promise<void>((resolve, reject) => {
    const ex = tarStream.extract();
    ex.on('entry', (h, stream, next) => {
      const hash = createHash('sha256');
      let size = 0;
      stream.on('data', (b: Buffer) => {
        hash.update(b);
        size += b.length;
      });
      stream.on('end', () => {
        const type =
          h.type === 'file' || h.type === 'contiguous-file'
            ? 'file'
            : h.type === 'directory'
              ? 'directory'
              : h.type === 'symlink'
                ? 'symlink'
                : 'other';
        out.push({
          path: clean(h.name),
          tarType: h.type,
          type,
          mode: h.mode & 0o7777,
          uid: h.uid,
          gid: h.gid,
          size: type === 'file' ? size : 0,
          sha256: type === 'file' ? hash.digest('hex') : undefined,
          linkname: h.linkname ? (h.type === 'link' ? clean(h.linkname) : h.linkname) : undefined,
          mtime: h.mtime ? Math.floor(h.mtime.getTime() / 1000) : 0,
        });
        next();
      });
      stream.on('error', reject);
    });
    ex.on('finish', () => resolve());
    ex.on('error', reject);
    input.on('error', reject);
    input.pipe(ex);
  });
  return out;
}

/** Apply layers (bottom first) into one filesystem map, as an unpacker does. */
export function flatten(layers: LayerEntry[][]): Map<string, FsEntry> {
  const fs = new Map<string, FsEntry>();
  const removeTree = (p: string, keepSelf = false) => {
    if (!keepSelf) fs.delete(p);
    const prefix = p === '/' ? '/' : `${p}/`;
    for (const k of [...fs.keys()]) if (k.startsWith(prefix)) fs.delete(k);
  };
  for (const layer of layers) {
    // Whiteouts apply to the layers below: first all of them, then the layer's entries.
    for (const e of layer) {
      const base = path.posix.basename(e.path);
      const dir = path.posix.dirname(e.path);
      if (base === '.wh..wh..opq') removeTree(dir, true);
      else if (base.startsWith('.wh.')) removeTree(path.posix.join(dir, base.slice(4)));
    }
    for (const e of layer) {
      const base = path.posix.basename(e.path);
      if (base.startsWith('.wh.')) continue;
      const prev = fs.get(e.path);
      if (prev && (prev.type !== 'directory' || e.type !== 'directory')) removeTree(e.path);
      const { path: p, tarType, ...rest } = e;
      if (tarType === 'link' && e.linkname) {
        const target = fs.get(e.linkname);
        fs.set(p, { ...rest, ...(target ?? {}), linkname: undefined } as FsEntry);
      } else fs.set(p, rest);
    }
  }
  fs.delete('/');
  return fs;
}

/** Read a docker-archive (`docker save` / `kiln save` output) of one image. */
export async function readSavedImage(archive: string): Promise<SavedImage> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-saved-'));
  try {
    const r = spawnSync('tar', ['-xf', archive, '-C', dir]);
    if (r.status !== 0) throw new Error(`tar -xf ${archive}: ${r.stderr}`);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
      Config: string;
      Layers: string[];
    }[];
    const m = manifest[0]!;
    const config = JSON.parse(readFileSync(path.join(dir, m.Config), 'utf8')) as SavedImage['config'];
    const layers: LayerEntry[][] = [];
    for (const l of m.Layers) layers.push(await readLayer(path.join(dir, l)));
    return { config, layers, fs: flatten(layers) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
