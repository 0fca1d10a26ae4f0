/**
 * A layer blob's diff_id and uncompressed size, read the way an applier would read it: the tar is
 * parsed to its end, so a blob that is not a tar (or is cut short) is refused here, when it comes
 * in, rather than at its first use; so is an entry the safe applier would refuse (an absolute or
 * `..` name, a hard link leaving the root).
 */
import type { Readable } from 'node:stream';
import { HashingStream, type Digest } from '../util/index.js';
import { openLayer } from './decompress.js';
import { readTar } from './tarstream.js';
import { checkHardLinkTarget, cleanEntryName } from './apply.js';

export async function measureLayer(
  blob: Readable,
): Promise<{ diffId: Digest; uncompressedSize: number; entries: number }> {
  const tar = openLayer(blob);
  const hasher = new HashingStream();
  tar.on('error', (e) => hasher.destroy(e));
  tar.pipe(hasher);
  let entries = 0;
  for await (const { header, body } of readTar(hasher)) {
    entries++;
    // What no applier would unpack is refused at the door, naming the entry.
    cleanEntryName(header.name);
    if (header.type === 'hardlink') checkHardLinkTarget(header.name, header.linkname);
    for await (const _ of body) void _;
  }
  // readTar stops at the end-of-archive blocks but drains the rest: every byte was hashed.
  return { diffId: hasher.digest(), uncompressedSize: hasher.bytes, entries };
}
