/**
 * Expansion of a whole instruction: every word BuildKit expands, and only those. The planner uses
 * it with what is known before building; the build engine calls it once for each instruction
 * with the stage's variables at that point (the base image's ENV, then ENV/ARG as they come:
 * `StageScope.lookup`), which is BuildKit's semantics, and both its cache key and the step use
 * that one result (engine/expand-step.ts).
 *
 *   FROM        image, --platform                (the caller passes the global-ARG lookup)
 *   ENV, LABEL  keys and values
 *   ARG         defaults (BuildKit skips a default a --build-arg overrides: StageScope.declareArg does)
 *   COPY, ADD   sources (not heredoc markers), dest, --chown, --chmod, --checksum, --exclude,
 *               --from (kiln: with `fromLookup`), heredoc bodies whose delimiter is not quoted
 *   RUN         each --mount option value (re-parsed into `mounts`); never the command text
 *   EXPOSE      each port, split into fields (`EXPOSE $PORTS`)
 *   VOLUME, USER, WORKDIR, STOPSIGNAL
 *   CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD: unchanged
 */
import type { Instruction, MountSpec } from './ast.js';
import { expandHeredoc, expandWord, expandWords, type ExpandOptions, type Lookup } from './expand.js';
import { parseMount } from './mounts.js';

export interface ExpandInstructionOptions extends ExpandOptions {
  /**
   * Lookup for `COPY --from` and `RUN --mount from=` (kiln resolves a stage-scoped ARG there, then
   * the global ARGs); default: `lookup`.
   */
  fromLookup?: Lookup;
}

/**
 * A copy of the instruction with its expandable words expanded. Throws ExpansionError (bad
 * substitution, `${X:?}`) or MountError (an invalid --mount option once expanded).
 */
export function expandInstruction<T extends Instruction>(
  ins: T,
  lookup: Lookup,
  opts: ExpandInstructionOptions = {},
): T {
  const x = (w: string) => expandWord(w, lookup, opts);
  const xf = (w: string) => expandWord(w, opts.fromLookup ?? lookup, opts);
  // A shallow copy: the fields replaced below are new values, the rest is shared (read-only).
  const out = { ...ins } as Instruction;
  switch (out.kind) {
    case 'FROM':
      out.image = x(out.image);
      if (out.platform !== undefined) out.platform = x(out.platform);
      break;
    case 'ENV':
    case 'LABEL':
      out.pairs = out.pairs.map((p) => ({ key: x(p.key), value: x(p.value) }));
      break;
    case 'ARG':
      out.args = out.args.map((a) => (a.default === undefined ? a : { name: a.name, default: x(a.default) }));
      break;
    case 'COPY':
    case 'ADD':
      out.sources = out.sources.map((s) => (/^\d*<</.test(s) ? s : x(s)));
      out.dest = x(out.dest);
      if (out.from !== undefined) out.from = xf(out.from);
      if (out.chown !== undefined) out.chown = x(out.chown);
      if (out.chmod !== undefined) out.chmod = x(out.chmod);
      if (out.checksum !== undefined) out.checksum = x(out.checksum);
      out.exclude = out.exclude.map(x);
      out.heredocs = out.heredocs.map((h) =>
        h.expand ? { ...h, content: expandHeredoc(h.content, lookup, opts) } : h,
      );
      break;
    case 'RUN':
      out.mounts = out.mountFlags.map((m) => expandMount(m, lookup, opts));
      break;
    case 'EXPOSE':
      out.ports = out.ports.flatMap((p) => expandWords(p, lookup, opts));
      break;
    case 'VOLUME':
      out.paths = out.paths.map(x);
      break;
    case 'USER':
      out.user = x(out.user);
      break;
    case 'WORKDIR':
      out.path = x(out.path);
      break;
    case 'STOPSIGNAL':
      out.signal = x(out.signal);
      break;
    default:
      break;
  }
  return out as T;
}

/** One `--mount` option string, each value expanded (from= with `fromLookup`). */
export function expandMount(spec: string, lookup: Lookup, opts: ExpandInstructionOptions = {}): MountSpec {
  return parseMount(spec, {
    expand: (v, key) => expandWord(v, key === 'from' ? (opts.fromLookup ?? lookup) : lookup, opts),
  });
}
