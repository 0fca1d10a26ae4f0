/**
 * A real Docker engine for interop and differential tests: Debian's dockerd with its own data
 * root, exec root, pidfile and unix socket under a temp dir; stopped and removed after.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';

export interface Dockerd {
  host: string;
  env: NodeJS.ProcessEnv;
  /** Run Debian's docker client against this engine. */
  docker(
    args: string[],
    opts?: { input?: Buffer | string; env?: NodeJS.ProcessEnv },
  ): { code: number; stdout: string; stderr: string };
  stop(): Promise<void>;
}

export function dockerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a Docker engine needs root';
  if (!existsSync('/usr/sbin/dockerd') && spawnSync('sh', ['-c', 'command -v dockerd']).status !== 0)
    return 'dockerd is not installed (apt-get install docker.io)';
  if (!existsSync('/usr/bin/docker')) return "Debian's docker client /usr/bin/docker is not installed";
  return undefined;
}

export async function startDockerd(): Promise<Dockerd> {
  // Short paths: the socket path must stay under the unix socket length limit.
  const dir = mkdtempSync('/tmp/kd-');
  const host = `unix://${dir}/d.sock`;
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--host',
      host,
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      path.join(dir, 'd.pid'),
      '--bridge',
      'none',
      '--iptables=false',
      '--ip6tables=false',
      '--storage-driver',
      'overlay2',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: false },
  );
  let log = '';
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const env = { ...process.env, DOCKER_HOST: host, DOCKER_BUILDKIT: '1' };
  const docker = (args: string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}) => {
    const r = spawnSync('/usr/bin/docker', args, {
      env: { ...env, ...opts.env },
      input: opts.input,
      maxBuffer: 1 << 28,
    });
    return { code: r.status ?? -1, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? '' };
  };
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 15000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    spawnSync('sh', [
      '-c',
      `grep ' ${dir}' /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l`,
    ]);
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) throw new Error(`dockerd exited: ${log}`);
    if (docker(['version']).code === 0) return { host, env, docker, stop };
    await new Promise((r) => setTimeout(r, 500));
  }
  await stop();
  throw new Error(`dockerd did not start within 60 s: ${log}`);
}
