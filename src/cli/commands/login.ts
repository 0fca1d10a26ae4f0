/** `kiln login` / `kiln logout`: docker's login file, shared with docker. */
import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { familiarName } from '../../image/index.js';
import { eraseCredentials, closeIdleConnections, checkLogin, loginServer } from '../../registry/index.js';
import { KilnError } from '../../util/index.js';
import { addRegistryOptions, clientOptionsFrom, type RegistryFlags } from '../registry-options.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function prompt(question: string, hidden: boolean): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) {
    // Echo nothing while the password is typed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (s.includes(question)) process.stderr.write(question);
    };
  }
  try {
    return await new Promise((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
    if (hidden) process.stderr.write('\n');
  }
}

export function register(program: Command): Command {
  const login = program
    .command('login')
    .description('log in to a registry (saved in $DOCKER_CONFIG/config.json, shared with docker)')
    .argument('[server]', 'registry host (default: Docker Hub)')
    .option('-u, --username <name>', 'username')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin');
  addRegistryOptions(login);
  login.action(
    async (
      server: string | undefined,
      flags: RegistryFlags & { username?: string; password?: string; passwordStdin?: boolean },
    ) => {
      let { username, password } = flags;
      if (flags.passwordStdin) {
        if (password !== undefined)
          throw new KilnError('USAGE', '--password and --password-stdin are mutually exclusive');
        if (username === undefined) throw new KilnError('USAGE', '--password-stdin needs --username');
        password = await readStdin();
      } else if (password !== undefined) {
        process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      }
      const interactive = process.stdin.isTTY === true;
      if (username === undefined) {
        if (!interactive)
          throw new KilnError(
            'USAGE',
            'no username given and stdin is not a terminal',
            {},
            { hint: 'use --username and --password-stdin' },
          );
        username = (await prompt('Username: ', false)).trim();
      }
      if (password === undefined) {
        if (!interactive)
          throw new KilnError(
            'USAGE',
            'no password given and stdin is not a terminal',
            {},
            { hint: 'use --password-stdin' },
          );
        password = await prompt('Password: ', true);
      }
      if (!username) throw new KilnError('USAGE', 'the username is empty');
      if (!password) throw new KilnError('USAGE', 'the password is empty');
      try {
        const r = await checkLogin(server, { username, password }, clientOptionsFrom(flags));
        process.stderr.write(`Credentials saved in ${r.configFile}\n`);
        process.stdout.write('Login Succeeded\n');
      } finally {
        closeIdleConnections();
      }
    },
  );
  program
    .command('logout')
    .description('log out from a registry (removes the saved credentials)')
    .argument('[server]', 'registry host (default: Docker Hub)')
    .action(async (server: string | undefined) => {
      const registry = loginServer(server);
      const name = familiarName(registry) || registry;
      if (await eraseCredentials(registry)) process.stdout.write(`Removing login credentials for ${name}\n`);
      else process.stdout.write(`Not logged in to ${name}\n`);
    });
  return login;
}
