/**
 * Library calls that run processes in images (build, run) need root: real root, or root of a user
 * namespace. The CLI enters one by itself for a user who is not root (cli/rootless.ts re-executes
 * the command there); a library call cannot re-execute its caller, so it says what to do instead.
 */
import { KilnError } from '../util/index.js';

export function requireSandboxPrivileges(what: 'build' | 'run'): void {
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0) return;
  throw new KilnError(
    'SANDBOX',
    `${what}() needs root or a user namespace, and this process runs as uid ${uid}: the library does not enter one by itself (the kiln CLI does)`,
    {},
    {
      hint: `run the kiln CLI (\`kiln ${what} …\` enters a user namespace with your subordinate ids), or start this program in one: unshare --map-auto --map-root-user --mount node app.js`,
    },
  );
}
