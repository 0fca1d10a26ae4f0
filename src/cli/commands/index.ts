/**
 * Every command kiln has, one module each. A module exports `register(program)` which adds its
 * subcommand (with help for every flag) and returns it. Add new commands here. Modules are loaded
 * on demand: a CLI call loads only the command it runs (start-up time is part of every command's).
 */
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => Command;

/** Command name (as typed) → its module's register function. */
export const commandLoaders: [string, () => Promise<RegisterCommand>][] = [
  ['plan', async () => (await import('./plan.js')).register],
  ['images', async () => (await import('./images.js')).register],
  ['tag', async () => (await import('./tag.js')).register],
  ['rmi', async () => (await import('./rmi.js')).register],
  ['import', async () => (await import('./import.js')).register],
  ['save', async () => (await import('./save.js')).register],
  ['load', async () => (await import('./load.js')).register],
  ['export', async () => (await import('./export.js')).register],
  ['prune', async () => (await import('./prune.js')).register],
  ['inspect', async () => (await import('./inspect.js')).register],
  ['run', async () => (await import('./run.js')).register],
  ['build', async () => (await import('./build.js')).register],
  ['debug', async () => (await import('./debug.js')).register],
  ['history', async () => (await import('./history.js')).register],
  ['analyze', async () => (await import('./analyze.js')).register],
  ['diff', async () => (await import('./diff.js')).register],
  ['sbom', async () => (await import('./sbom.js')).register],
  ['scan', async () => (await import('./scan.js')).register],
  ['lint', async () => (await import('./lint.js')).register],
  ['report', async () => (await import('./report.js')).register],
  ['trace', async () => (await import('./trace.js')).register],
  ['pull', async () => (await import('./pull.js')).register],
  ['push', async () => (await import('./push.js')).register],
  ['login', async () => (await import('./login.js')).register],
  ['manifest', async () => (await import('./manifest.js')).register],
];

/** Commands that another command's module registers too. */
const SHARED_MODULE: Record<string, string> = { logout: 'login' };

/** The register functions of the command `only` when it is one, else of every command. */
export async function loadCommands(only?: string): Promise<RegisterCommand[]> {
  const name = only !== undefined ? (SHARED_MODULE[only] ?? only) : undefined;
  const chosen = name !== undefined ? commandLoaders.filter(([n]) => n === name) : [];
  return Promise.all((chosen.length ? chosen : commandLoaders).map(([, load]) => load()));
}
