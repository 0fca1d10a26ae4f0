/**
 * A way back for a tar writer's output chunks (write.ts): the gzip encoder (compress.ts) copies
 * every chunk into its blocks and then has no use for it. Handed back, the writer fills its next
 * chunk in the same memory, zeroed again where it was written, instead of a fresh 1 MiB: fresh
 * pages cost the kernel a fault and a clear each (~5 % of the main thread's CPU on 30,000 small
 * files), and the old chunk a GC finalizer and an munmap.
 */
const returns = new WeakMap<object, (chunk: Buffer) => void>();

/** Mark `stream` as one whose chunks may be handed to `giveBack` once their reader is done with every byte of them. */
export function offerChunkReturn<T extends object>(stream: T, giveBack: (chunk: Buffer) => void): T {
  returns.set(stream, giveBack);
  return stream;
}

/**
 * Where `stream`'s reader hands a chunk back once it holds no reference into it (no subarray, no
 * pending write): undefined when the stream takes none back. A chunk it did not make is ignored.
 */
export function chunkReturn(stream: object): ((chunk: Buffer) => void) | undefined {
  return returns.get(stream);
}
