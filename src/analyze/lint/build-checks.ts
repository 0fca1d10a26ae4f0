/**
 * The checks `kiln build` runs, as BuildKit: with every build, its build checks (not kiln lint's
 * own rules), warnings unless `# check=error=true`; `--call=check`, the same checks as a result.
 */
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseDockerfile } from '../../dockerfile/index.js';
import { canonicalJSON } from '../../image/index.js';
import type { Store } from '../../store/index.js';
import { sha256, writeFileAtomic } from '../../util/index.js';
import {
  checkDirective,
  lintDockerfile,
  RULES,
  type BaseImageFacts,
  type LintFinding,
  type LintOptions,
  type LintResult,
} from './index.js';

/** `--call=check`: BuildKit's checks only (kiln lint adds its own multi-stage rules on top). */
export function checkCall(text: string, opts: LintOptions): LintResult {
  const r = lintDockerfile(text, opts);
  const findings = r.findings.filter((x) => RULES[x.rule]?.origin !== 'kiln' || x.rule === 'InvalidDockerfile');
  return {
    ...r,
    findings,
    errors: findings.filter((x) => x.level === 'error').length,
    warnings: findings.filter((x) => x.level === 'warning').length,
  };
}

/** What `kiln build` does with its checks: show `findings`, and fail with `all` when `fail`. */
export interface BuildChecks {
  findings: LintFinding[];
  all: LintFinding[];
  fail: boolean;
}

/** BuildKit's checks of a Dockerfile (not kiln lint's own rules) and whether `# check=error=true` makes them fatal. */
export function buildChecks(
  text: string,
  file: string,
  target: string | undefined,
  buildArgs: Map<string, string>,
  ignored?: (rel: string) => boolean,
  baseImages?: LintOptions['baseImages'],
  /** The build's target platforms (default: linux/amd64): InvalidBaseImagePlatform is checked for each. */
  platforms: string[] = [],
): BuildChecks {
  const [first, ...others] = platforms;
  const r = lintDockerfile(text, { file, target, buildArgs, ignored, baseImages, platform: first });
  // A base image of another platform concerns each target it does not match: one finding per
  // such platform (its message names the platform expected).
  for (const platform of others) {
    const more = lintDockerfile(text, { file, target, buildArgs, ignored, baseImages, platform });
    for (const x of more.findings)
      if (
        x.rule === 'InvalidBaseImagePlatform' &&
        !r.findings.some((y) => y.rule === x.rule && y.line === x.line && y.message === x.message)
      )
        r.findings.push(x);
  }
  // A file that does not parse or plan fails the build with its own error.
  // The parser's own warnings (NoEmptyContinuation, MaintainerDeprecated, LegacyKeyValueFormat)
  // come with the build's events already.
  const fromParser = new Set<string>();
  try {
    for (const w of parseDockerfile(text, { file }).warnings) if (w.rule) fromParser.add(w.rule);
  } catch {
    // reported by the build
  }
  const all = r.findings.filter((x) => RULES[x.rule]?.origin === 'buildkit');
  const findings = all.filter((x) => !fromParser.has(x.rule));
  let fail: boolean;
  try {
    fail = checkDirective(parseDockerfile(text, { file })).error;
  } catch {
    fail = false;
  }
  return { findings, all, fail };
}

/** Everything the build checks' result depends on (the checks read nothing else). */
export interface BuildChecksInput {
  text: string;
  file: string;
  target: string | undefined;
  buildArgs: Map<string, string>;
  /** The context's .dockerignore patterns, in order; undefined when the context is no directory (no CopyIgnoredFile). */
  ignorePatterns: string[] | undefined;
  /** Whether a context path is ignored by those patterns. */
  ignored: ((rel: string) => boolean) | undefined;
  baseImages: Map<string, BaseImageFacts>;
  /** The build's target platforms (InvalidBaseImagePlatform is checked for each); empty: linux/amd64. */
  platforms: string[];
}

/**
 * The key of a build-check result: the checks' code (`code`, this build of kiln) and every input
 * they read — the Dockerfile's text and name, the target, the build args, the .dockerignore patterns
 * and what the store knows of the base images. Maps are keyed in sorted order: the same inputs
 * given in another order are the same key.
 */
export function buildChecksKey(input: Omit<BuildChecksInput, 'ignored'>, code: string): string {
  const sorted = <V>(m: Map<string, V>) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256(
    canonicalJSON({
      code,
      text: input.text,
      file: input.file,
      target: input.target ?? null,
      buildArgs: sorted(input.buildArgs),
      ignorePatterns: input.ignorePatterns ?? null,
      baseImages: sorted(input.baseImages),
      platforms: input.platforms,
    }),
  );
}

/** This build of kiln's checks: the module's own file (the CLI bundle, or dist/src) by size and time. */
export async function codeIdentity(): Promise<string | undefined> {
  try {
    const st = await stat(fileURLToPath(import.meta.url));
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * `buildChecks`, remembered in the store by `buildChecksKey`: a rebuild of an unchanged Dockerfile
 * with the same args, ignore file and base images reads the result instead of linting again (a
 * no-op rebuild's checks cost a file read). A record that cannot be read or does not have the
 * result's shape is recomputed and written again; a store that cannot be written only costs time.
 */
export async function cachedBuildChecks(store: Store, input: BuildChecksInput): Promise<BuildChecks> {
  const code = await codeIdentity();
  const file = code !== undefined ? store.layout.buildChecksFile(buildChecksKey(input, code)) : undefined;
  if (file) {
    const kept = await readFile(file, 'utf8')
      .then((t) => JSON.parse(t) as unknown)
      .catch(() => undefined);
    if (isBuildChecks(kept)) return kept;
  }
  const r = buildChecks(
    input.text,
    input.file,
    input.target,
    input.buildArgs,
    input.ignored,
    input.baseImages,
    input.platforms,
  );
  if (file) await writeFileAtomic(file, JSON.stringify(r), 0o600).catch(() => undefined);
  return r;
}

function isBuildChecks(v: unknown): v is BuildChecks {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const isFinding = (f: unknown) => {
    const x = f as Record<string, unknown> | null;
    return (
      typeof x === 'object' &&
      x !== null &&
      typeof x.rule === 'string' &&
      typeof x.message === 'string' &&
      typeof x.file === 'string' &&
      typeof x.line === 'number'
    );
  };
  return (
    typeof r.fail === 'boolean' &&
    Array.isArray(r.findings) &&
    Array.isArray(r.all) &&
    r.findings.every(isFinding) &&
    r.all.every(isFinding)
  );
}
