/**
 * What `kiln build --secret` and `--ssh` give a build, as docker buildx reads those flags: the
 * secret sources and agent sockets RUN --mount=type=secret|ssh take (run-mounts.ts), checked before
 * the build starts, and reading a secret's bytes when a RUN mounts it.
 */
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from '../util/index.js';

/** A secret given to the build: `--secret id=ID[,src=FILE][,env=VAR]`. */
export interface SecretSource {
  id: string;
  /** Read from this file… */
  src?: string;
  /** …or from this variable of kiln's environment. */
  env?: string;
}

/** An SSH agent given to the build: `--ssh ID[=SOCKET]`. */
export interface SshSource {
  id: string;
  /** The agent's socket. */
  socket: string;
}

/** BuildKit's limit on one secret. */
export const MAX_SECRET_SIZE = 500 * 1024;

/**
 * `--secret` as docker buildx reads it: `id=ID[,type=file|env][,src|source=PATH][,env=VAR]`.
 * With only an id, the variable of that name when it is set, else the file of that name (BuildKit's
 * secretsprovider). Files must exist and be at most 500 KiB (checked here, before the build).
 */
export function parseSecretFlag(spec: string): SecretSource {
  const out: SecretSource = { id: '' };
  let type: string | undefined;
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    if (eq < 0)
      throw new KilnError(
        'USAGE',
        `invalid --secret "${spec}": "${field}" must be a key=value pair`,
        {},
        { hint: '--secret id=ID,src=FILE or --secret id=ID,env=VAR' },
      );
    const key = field.slice(0, eq).trim().toLowerCase();
    const value = field.slice(eq + 1);
    if (key === 'id') out.id = value;
    else if (key === 'src' || key === 'source') out.src = value;
    else if (key === 'env') out.env = value;
    else if (key === 'type') {
      if (value !== 'file' && value !== 'env')
        throw new KilnError('USAGE', `invalid --secret "${spec}": type must be file or env`);
      type = value;
    } else
      throw new KilnError(
        'USAGE',
        `invalid --secret "${spec}": unexpected key "${key}"`,
        {},
        { hint: 'keys: id, src (or source), env, type' },
      );
  }
  if (type === 'env' && out.env === undefined) {
    out.env = out.src;
    out.src = undefined;
  }
  if (out.id === '') {
    // buildx: the id defaults to the file's base name or the variable's name.
    if (out.src) out.id = path.basename(out.src);
    else if (out.env) out.id = out.env;
    else
      throw new KilnError(
        'USAGE',
        `invalid --secret "${spec}": an id is needed`,
        {},
        { hint: '--secret id=ID,src=FILE or --secret id=ID,env=VAR' },
      );
  }
  if (out.src === undefined && out.env === undefined) {
    if (process.env[out.id] !== undefined) out.env = out.id;
    else out.src = out.id;
  }
  if (out.src !== undefined) {
    let st;
    try {
      st = statSync(out.src);
    } catch {
      throw new KilnError(
        'NOT_FOUND',
        `secret "${out.id}": cannot read ${out.src}`,
        { path: out.src },
        { hint: 'give an existing file with src=, or a variable with env=' },
      );
    }
    if (!st.isFile()) throw new KilnError('USAGE', `secret "${out.id}": ${out.src} is not a file`, { path: out.src });
    if (st.size > MAX_SECRET_SIZE)
      throw new KilnError('USAGE', `secret "${out.id}" is too big: at most 500 KiB`, { path: out.src });
    out.src = path.resolve(out.src);
  }
  return out;
}

/** `--ssh ID[=SOCKET]` (docker buildx); without a socket, $SSH_AUTH_SOCK. */
export function parseSshFlag(spec: string): SshSource {
  const eq = spec.indexOf('=');
  const id = (eq < 0 ? spec : spec.slice(0, eq)).trim() || 'default';
  const paths =
    eq < 0
      ? []
      : spec
          .slice(eq + 1)
          .split(',')
          .filter(Boolean);
  if (paths.length > 1)
    throw new KilnError(
      'UNSUPPORTED',
      `--ssh ${spec}: kiln forwards one agent socket per id`,
      {},
      { hint: 'load the keys into an ssh-agent and give its socket' },
    );
  const socket = paths[0] ?? process.env.SSH_AUTH_SOCK;
  if (!socket)
    throw new KilnError(
      'USAGE',
      `--ssh ${id}: no socket given and SSH_AUTH_SOCK is not set`,
      {},
      { hint: 'start an ssh-agent, or give --ssh ID=/path/to/agent.sock' },
    );
  let st;
  try {
    st = statSync(socket);
  } catch {
    throw new KilnError('NOT_FOUND', `--ssh ${id}: ${socket} does not exist`, { path: socket });
  }
  if (!st.isSocket())
    throw new KilnError(
      'UNSUPPORTED',
      `--ssh ${id}: ${socket} is not a socket (kiln forwards agent sockets, not key files)`,
      { path: socket },
      { hint: 'ssh-add the key to an ssh-agent and give the agent socket' },
    );
  return { id, socket: path.resolve(socket) };
}

/** The bytes of a secret; undefined when its variable is unset or its file is gone. */
export function readSecret(s: SecretSource): Buffer | undefined {
  if (s.env !== undefined) {
    const v = process.env[s.env];
    return v === undefined ? undefined : Buffer.from(v, 'utf8');
  }
  if (s.src === undefined) return undefined;
  let b: Buffer;
  try {
    b = readFileSync(s.src);
  } catch {
    return undefined;
  }
  if (b.length > MAX_SECRET_SIZE)
    throw new KilnError('USAGE', `secret "${s.id}" is too big: at most 500 KiB`, { path: s.src });
  return b;
}
