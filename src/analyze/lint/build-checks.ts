/**
 * The checks `kiln build` runs, as BuildKit: with every build, its build checks (not kiln lint's
 * own rules), warnings unless `# check=error=true`; `--call=check`, the same checks as a result.
 */
import { parseDockerfile } from '../../dockerfile/index.js';
import { checkDirective, lintDockerfile, RULES, type LintFinding, type LintOptions, type LintResult } from './index.js';

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
): { findings: LintFinding[]; all: LintFinding[]; fail: boolean } {
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
