/**
 * Helpers shared by command modules: global options, repeatable flags, KEY=VALUE parsing.
 */
import type { Command } from 'commander';
import { KilnError } from '../util/errors.js';

export interface GlobalOptions {
  root?: string;
  debug?: boolean;
}

/** The global options (--root, --debug) as seen from a subcommand. */
export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** commander argParser for repeatable options: `--build-arg A=1 --build-arg B=2`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Parse `KEY=VALUE` items; a bare `KEY` takes its value from `fromEnv` when given (docker's rule). */
export function parseKeyValues(
  items: string[] | undefined,
  flag: string,
  fromEnv?: (key: string) => string | undefined,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of items ?? []) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new KilnError('USAGE', `invalid ${flag} "${item}": the name is empty`, {}, { hint: `use ${flag} NAME=VALUE` });
    if (eq < 0) {
      const v = fromEnv?.(item);
      if (v === undefined) {
        if (fromEnv) continue; // docker: a bare name with no such env var is ignored
        throw new KilnError('USAGE', `invalid ${flag} "${item}": expected NAME=VALUE`);
      }
      out.set(item, v);
    } else {
      out.set(item.slice(0, eq), item.slice(eq + 1));
    }
  }
  return out;
}
