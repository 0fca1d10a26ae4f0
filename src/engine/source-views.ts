/**
 * Views of a `COPY/ADD --from` source that its key mounted (cache-step.ts: the files hashed), left
 * for the copy of the same step (copy-step.ts), which reads the same layers right after: one overlay
 * mounted instead of two. Each is left for its step (the step's expanded instruction, the one object
 * the key and the copy share) and named by its layers' chain id, which fixes what it shows. What
 * the copy did not take (a cache hit, a failed step) is closed when the step ends.
 */
import { closeViewLater, type View } from '../sandbox/index.js';

export class LeftSourceViews {
  private readonly left = new Map<object, { chain: string; view: View }>();

  /** Keep `view` of the layers with chain id `chain` for `step`'s copy (one a step: an earlier one is closed). */
  leave(step: object, chain: string, view: View): void {
    this.closeLeft(step);
    this.left.set(step, { chain, view });
  }

  /** The view of `chain` left for `step`, now the caller's to close; undefined when there is none. */
  take(step: object, chain: string): View | undefined {
    const l = this.left.get(step);
    if (!l || l.chain !== chain) return undefined;
    this.left.delete(step);
    return l.view;
  }

  /** Close (off the caller's path: closeViewLater) what was left for `step` and not taken. */
  closeLeft(step: object): void {
    const l = this.left.get(step);
    this.left.delete(step);
    if (l) closeViewLater(l.view);
  }

  /** Close every view still left (the build's end). */
  closeAll(): void {
    for (const step of [...this.left.keys()]) this.closeLeft(step);
  }
}
