/** What the image-reading commands share: "reading layer i/n" on a terminal, and -o FILE or stdout. */
import { writeFileAtomic } from '../util/index.js';

/** "layer 2/5" on stderr while reading, when stderr is a terminal. */
export function progress(label: string): { onLayer: (i: number, n: number) => void; done: () => void } {
  const tty = process.stderr.isTTY === true && process.env.KILN_NO_PROGRESS !== '1';
  return {
    onLayer: (i, n) => {
      if (tty) process.stderr.write(`\r${label}: reading layer ${i + 1}/${n}…\x1b[K`);
    },
    done: () => {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

/** Write to -o FILE (atomically) or stdout. */
export async function emit(text: string, output: string | undefined): Promise<void> {
  if (output && output !== '-') await writeFileAtomic(output, text);
  else process.stdout.write(text);
}
