/** Run the built kiln CLI as a user would, with its own store root. */
import { spawn, type ChildProcess } from 'node:child_process';
import { cliPath } from './paths.js';

export interface KilnResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runKiln(
  args: string[],
  opts: { root?: string; cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<KilnResult> {
  const env = { ...process.env, ...opts.env };
  if (opts.root) env.KILN_ROOT = opts.root;
  const child = spawn(process.execPath, [cliPath, ...args], { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const result = collectResult(child, opts.timeoutMs);
  // kiln may stop reading early (a bounded input refused): that is its answer, not the test's error.
  child.stdin.on('error', () => undefined);
  child.stdin.end(opts.input ?? '');
  return result;
}

/** A spawned kiln's exit code and output, killed after `timeoutMs` when given. */
export function collectResult(child: ChildProcess, timeoutMs?: number): Promise<KilnResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = timeoutMs ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}
