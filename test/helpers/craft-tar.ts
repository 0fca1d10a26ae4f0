/**
 * Hand-made tars, byte by byte, for hostile-input tests: any name (`..`, absolute, long), any type
 * (hard links, devices, fifos), entries in any order. No library in between that would refuse or
 * fix what the test means to send.
 */
export interface CraftEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** PAX records for this entry (e.g. a long path). */
  pax?: Record<string, string>;
}

const TYPEFLAG = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, typeflag: string, size: number, e: CraftEntry): Buffer {
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, s: string) => {
    const b = Buffer.from(s, 'utf8');
    b.copy(h, off, 0, Math.min(len, b.length));
  };
  put(0, 100, name);
  put(100, 8, octal(e.mode ?? (typeflag === '5' ? 0o755 : 0o644), 8));
  put(108, 8, octal(e.uid ?? 0, 8));
  put(116, 8, octal(e.gid ?? 0, 8));
  put(124, 12, octal(size, 12));
  put(136, 12, octal(1700000000, 12));
  h.fill(' ', 148, 156);
  put(156, 1, typeflag);
  put(157, 100, e.linkname ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(329, 8, octal(e.devmajor ?? 0, 8));
  put(337, 8, octal(e.devminor ?? 0, 8));
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

function pad(b: Buffer): Buffer {
  const rest = (512 - (b.length % 512)) % 512;
  return rest ? Buffer.concat([b, Buffer.alloc(rest)]) : b;
}

function paxBody(records: Record<string, string>): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out += `${len}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

/** A tar of these entries, in this order, with the two zero blocks at the end. */
export function craftTar(entries: CraftEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.name.endsWith('/') ? 'dir' : 'file');
    const data = type === 'file' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
    if (e.pax) {
      const body = paxBody(e.pax);
      parts.push(header('PaxHeader', 'x', body.length, { name: 'PaxHeader' }), pad(body));
    }
    parts.push(header(e.name, TYPEFLAG[type], data.length, e), pad(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
