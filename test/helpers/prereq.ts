/**
 * Prerequisites of a test (a package, root, a kernel feature). A missing one never lets `npm test`
 * pass quietly: `needs(...)` registers one failing test per missing prerequisite, whose message says
 * what to install, and returns the reason to give as the suite's `skip` (its tests cannot run).
 * Explicit opt-outs: KILN_TEST_ONLY=unit (scripts/test.mjs then runs no integration test at all)
 * or KILN_TEST_ALLOW_MISSING=1 (a missing prerequisite is a plain skip).
 *
 *   const skip = needs(basesUnavailable(), registryUnavailable());
 *   describe('…', { skip }, () => { … });
 */
import { test } from 'node:test';

export const missingAllowed = process.env.KILN_TEST_ALLOW_MISSING === '1' || process.env.KILN_TEST_ONLY === 'unit';

const reported = new Set<string>();

/** The first missing prerequisite's reason (reported as a failing test), or false when all are here. */
export function needs(...reasons: (string | undefined | null | false)[]): string | false {
  const missing = reasons.find((r): r is string => typeof r === 'string' && r.length > 0);
  if (missing === undefined) return false;
  if (!missingAllowed && !reported.has(missing)) {
    reported.add(missing);
    test(`prerequisite: ${missing}`, () => {
      throw new Error(
        `missing prerequisite: ${missing} (./scripts/setup.sh installs the packages; KILN_TEST_ALLOW_MISSING=1 turns this into a skip)`,
      );
    });
  }
  return missing;
}
