/**
 * docker run's rules for a container made from an image: its environment (HOSTNAME, the image's
 * ENV, then -e), its command (entrypoint and CMD, as --entrypoint and arguments change them) and
 * its bind mounts (-v HOST:CONTAINER[:ro]). `kiln run` and the library's `run()` share them.
 */
import * as path from 'node:path';
import { KilnError } from '../util/index.js';
import type { Mount } from './mounts.js';

/** docker's environment for a container: HOSTNAME, then the image's ENV, then -e (later wins). */
export function containerEnv(
  imageEnv: string[],
  flags: string[],
  hostname: string,
  hostEnv: NodeJS.ProcessEnv = process.env,
): string[] {
  const env: string[] = [`HOSTNAME=${hostname}`];
  const set = (kv: string) => {
    const key = kv.slice(0, kv.indexOf('='));
    const i = env.findIndex((x) => x.startsWith(`${key}=`));
    if (i >= 0) env[i] = kv;
    else env.push(kv);
  };
  for (const e of imageEnv) if (e.indexOf('=') > 0) set(e);
  for (const e of flags) {
    const eq = e.indexOf('=');
    if (eq === 0) throw new KilnError('USAGE', `invalid environment variable "${e}": the name is empty`);
    if (eq > 0) set(e);
    else if (hostEnv[e] !== undefined) set(`${e}=${hostEnv[e]}`); // docker: a bare name takes the value from here, or is dropped
  }
  return env;
}

/**
 * The process a container runs: the entrypoint (the image's, or --entrypoint: "" clears it) and
 * then the command given, else the image's CMD (which --entrypoint drops too, as docker).
 */
export function containerArgs(
  image: { Entrypoint?: string[] | null; Cmd?: string[] | null },
  command: string[],
  entrypoint?: string,
): string[] {
  const ep = entrypoint !== undefined ? (entrypoint === '' ? [] : [entrypoint]) : (image.Entrypoint ?? []);
  return [...ep, ...(command.length ? command : entrypoint !== undefined ? [] : (image.Cmd ?? []))];
}

/** -v HOST:CONTAINER[:ro|rw] as docker takes it (a missing host directory is made by the run). */
export function parseVolume(v: string): Mount {
  const parts = v.split(':');
  const [src, dst, mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !src || !dst || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
    throw new KilnError('USAGE', `invalid --volume "${v}": expected /host/path:/container/path[:ro]`);
  }
  if (!dst.startsWith('/'))
    throw new KilnError('USAGE', `invalid --volume "${v}": the container path must be absolute`);
  if (!src.startsWith('/') && !src.startsWith('.')) {
    throw new KilnError(
      'UNSUPPORTED',
      `invalid --volume "${v}": named volumes are not supported, give a host path`,
      {},
      { hint: 'use ./dir for a directory here' },
    );
  }
  return { type: 'bind', source: path.resolve(src), target: dst, readonly: mode === 'ro' };
}
