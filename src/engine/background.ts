/**
 * Work a step leaves to finish while the next steps run: what nothing on the build's critical
 * path reads before the build's end (a COPY layer's provenance record). Each job is named by what
 * it writes (a layer's diff_id): a job that reads another's output waits for it (`after`), two jobs
 * writing the same name run one after the other. The build settles them all before it returns,
 * failed or not: a job's error fails the build with its own message, once every job has ended
 * (none is left holding a spill file or a view).
 */
import { type Digest } from '../util/index.js';

export class BackgroundJobs {
  /** The last job started per name: the one a reader of that name, or the next writer, waits for. */
  private readonly pending = new Map<Digest, Promise<void>>();
  private readonly all = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  /** The names whose job failed (what they wrote is not to be trusted: the build drops what refers to it). */
  readonly failed = new Set<Digest>();

  /**
   * Start `job`, writing `name`, once the jobs writing `name` and each of `after` have ended (their
   * failures are the build's, not this job's). Returns at once.
   */
  start(name: Digest, job: () => Promise<void>, after: readonly Digest[] = []): void {
    const before = [name, ...after].flatMap((n) => this.pending.get(n) ?? []);
    const run = Promise.all(before)
      .then(job)
      .catch((e: unknown) => {
        this.failure ??= { error: e };
        this.failed.add(name);
      });
    const done = run.finally(() => {
      this.all.delete(done);
      if (this.pending.get(name) === done) this.pending.delete(name);
    });
    this.pending.set(name, done);
    this.all.add(done);
  }

  /**
   * Work already under way that writes nothing a step reads (a RUN's run dir torn down): the build
   * waits for it, and its failure fails the build, as a job's does; no record is dropped for it.
   */
  track(work: Promise<void>): void {
    const done = work
      .catch((e: unknown) => {
        this.failure ??= { error: e };
      })
      .finally(() => this.all.delete(done));
    this.all.add(done);
  }

  /** Wait until every job started (also those started meanwhile) has ended; throws the first failure. */
  async settle(): Promise<void> {
    while (this.all.size) await Promise.all(this.all);
    if (this.failure) throw this.failure.error;
  }

  /** settle for a build that failed already: waits, never throws (the build's own error stands). */
  async drain(): Promise<void> {
    await this.settle().catch(() => undefined);
  }
}
