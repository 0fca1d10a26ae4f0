/** A layer blob (gzip, zstd or plain tar, detected by its magic bytes) → the tar stream. */
import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { createGunzip } from 'node:zlib';
import { KilnError } from '../util/index.js';

/** node:zlib's zstd (Node 22.15+, 23.8+); undefined on older lines, where the zstd program does it. */
export const nodeZstd = zlib as unknown as {
  createZstdDecompress?: (o?: { chunkSize?: number }) => import('node:stream').Transform;
  createZstdCompress?: (o?: { chunkSize?: number; params?: Record<number, number> }) => import('node:stream').Transform;
  constants: Record<string, number>;
};

export function openLayer(blob: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let decided = false;
  let head = Buffer.alloc(0);
  const decide = (first: Buffer, rest: Readable) => {
    decided = true;
    let dec: Readable;
    if (first[0] === 0x1f && first[1] === 0x8b) {
      const g = createGunzip({ chunkSize: 1 << 20 });
      rest.pipe(g);
      dec = g;
      rest.on('error', (e) => g.destroy(e));
    } else if (
      first[0] === 0x28 &&
      first[1] === 0xb5 &&
      first[2] === 0x2f &&
      first[3] === 0xfd &&
      nodeZstd.createZstdDecompress
    ) {
      // In process where node has zstd: no child process per layer, no need of the zstd program.
      const z = nodeZstd.createZstdDecompress({ chunkSize: 1 << 20 });
      rest.pipe(z);
      rest.on('error', (e) => z.destroy(e));
      z.on('error', (e) => out.destroy(new KilnError('INVALID', `corrupt zstd layer: ${e.message}`)));
      dec = z;
    } else if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) {
      const z = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
      z.on('error', (e) =>
        out.destroy(new KilnError('NOT_FOUND', `cannot decompress a zstd layer: ${e.message} (apt-get install zstd)`)),
      );
      rest.pipe(z.stdin);
      rest.on('error', (e) => z.stdout.destroy(e));
      z.stdin.on('error', () => undefined);
      const errs: Buffer[] = [];
      z.stderr.on('data', (b: Buffer) => errs.push(b));
      z.on('close', (code) => {
        if (code !== 0)
          out.destroy(new KilnError('INVALID', `corrupt zstd layer: ${Buffer.concat(errs).toString().trim()}`));
      });
      dec = z.stdout;
    } else {
      dec = rest;
    }
    dec.on('error', (e) =>
      out.destroy(
        e.message.includes('incorrect header') || (e as NodeJS.ErrnoException).code?.startsWith('Z_')
          ? new KilnError('INVALID', `corrupt gzip layer: ${e.message}`)
          : e,
      ),
    );
    dec.pipe(out);
  };
  // Peek the first bytes, then replay them in front of the rest.
  const src = new PassThrough({ highWaterMark: 1 << 20 });
  blob.on('data', (b: Buffer) => {
    if (decided) {
      if (!src.write(b)) blob.pause();
      return;
    }
    head = Buffer.concat([head, b]);
    if (head.length >= 4) {
      decide(head, src);
      src.write(head);
    }
  });
  src.on('drain', () => blob.resume());
  blob.on('end', () => {
    if (!decided) {
      decide(head, src);
      src.write(head);
    }
    src.end();
  });
  blob.on('error', (e) => out.destroy(e));
  return out;
}
