/**
 * Pull/push progress: on a terminal one live line per blob (docker's look: `abc123def456:
 * Downloading  12.3MB/45.6MB`), redrawn at most 10 times a second; otherwise plain lines when a
 * blob starts, is skipped and is done.
 */
import { type TransferEvent } from '../image/index.js';
import { formatSize } from './text.js';

const WORDS: Record<string, { pull: string; push: string }> = {
  present: { pull: 'Already exists', push: 'Already exists' },
  exists: { pull: 'Already exists', push: 'Layer already exists' },
  mounted: { pull: 'Mounted', push: 'Mounted from another repository' },
  downloading: { pull: 'Downloading', push: 'Pushing' },
  uploading: { pull: 'Downloading', push: 'Pushing' },
  done: { pull: 'Pull complete', push: 'Pushed' },
  compressing: { pull: 'Compressing', push: 'Compressing' },
};

export interface TransferView {
  onEvent(e: TransferEvent): void;
  finish(): void;
}

export function transferView(
  kind: 'pull' | 'push',
  out: NodeJS.WriteStream,
  opts: { tty?: boolean; quiet?: boolean } = {},
): TransferView {
  const tty = opts.tty ?? out.isTTY === true;
  const lines = new Map<string, string>();
  const order: string[] = [];
  let drawn = 0;
  let last = 0;
  let pending = false;
  const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - last < 100) {
      pending = true;
      return;
    }
    last = now;
    pending = false;
    const width = out.columns || 100;
    let s = drawn ? `\x1b[${drawn}F` : '';
    for (const d of order) s += `\x1b[2K${(lines.get(d) ?? '').slice(0, width - 1)}\n`;
    drawn = order.length;
    out.write(s);
  };
  return {
    onEvent(e) {
      if (opts.quiet) return;
      if (e.type === 'resolved') {
        if (!tty) out.write(`${kind === 'pull' ? 'Pulling' : 'Pushing'} ${e.ref}${e.digest ? ` (${e.digest})` : ''}\n`);
        return;
      }
      if (e.type === 'retry') {
        if (!tty) out.write(`retrying ${e.what} (attempt ${e.attempt}): ${e.reason}\n`);
        return;
      }
      const word = WORDS[e.state]![kind];
      const text =
        e.state === 'downloading' || e.state === 'uploading'
          ? `${short(e.digest)}: ${word} ${formatSize(e.current).padStart(8)}/${formatSize(e.total)}`
          : `${short(e.digest)}: ${word}`;
      if (!tty) {
        if (e.state !== 'downloading' && e.state !== 'uploading') out.write(`${text}\n`);
        return;
      }
      if (!lines.has(e.digest)) order.push(e.digest);
      lines.set(e.digest, text);
      draw(e.state !== 'downloading' && e.state !== 'uploading');
    },
    finish() {
      if (tty && (pending || order.length)) draw(true);
    },
  };
}
