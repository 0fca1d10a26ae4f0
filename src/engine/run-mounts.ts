/**
 * RUN --mount (BuildKit's run mounts) → the sandbox's mounts plus additions to RUN's environment:
 *
 * - cache: a directory kept in the store between builds, STORE/cache-mounts/<sha256 of the key>/,
 *   the key being the id (default: the target) plus, as BuildKit, what the cache starts from
 *   (from=/source= and uid/gid/mode). Never part of a layer. Sharing (shared, locked, private),
 *   holders and pruning: cache-mounts.ts.
 * - bind: the build context (default), a stage or an image (`from=`), `source` (default the root)
 *   resolved inside it without following symlinks out of it; read-only unless `rw`, whose writes
 *   are thrown away. From the context, .dockerignore'd files are not there (as BuildKit).
 * - tmpfs: a fresh tmpfs (`size`).
 * - secret: `--secret id=ID[,src=FILE|,env=VAR]` of `kiln build` (run-flags.ts); a file (default
 *   /run/secrets/<id>, mode 0400, uid/gid 0) from a private tmpfs directory (/dev/shm), and/or an
 *   environment variable (`env=`). The bytes never reach a layer (mount points stay out of it),
 *   the config, the history (BuildKit's `RUN …` text has no mount flags) or a cache key (keys see
 *   the mount options, not the content). A missing secret is an error when `required`, else the
 *   mount is skipped.
 * - ssh: `--ssh ID[=SOCKET]` (default $SSH_AUTH_SOCK): a socket (default
 *   /run/buildkit/ssh_agent.N, mode 0600) that forwards each connection to the caller's agent
 *   (ssh-agent-proxy.ts);
 *   SSH_AUTH_SOCK points at the first one unless the stage sets it.
 *
 * Relative targets are relative to the working directory (BuildKit).
 */
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeSync,
  promises as fsp,
} from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { type MountSpec } from '../dockerfile/index.js';
import { type Descriptor } from '../image/index.js';
import type { BuildContext } from '../context/index.js';
import {
  openView,
  resolveInRoot,
  makePrivateDir as makePrivateDirIn,
  sweepPrivateDirs,
  type Mount,
} from '../sandbox/index.js';
import { type Store } from '../store/index.js';
import { sha256, type Digest, KilnError, type ErrorPlace, runCapture, lchownInNamespace } from '../util/index.js';
import { holdCache } from './cache-mounts.js';
import { readSecret, type SecretSource, type SshSource } from './run-flags.js';
import { agentProxy } from './ssh-agent-proxy.js';

// Their owners' names, reachable from here as before (cli/ imports them from this module).
export { cacheMountsDir, pruneCacheMounts } from './cache-mounts.js';
export { MAX_SECRET_SIZE, parseSecretFlag, parseSshFlag, type SecretSource, type SshSource } from './run-flags.js';

/** An image's filesystem a from= names. */
export interface FromSource {
  layers: Descriptor[];
  diffIds: Digest[];
}

export interface RunMountsRequest {
  /** The RUN's mounts, expanded. */
  specs: MountSpec[];
  place: ErrorPlace;
  store: Store;
  ctx: BuildContext;
  /** The RUN's working directory (relative targets). */
  workdir: string;
  /** RUN's environment so far (KEY=VALUE): SSH_AUTH_SOCK is not overridden. */
  env: string[];
  /** The filesystem of the stage or image the i-th mount with a from= names. */
  from(value: string, index: number): Promise<FromSource>;
  secrets?: SecretSource[];
  ssh?: SshSource[];
  signal?: AbortSignal;
}

export interface RunMounts {
  mounts: Mount[];
  /** RUN's environment with the secrets' variables and SSH_AUTH_SOCK. */
  env: string[];
  /** Unmount views, close agent proxies, remove secret files, release cache holds. Idempotent. */
  release(): Promise<void>;
}

