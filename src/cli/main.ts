#!/usr/bin/env node
/**
 * kiln's command line: builds the commander program from one module per command, runs it, and
 * maps errors to exit codes (0 ok, 1 user or build error, 2 usage error). No stack traces unless
 * --debug.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { loadCommands, type RegisterCommand } from './commands/index.js';
import { KilnError, formatError, isKilnError, mark, readPackageVersion, startProfile } from '../util/index.js';
import { runInUserNamespace } from './rootless.js';
import { setLauncherIdentity } from './noop-memo.js';

/** The program with every command (for help and the generated docs). */
export async function buildProgram(): Promise<Command> {
  return programWith(await loadCommands());
}

function programWith(commands: RegisterCommand[]): Command {
  const program = new Command();
  program
    .name('kiln')
    .description('Daemonless builder of small, reproducible OCI images from multi-stage Dockerfiles')
    .version(readPackageVersion(), '-V, --version', 'print the version')
    .option('--root <dir>', 'store directory (default: $KILN_ROOT, /var/lib/kiln for root, else $XDG_DATA_HOME/kiln)')
    .option('--debug', 'print stack traces and debug details on errors')
    .option('--profile', 'print where the time went, phase by phase, on stderr at exit (also KILN_PROFILE=1, or =FILE)')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: true })
    // Options after `kiln run IMAGE` belong to the command run in the container.
    .enablePositionalOptions()
    .exitOverride();
  for (const register of commands) {
    const cmd = register(program);
    cmd.exitOverride();
  }
  return program;
}

/** The command an argv names: its first word that is not a global option (or its value). */
function commandName(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--root') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/**
 * `commandLoaded`: called once the command's modules are loaded, before it runs (the launcher takes
 * V8's code for the start-up path there: cli/launcher in scripts/bundle.mjs).
 */
export async function main(argv: string[], commandLoaded?: () => void): Promise<number> {
  // --profile is a global option: before the command's name (after it, it would be the command's).
  const cmdAt = argv.indexOf(commandName(argv) ?? '');
  const profileAt = argv.indexOf('--profile');
  startProfile(profileAt >= 0 && (cmdAt < 0 || profileAt < cmdAt));
  mark('kiln modules loaded');
  const debug = argv.includes('--debug');
  // The CLI runs bundled (dist/bin): map stack traces back to the modules for whoever debugs.
  if (debug) process.setSourceMapsEnabled(true);
  try {
    // Not root: the command runs again in a user namespace (cli/rootless.ts).
    const inNamespace = await runInUserNamespace(argv, commandName(argv));
    if (inNamespace !== undefined) return inNamespace;
    // Only the module of the command being run is loaded (all of them for help or a typo).
    const program = programWith(await loadCommands(commandName(argv)));
    mark('command module loaded');
    commandLoaded?.();
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    return reportError(e, debug);
  }
}

function reportError(e: unknown, debug: boolean): number {
  if (e instanceof CommanderError) {
    // help and version "errors" are successful exits; commander already printed the message.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    return 2;
  }
  if (isKilnError(e)) {
    process.stderr.write(`error: ${formatError(e)}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    if (debug && e.cause) process.stderr.write(`caused by: ${String((e.cause as Error)?.stack ?? e.cause)}\n`);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  const msg = err?.message ?? String(e);
  process.stderr.write(`error: ${msg}\n`);
  if (debug && err?.stack) process.stderr.write(`${err.stack}\n`);
  else if (!(err && typeof err.code === 'string')) {
    // Not an error of the user's making: say how to see more.
    process.stderr.write('  (internal error; run with --debug for the stack trace)\n');
  }
  return 1;
}

/** Executed as the program (node dist/src/cli/main.js); the dist/bin/kiln.js launcher calls runProgram() itself. */
function runAsProgram(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

/**
 * A closed stdout or stderr (`kiln images | head -1`): stop quietly, as a command killed by SIGPIPE
 * would, with no stack trace. Any other error on them is reported in one line.
 */
function quietOnClosedOutput(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') {
        if (s !== process.stderr) process.stderr.write(`error: writing output: ${e.message}\n`);
        process.exit(1);
      }
      process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
    });
  }
}

/**
 * kiln as a program: main() with the process's outputs handled as a command-line tool's.
 * `launcher.identity`: the launcher's identity of this CLI (dist/bin/kiln.js), the key under which
 * `kiln build` records its no-op memo (cli/noop-memo.ts); without it, no memo is recorded.
 * `launcher.commandLoaded`: see main().
 */
export function runProgram(
  argv: string[],
  launcher: { identity?: string; commandLoaded?: () => void } = {},
): Promise<number> {
  setLauncherIdentity(launcher.identity);
  quietOnClosedOutput();
  return main(argv, launcher.commandLoaded);
}

if (runAsProgram()) {
  runProgram(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`fatal: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

export { KilnError };
