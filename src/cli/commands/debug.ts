/**
 * `kiln debug [ID] [COMMAND…]`: a shell (or the command) in a failed RUN step that
 * `kiln build --on-error=keep` kept (engine/kept-step.ts): the filesystem the command left (or,
 * `--before`, the one before it), as the step's user, with its mounts and sandbox mode; the exit
 * code passes through. `--list` shows the kept steps, `--rm ID` removes one.
 */
import type { Command } from 'commander';
import { constants as osConstants } from 'node:os';
import { debug, keptSteps, removeKeptSteps } from '../../api/index.js';
import { humanAgo, printTable } from '../../ui/index.js';
import { KilnError } from '../../util/index.js';
import { openStoreFromCli } from '../store.js';

interface DebugFlags {
  cmd?: string;
  before?: boolean;
  list?: boolean;
  rm?: boolean;
  format?: string;
}

export function register(program: Command): Command {
  return program
    .command('debug')
    .description(
      'open a shell (or run a command) in a failed RUN step kept by kiln build --on-error=keep: its filesystem as the command left it, its user, environment, working directory and mounts',
    )
    .argument('[id]', 'the kept step (an id from --list, or a unique prefix; default: the newest)')
    .argument('[command...]', 'command and arguments to run instead of /bin/sh (after --: kiln debug ID -- ls -la)')
    .option('--cmd <command>', 'run this shell command (/bin/sh -c) instead of a shell')
    .option('--before', 'the state before the step (to try a fixed command)')
    .option('--list', 'list the kept steps')
    .option('--format <format>', 'with --list: table or json', 'table')
    .option('--rm', 'remove the kept step ID (its files and what it kept from gc)')
    .action(async (id: string | undefined, command: string[], f: DebugFlags, cmd: Command) => {
      if (f.cmd !== undefined && command.length)
        throw new KilnError('USAGE', 'give the command either with --cmd or after the id, not both');
      if (f.format !== 'table' && f.format !== 'json')
        throw new KilnError('USAGE', `unknown --format "${f.format}": use table or json`);
      const store = await openStoreFromCli(cmd);
      if (f.list) {
        const all = await keptSteps({ store });
        if (f.format === 'json') {
          process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
          return;
        }
        printTable([
          ['ID', 'CREATED', 'STEP', 'EXIT', 'COMMAND'],
          ...all.map((k) => [
            k.id,
            humanAgo(k.created),
            `${k.file ?? ''}${k.line !== undefined ? `:${k.line}` : ''} (${k.stage})`,
            String(k.exitCode),
            k.command.length > 60 ? `${k.command.slice(0, 59)}…` : k.command,
          ]),
        ]);
        return;
      }
      if (f.rm) {
        if (id === undefined)
          throw new KilnError('USAGE', '--rm needs the id of a kept step', {}, { hint: 'kiln debug --list' });
        await removeKeptSteps({ store, ids: [id] });
        process.stdout.write(`Removed kept step ${id}\n`);
        return;
      }
      const ac = new AbortController();
      let caught: NodeJS.Signals | undefined;
      // A shell on a terminal gets the terminal's ^C itself; kiln ends the session on TERM/HUP only.
      const onSig = (sig: NodeJS.Signals) => {
        caught ??= sig;
        ac.abort();
      };
      const signals: NodeJS.Signals[] = process.stdin.isTTY ? ['SIGTERM', 'SIGHUP'] : ['SIGINT', 'SIGTERM', 'SIGHUP'];
      const ignoreInt = () => undefined;
      if (process.stdin.isTTY) process.on('SIGINT', ignoreInt);
      for (const s of signals) process.on(s, onSig);
      try {
        const r = await debug({
          store,
          id,
          before: f.before,
          args: f.cmd !== undefined ? ['/bin/sh', '-c', f.cmd] : command,
          stdin: 'inherit',
          onStdout: (b) => process.stdout.write(b),
          onStderr: (b) => process.stderr.write(b),
          signal: ac.signal,
        });
        process.exitCode = r.exitCode;
      } catch (e) {
        if (ac.signal.aborted) {
          process.exitCode = 128 + (caught ? osConstants.signals[caught] : 15);
          return;
        }
        throw e;
      } finally {
        for (const s of signals) process.off(s, onSig);
        process.off('SIGINT', ignoreInt);
      }
    });
}