/** Turn a RUN's mount specs into sandbox mounts; release() once the RUN is over, also on error. */
export async function prepareRunMounts(req: RunMountsRequest): Promise<RunMounts> {
  const releases: (() => Promise<void> | void)[] = [];
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    for (const r of releases.reverse()) {
      try {
        await r();
      } catch {
        // best effort: the rest still goes
      }
    }
  };
  const mounts: Mount[] = [];
  let env = [...req.env];
  const setEnv = (k: string, v: string) => {
    env = env.filter((e) => !e.startsWith(`${k}=`));
    env.push(`${k}=${v}`);
  };
  const err = (msg: string, hint?: string) => new KilnError('BUILD', msg, req.place, hint ? { hint } : {});
  const targetOf = (t: string) => {
    const abs = path.posix.resolve('/', req.workdir || '/', t);
    if (abs === '/') throw err(`invalid mount target "${t}": cannot mount over /`);
    return abs;
  };
  let privDir: string | undefined;
  const priv = () => {
    if (!privDir) {
      privDir = makePrivateDir();
      const d = privDir;
      releases.push(() => rmSync(d, { recursive: true, force: true }));
    }
    return privDir;
  };
  try {
    let fromIndex = 0;
    let sshIndex = 0;
    const lockedKeys = new Set<string>();
    let firstSsh: string | undefined;
    for (const m of req.specs) {
      const fromNo = (m.type === 'bind' || m.type === 'cache') && m.from !== undefined ? fromIndex++ : -1;
      switch (m.type) {
        case 'tmpfs':
          mounts.push({ type: 'tmpfs', target: targetOf(m.target), size: m.size });
          break;
        case 'bind': {
          const target = targetOf(m.target);
          let source: string;
          if (m.from !== undefined) {
            const fs = await req.from(m.from, fromNo);
            const view = await openView(req.store, fs.layers, fs.diffIds);
            releases.push(() => view.close());
            source = await sourceIn(view.root, m.source, `${m.from}`, req.place);
          } else {
            source = await contextSource(req.ctx, m.source, req.store.tmpDir, req.place, releases);
          }
          mounts.push({ type: 'bind', source, target, readonly: !m.readwrite, discardWrites: m.readwrite });
          break;
        }
        case 'cache': {
          const target = targetOf(m.target);
          const id = m.id || m.target;
          let seed: FromSource | undefined;
          let keyParts = [`id=${id}`];
          if (m.from !== undefined) {
            seed = await req.from(m.from, fromNo);
            keyParts.push(`from=${sha256(seed.diffIds.join(','))}`, `source=${normalSource(m.source)}`);
          } else if (m.source !== undefined) keyParts.push(`source=${normalSource(m.source)}`);
          if (m.uid !== undefined || m.gid !== undefined || m.mode !== undefined)
            keyParts.push(`owner=${m.uid ?? 0}:${m.gid ?? 0}:${(m.mode ?? 0o755).toString(8)}`);
          keyParts = keyParts.sort();
          if (m.sharing === 'locked') {
            if (lockedKeys.has(keyParts.join('\n')))
              throw err(`cache "${id}" is mounted twice with sharing=locked in one RUN: it would wait for itself`);
            lockedKeys.add(keyParts.join('\n'));
          }
          const hold = await holdCache(req.store.root, keyParts.join('\n'), id, m.sharing, req.signal);
          releases.push(() => hold.release());
          const data = path.join(hold.dir, 'data');
          if (!existsSync(data)) {
            const tmp = path.join(hold.dir, `data-${randomBytes(4).toString('hex')}`);
            if (seed) {
              const view = await openView(req.store, seed.layers, seed.diffIds);
              try {
                const src = await sourceIn(view.root, m.source, m.from!, req.place);
                if (statSync(src).isDirectory()) {
                  const r = await runCapture('cp', ['-a', '--reflink=auto', '--', src, tmp]);
                  if (r.code !== 0) throw err(`cannot fill the cache mount ${id} from ${m.from}: ${r.stderr.trim()}`);
                } else throw err(`cache mount ${id}: source "${m.source}" in ${m.from} is not a directory`);
              } finally {
                await view.close();
              }
            } else mkdirSync(tmp);
            if (!seed || m.uid !== undefined || m.gid !== undefined || m.mode !== undefined) {
              chmodSync(tmp, m.mode ?? 0o755);
              lchownInNamespace(tmp, m.uid ?? 0, m.gid ?? 0);
            }
            // Two shared users may fill it at once: the first rename wins.
            await fsp.rename(tmp, data).catch(async (e: NodeJS.ErrnoException) => {
              await fsp.rm(tmp, { recursive: true, force: true });
              if (!existsSync(data)) throw e;
            });
          }
          // Without from=, source= is a sub-directory of the cache (BuildKit's SourcePath).
          const sub = !seed && m.source !== undefined ? normalSource(m.source) : '';
          const dir = sub ? path.join(data, sub) : data;
          if (sub) mkdirSync(dir, { recursive: true });
          mounts.push({ type: 'cache', source: dir, target, readonly: m.readonly });
          break;
        }
        case 'secret': {
          const id = m.id || (m.target ? path.posix.basename(m.target) : undefined);
          if (!id) throw err('secret mount needs an id or a target');
          const target = m.target
            ? targetOf(m.target)
            : m.env === undefined
              ? `/run/secrets/${path.posix.basename(id)}`
              : undefined;
          const src = req.secrets?.find((s) => s.id === id);
          const bytes = src ? readSecret(src) : undefined;
          if (bytes === undefined) {
            if (m.required)
              throw err(
                `secret "${id}" is required but was not given to the build`,
                `pass it with --secret id=${id},src=FILE or --secret id=${id},env=VAR`,
              );
            break; // optional and missing: no mount, no variable (BuildKit)
          }
          if (target) {
            const file = path.join(priv(), `secret-${randomBytes(6).toString('hex')}`);
            const fd = openSync(file, 'wx', 0o600);
            try {
              writeSync(fd, bytes);
            } finally {
              closeSync(fd);
            }
            lchownInNamespace(file, m.uid ?? 0, m.gid ?? 0);
            chmodSync(file, m.mode ?? 0o400);
            mounts.push({ type: 'bind', source: file, target, readonly: true });
          }
          if (m.env !== undefined) setEnv(m.env, bytes.toString('utf8'));
          break;
        }
        case 'ssh': {
          const id = m.id || 'default';
          const target = m.target ? targetOf(m.target) : `/run/buildkit/ssh_agent.${sshIndex}`;
          sshIndex++;
          firstSsh ??= target;
          const src = req.ssh?.find((s) => s.id === id);
          if (!src) {
            if (m.required)
              throw err(
                `ssh agent "${id}" is required but was not given to the build`,
                `pass it with --ssh ${id}[=SOCKET] (default: $SSH_AUTH_SOCK)`,
              );
            break;
          }
          const sock = path.join(priv(), `ssh-${sshIndex}.sock`);
          const proxy = await agentProxy(src.socket, sock);
          releases.push(() => proxy.close());
          lchownInNamespace(sock, m.uid ?? 0, m.gid ?? 0);
          chmodSync(sock, m.mode ?? 0o600);
          mounts.push({ type: 'bind', source: sock, target });
          break;
        }
      }
    }
    if (firstSsh !== undefined && !env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) setEnv('SSH_AUTH_SOCK', firstSsh);
    const seen = new Set<string>();
    for (const mt of mounts) {
      if (seen.has(mt.target)) throw err(`two mounts at ${mt.target}`);
      seen.add(mt.target);
    }
  } catch (e) {
    await release();
    throw e;
  }
  return { mounts, env, release };
}

