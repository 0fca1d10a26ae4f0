/**
 * Test users for rootless tests: made with useradd (with or without subordinate ids), removed with
 * their home and their /etc/subuid, /etc/subgid lines; the kiln CLI run as one of them with
 * `runuser`, its HOME and XDG dirs set as a login would.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cliPath } from './paths.js';
import { collectResult, type KilnResult } from './kiln.js';

export interface TestUser {
  name: string;
  uid: number;
  home: string;
  /** The first subordinate uid range, when the user has one. */
  subuid?: { start: number; count: number };
}

/** What is missing to run rootless tests here (they fail with it, saying what to install). */
export function rootlessPrerequisites(): string | undefined {
  if (process.getuid?.() !== 0) return 'rootless tests make test users: run them as root';
  for (const [tool, pkg] of [
    ['/usr/bin/newuidmap', 'uidmap'],
    ['/usr/bin/newgidmap', 'uidmap'],
    ['/usr/sbin/useradd', 'passwd'],
    ['/usr/sbin/runuser', 'util-linux'],
  ] as const) {
    if (!existsSync(tool)) return `${tool} is missing: apt-get install ${pkg}`;
  }
  return undefined;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A new user; with subids, useradd gives it a free range of 65536 ids (login.defs' default). */
export function createTestUser(name: string, opts: { subids: boolean }): TestUser {
  spawnSync('userdel', ['-r', name], { encoding: 'utf8' }); // a leftover of an interrupted run
  const k = opts.subids
    ? ['-K', 'SUB_UID_COUNT=65536', '-K', 'SUB_GID_COUNT=65536']
    : ['-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0'];
  sh('useradd', ['-m', '-s', '/bin/sh', ...k, name]);
  const uid = Number(sh('id', ['-u', name]).trim());
  const home = sh('getent', ['passwd', name]).split(':')[5]!;
  const line = sh('cat', ['/etc/subuid'])
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const subuid = line ? { start: Number(line.split(':')[1]), count: Number(line.split(':')[2]) } : undefined;
  if (opts.subids && !subuid) throw new Error(`useradd gave ${name} no subordinate ids`);
  if (!opts.subids && subuid) throw new Error(`${name} has subordinate ids: ${line}`);
  return { name, uid, home, subuid };
}

/** Remove the user, its home (files owned by its subordinate ids too) and its subid lines. */
export function removeTestUser(u: TestUser): void {
  spawnSync('pkill', ['-KILL', '-u', u.name]);
  spawnSync('userdel', ['-r', '-f', u.name], { encoding: 'utf8' });
  spawnSync('rm', ['-rf', u.home]);
}

/** Run the kiln CLI as `user`, as a login shell would set HOME and XDG_DATA_HOME. */
export function runKilnAs(
  user: TestUser,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<KilnResult> {
  const env = [
    `HOME=${user.home}`,
    `USER=${user.name}`,
    `LOGNAME=${user.name}`,
    `PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
    `XDG_DATA_HOME=${user.home}/.local/share`,
    ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
  ];
  const child = spawn('runuser', ['-u', user.name, '--', 'env', '-i', ...env, process.execPath, cliPath, ...args], {
    cwd: '/',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collectResult(child, opts.timeoutMs);
}
