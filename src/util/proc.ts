/**
 * Running helper programs (runc, unshare, zstd, skopeo in tests...) with captured output.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { spawn, type SpawnOptions } from 'node:child_process';
import { KilnError } from './errors.js';

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion, capturing stdout/stderr as text. Never throws on a non-zero exit. */
/**
 * `umask`: the program runs under this umask rather than kiln's (a tar or git that creates files
 * for an image must not take the mode of whoever runs kiln: BuildKit runs them under 022).
 */
export async function runCapture(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string | Buffer; umask?: number } = {},
): Promise<RunResult> {
  const { umask, ...spawnOpts } = opts;
  if (umask === undefined) return capture(cmd, args, spawnOpts);
  // Node cannot set a child's umask: a shell sets it and execs the program (a missing program
  // still rejects with ENOENT, as spawn does).
  if ((await which(cmd)) === undefined) throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: 'ENOENT' });
  return capture(
    '/bin/sh',
    ['-c', `umask ${umask.toString(8).padStart(3, '0')} && exec "$0" "$@"`, cmd, ...args],
    spawnOpts,
  );
}

function capture(cmd: string, args: string[], opts: SpawnOptions & { input?: string | Buffer }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Run a program; throw a KilnError with its stderr when it fails. */
export async function runChecked(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string | Buffer } = {},
): Promise<RunResult> {
  const r = await runCapture(cmd, args, opts).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new KilnError('NOT_FOUND', `${cmd} is not installed`, { path: cmd });
    throw e;
  });
  if (r.code !== 0) {
    throw new KilnError(
      'INTERNAL',
      `${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
  return r;
}

/** Where `cmd` is on PATH (an executable file), as `command -v` says, without starting a shell. */
export async function which(cmd: string): Promise<string | undefined> {
  if (cmd.includes('/')) return isExecutable(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', cmd);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Is a process with this pid alive (EPERM: alive, not ours)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A process's start time (clock ticks after boot, /proc/PID/stat field 22), undefined when it is
 * gone: with the pid, an identity that a reused pid does not match.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let boot: string | undefined;

/**
 * This boot's id (/proc/sys/kernel/random/boot_id, new at each boot): what was written without a
 * sync is only known to be on disk within the boot that wrote it. '' where it cannot be read.
 */
export function bootId(): string {
  if (boot === undefined) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      boot = '';
    }
  }
  return boot;
}
