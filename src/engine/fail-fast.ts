/**
 * Fail fast across parallel parts of one build (its stages; a multi-platform build's platforms):
 * the first part to fail stops the others, as BuildKit cancels the whole solve, so a failed build
 * does not wait for a sibling's long RUN to end.
 */

/** A signal aborted by `signal` (if any) or by `stop`. */
export function withStop(signal: AbortSignal | undefined, stop: AbortController): AbortSignal {
  return signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
}

/**
 * Every part's result. At the first failure `stop` is aborted; once all parts have settled (their
 * processes gone, their run dirs handed to cleanup) that first failure is thrown, not the
 * "interrupted" of a part it stopped.
 */
export async function settleAll<T>(parts: Promise<T>[], stop: AbortController): Promise<T[]> {
  let first: { error: unknown } | undefined;
  const results = await Promise.all(
    parts.map((p) =>
      p.catch((error: unknown) => {
        if (!first) {
          first = { error };
          stop.abort();
        }
        return undefined;
      }),
    ),
  );
  if (first) throw first.error;
  return results as T[];
}