function normalSource(s: string | undefined): string {
  return path.posix
    .normalize(`/${s ?? ''}`)
    .slice(1)
    .replace(/\/+$/, '');
}

/** A path inside a stage's or image's filesystem, its symlinks resolved inside it. */
async function sourceIn(root: string, source: string | undefined, what: string, place: ErrorPlace): Promise<string> {
  let real: string;
  try {
    real = await resolveInRoot(root, `/${normalSource(source)}`);
  } catch (e) {
    throw new KilnError('BUILD', `mount source "${source}" in ${what}: ${(e as Error).message}`, place);
  }
  const abs = path.join(root, real);
  if (!existsSync(abs)) throw new KilnError('NOT_FOUND', `mount source "${source ?? '/'}" not found in ${what}`, place);
  return abs;
}

/**
 * A bind source in the build context: symlinks resolved inside the context (never out of it),
 * .dockerignore'd paths absent. A directory with ignored files inside is given as a filtered copy
 * (hard links where possible), as BuildKit only ever sees the files the context sends.
 */
async function contextSource(
  ctx: BuildContext,
  source: string | undefined,
  tmpDir: string,
  place: ErrorPlace,
  releases: (() => Promise<void> | void)[],
): Promise<string> {
  let real: string;
  try {
    real = await resolveInRoot(ctx.root, `/${normalSource(source)}`);
  } catch (e) {
    throw new KilnError('BUILD', `bind source "${source}": ${(e as Error).message}`, place);
  }
  const abs = path.join(ctx.root, real);
  let st;
  try {
    st = lstatSync(abs);
  } catch {
    st = undefined;
  }
  if (!st || (real !== '' && ctx.ignores(real))) {
    throw new KilnError('NOT_FOUND', `bind source "${source ?? '/'}" not found in the build context`, place, {
      hint: 'check the path (relative to the context) and .dockerignore',
    });
  }
  if (!st.isDirectory() || !anyIgnored(ctx, abs, real)) return abs;
  const copy = path.join(tmpDir, `tmp-${process.pid}-bind-${randomBytes(6).toString('hex')}`);
  releases.push(() => fsp.rm(copy, { recursive: true, force: true }));
  mkdirSync(copy, { recursive: true });
  chmodSync(copy, st.mode & 0o7777);
  for (const e of ctx.walk(real)) {
    const rel = real === '' ? e.rel : e.rel.slice(real.length + 1);
    const to = path.join(copy, rel);
    if (e.stat.isDirectory()) {
      mkdirSync(to, { recursive: true });
      chmodSync(to, e.stat.mode & 0o7777);
    } else {
      mkdirSync(path.dirname(to), { recursive: true });
      if (e.stat.isSymbolicLink()) symlinkSync(readlinkSync(e.abs), to);
      else if (e.stat.isFile()) {
        try {
          linkSync(e.abs, to);
        } catch {
          copyFileSync(e.abs, to);
          chmodSync(to, e.stat.mode & 0o7777);
        }
      }
    }
  }
  return copy;
}

function anyIgnored(ctx: BuildContext, abs: string, rel: string): boolean {
  for (const d of readdirSync(abs, { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (ctx.ignores(r)) return true;
    if (d.isDirectory() && anyIgnored(ctx, path.join(abs, d.name), r)) return true;
  }
  return false;
}

/**
 * A directory only root can enter, on a tmpfs when there is one (/dev/shm), for secret files and
 * agent sockets. Those of kiln processes that are gone are removed first.
 */
function makePrivateDir(): string {
  sweepPrivateDirs();
  return makePrivateDirIn('run');
}
