/** A sandboxed process's end, as a shell reports it: shared by the runtime backends and the bare one. */
import { constants as osConstants } from 'node:os';
import type { ChildProcess } from 'node:child_process';

/**
 * Wait for the wrapper to end: its exit code as a shell reports it (128+N for signal N). Normally
 * after its output pipes closed too (all output delivered); on abort the wrapper is SIGKILLed (its
 * PID namespace, and every process in it, goes with it) and only its exit is waited for.
 */
export function waitExit(child: ChildProcess, signal?: AbortSignal): Promise<number> {
  const status = (code: number | null, sig: NodeJS.Signals | null) =>
    code ?? 128 + (sig ? (osConstants.signals[sig] ?? 9) : 9);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, sig) => resolve(status(code, sig)));
    const onAbort = () => {
      child.once('exit', (code, sig) => resolve(status(code, sig)));
      child.kill('SIGKILL');
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    child.once('close', () => signal?.removeEventListener('abort', onAbort));
  });
}
