/**
 * The no-op memo of `kiln build` (docs/cache.md "The no-op memo"): after a build whose next run
 * is a no-op (every step from the cache: see MemoRecorder), the CLI records what that run depends
 * on and prints, under a key of its whole invocation; the launcher (dist/bin/kiln.js) asks
 * `serveNoopMemo` before it loads the CLI bundle, and a memo that still holds answers the rebuild
 * without it.
 *
 * The key: this build of kiln (the CLI bundle's identity, and node's), the working directory, the
 * argv (less a global --profile), the user, whether stdout and stderr are terminals, and the whole
 * environment (less what only says how to report: KILN_PROFILE, KILN_PROFILE_STEPS, KILN_NO_CODE_CACHE, and the
 * shell's own _, OLDPWD, SHLVL). The memo: every path the build's result depends on, by git's
 * index rule (mode, size, mtime, ctime and inode of each path of the context the walk does not
 * ignore, its directories too, so an added or removed file is seen; the Dockerfile and
 * .dockerignore by content digest as well; paths that must stay absent), the store's state (the
 * digest of index.json — tags, bases —, the cache records a rebuild reads, the image's blobs), and
 * the bytes the build wrote to stdout and stderr, in order.
 *
 * Only ever an optimisation: anything unknown, unreadable or different is a miss, silently, and
 * the full path runs. This module imports node's modules, util's profile and the store's layout
 * only: scripts/bundle.mjs bundles it alone, small, for the launcher.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  utimesSync,
  writeSync,
  fstatSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { mark, phaseBetween, startProfile } from '../util/index.js';
import { defaultStoreRoot, storeLayout } from '../store/index.js';

export const MEMO_VERSION = 2;

/** A path's identity, git's index rule (ns times and inode as decimal strings). */
export interface PathIdentity {
  path: string;
  mode: number;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

export interface NoopMemo {
  v: number;
  key: string;
  /** Paths whose identity must be unchanged: the context's and the Dockerfile. */
  paths: PathIdentity[];
  /** Files whose content must be unchanged (sha256 hex): the Dockerfile, .dockerignore, index.json. */
  digests: { path: string; sha256: string }[];
  /** Paths that must exist (the image's blobs). */
  present: string[];
  /**
   * The cache records a rebuild reads, with the inode each had when the build found it held what
   * it used (a record replaced since is another inode): they must be those, and a hit marks them
   * used (LRU), as the full path does.
   */
  records: { path: string; ino: string }[];
  /** Paths that must not exist (a .dockerignore that would be read first). */
  absent: string[];
  /** What the build wrote, in order: fd 1 or 2 and the text. */
  output: { fd: 1 | 2; text: string }[];
  /** --iidfile's path (as given, from the working directory) and the image id written to it. */
  iidfile?: { path: string; imageId: string };
}

/** Environment variables that change how kiln reports, never what it builds. */
const ENV_IGNORED = new Set(['KILN_PROFILE', 'KILN_PROFILE_STEPS', 'KILN_NO_CODE_CACHE', '_', 'OLDPWD', 'SHLVL']);

/** What the launcher knows of the invocation (the key's inputs). */
export interface Invocation {
  /** The CLI bundle's and node's identity (the launcher's). */
  identity: string;
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  uid: number;
  /** isatty(1), isatty(2). */
  ttys: [boolean, boolean];
}

/** The global options of an argv before `build` (undefined: another command, or an argv the memo does not read). */
export function buildInvocation(argv: string[]): { root?: string; profile: boolean; rest: string[] } | undefined {
  let root: string | undefined;
  let profile = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === 'build') {
      const rest = [...argv.slice(0, i).filter((x) => x !== '--profile'), ...argv.slice(i)];
      return { root, profile, rest };
    }
    if (a === '--root' && i + 1 < argv.length) root = argv[++i];
    else if (a.startsWith('--root=')) root = a.slice('--root='.length);
    else if (a === '--profile') profile = true;
    else return undefined; // --debug, --help, -V, another command: the full path
  }
  return undefined;
}

/** The memo's key: sha256 (hex) of everything of the invocation that can change the result. */
export function memoKey(inv: Invocation): string | undefined {
  const parsed = buildInvocation(inv.argv);
  if (!parsed) return undefined;
  const env = Object.entries(inv.env)
    .filter(([k, v]) => v !== undefined && !ENV_IGNORED.has(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      v: MEMO_VERSION,
      identity: inv.identity,
      cwd: inv.cwd,
      argv: parsed.rest,
      uid: inv.uid,
      ttys: inv.ttys,
      env,
    }),
  );
  return h.digest('hex');
}

/** The store root the invocation works on (as the CLI resolves it: --root, KILN_ROOT, the default). */
export function memoStoreRoot(argv: string[], cwd: string): string | undefined {
  const parsed = buildInvocation(argv);
  if (!parsed) return undefined;
  return path.resolve(cwd, parsed.root ?? defaultStoreRoot());
}

export function identityOf(p: string): PathIdentity {
  const st = lstatSync(p, { bigint: true });
  return {
    path: p,
    mode: Number(st.mode),
    size: String(st.size),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
    ino: String(st.ino),
  };
}

function sameIdentity(a: PathIdentity): boolean {
  const b = identityOf(a.path);
  return (
    a.mode === b.mode && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino
  );
}

export function fileSha256(p: string): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex');
}

function missing(p: string): boolean {
  try {
    lstatSync(p);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Whether the memo still holds (any error: it does not). */
export function memoHolds(memo: NoopMemo): boolean {
  try {
    if (memo.v !== MEMO_VERSION) return false;
    for (const p of memo.paths) if (!sameIdentity(p)) return false;
    for (const p of memo.present) statSync(p);
    for (const r of memo.records) if (String(statSync(r.path, { bigint: true }).ino) !== r.ino) return false;
    for (const p of memo.absent) if (!missing(p)) return false;
    for (const d of memo.digests) if (fileSha256(d.path) !== d.sha256) return false;
    return true;
  } catch {
    return false;
  }
}

/** The invocation of this process, with the launcher's identity of the CLI. */
export function currentInvocation(identity: string, argv: string[]): Invocation {
  return {
    identity,
    argv,
    cwd: process.cwd(),
    env: process.env,
    uid: process.getuid?.() ?? -1,
    ttys: [isTerminal(1), isTerminal(2)],
  };
}

/**
 * isatty(fd), without loading node:tty (and node:net) when the descriptor is no character device
 * at all (a pipe, a file: how builds are scripted), ~3 ms of the hit's CPU.
 */
function isTerminal(fd: number): boolean {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  return (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
}

function memoDisabled(): boolean {
  const v = process.env.KILN_NO_MEMO;
  return v !== undefined && v !== '' && v !== '0';
}

/**
 * The launcher's question, before it loads the CLI: when this invocation is a `kiln build` whose
 * memo holds, write what the build wrote (and --iidfile) and return true; else false, having
 * written nothing.
 */
export function serveNoopMemo(identity: string, argv: string[]): boolean {
  const t0 = performance.now();
  let memo: NoopMemo;
  let t1: number, t2: number;
  try {
    if (memoDisabled()) return false;
    const parsed = buildInvocation(argv);
    if (!parsed) return false;
    const inv = currentInvocation(identity, argv);
    const key = memoKey(inv);
    const root = memoStoreRoot(argv, inv.cwd);
    if (!key || !root) return false;
    t1 = performance.now();
    memo = JSON.parse(readFileSync(storeLayout(root).noopMemoFile(key), 'utf8')) as NoopMemo;
    if (memo.key !== key || !memoHolds(memo)) return false;
    t2 = performance.now();
    startProfile(parsed.profile);
    // As the full path writes it (writeFileSync: not atomic, the umask's mode).
    if (memo.iidfile) writeFileSync(path.resolve(inv.cwd, memo.iidfile.path), memo.iidfile.imageId);
  } catch {
    return false;
  }
  // Answered from here on: an output that cannot be written (a closed pipe) ends the command
  // quietly, as it ends the full path (cli/main.ts), never a second answer from the full path.
  try {
    for (const o of memo.output) writeAll(o.fd, o.text);
    // As the full path's cache hits do (cache/records.ts touch): the records stay recently used.
    const now = new Date();
    for (const r of memo.records) utimesSync(r.path, now, now);
  } catch {
    // nothing more to say
  }
  // The launcher's own start (its modules, this one's) until this function, then its parts.
  phaseBetween('launcher and memo module loaded', performance.nodeTiming.bootstrapComplete, t0);
  phaseBetween('memo key (argv, environment)', t0, t1);
  phaseBetween('memo read and checked (stat, digests)', t1, t2);
  phaseBetween('output replayed, records touched', t2, performance.now());
  mark('no-op memo hit');
  return true;
}

/** All of `text` to `fd` (a non-blocking pipe that is full: wait for it, a millisecond at a time). */
function writeAll(fd: number, text: string): void {
  let buf = Buffer.from(text, 'utf8');
  while (buf.length) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

function writeFileSync0600(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  // Not renamed over the old memo: ext4 would start the new file's writeback inside the rename
  // (auto_da_alloc), several ms on a busy disk at the build's end. A reader finding no memo for a
  // moment runs the build.
  rmSync(file, { force: true });
  renameSync(tmp, file);
}

/** The launcher's identity of the CLI, set by runProgram: no identity (dist/src run directly), no memo. */
let launcherIdentity: string | undefined;

export function setLauncherIdentity(identity: string | undefined): void {
  launcherIdentity = identity;
}

/**
 * The key and file of a memo recorded by this process, when one may be: for `argv`, the invocation
 * the memo answers (this process's own argv, or that of its next run: see MemoRecorder.start).
 */
export function memoTarget(argv: string[], storeRoot: string): { key: string; file: string } | undefined {
  if (launcherIdentity === undefined || memoDisabled()) return undefined;
  // In a rootless re-run the launcher's environment is not this process's: never a hit, so none.
  if (process.env.KILN_USERNS !== undefined) return undefined;
  const inv = currentInvocation(launcherIdentity, argv);
  const key = memoKey(inv);
  if (!key || memoStoreRoot(argv, inv.cwd) !== path.resolve(storeRoot)) return undefined;
  return { key, file: storeLayout(storeRoot).noopMemoFile(key) };
}

/** Writes the memo: temp + rename, 0600 (it holds the build's output). */
export function writeMemo(file: string, memo: NoopMemo): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync0600(file, JSON.stringify(memo));
}

/** Margin for the file system's coarse clock: a path changed this close to the build's start is "racy". */
const RACY_MS = 20;
/** The most context paths a memo watches. */
const MAX_WATCHED = 20_000;

/**
 * The argv of the run after a `--no-cache` build that would be its no-op: the same, without the
 * flag (that spelling only: one `--no-cache` token, the rest in its order); undefined when the
 * argv has none or several.
 */
export function withoutNoCache(argv: string[]): string[] | undefined {
  const at = argv.indexOf('--no-cache');
  if (at < 0 || argv.indexOf('--no-cache', at + 1) >= 0) return undefined;
  return [...argv.slice(0, at), ...argv.slice(at + 1)];
}

/** What a build's result depends on and what it made, for its memo (cli/commands/build.ts gathers it). */
export interface MemoState {
  /** The context's paths and the Dockerfile. */
  watched: string[];
  /** Files read whole (Dockerfile, .dockerignore, index.json). */
  digested: string[];
  /** Files whose appearance changes the build. */
  absent: string[];
  /** The image's blobs. */
  present: string[];
  /**
   * The cache records a rebuild reads (engine's BuildResult.rebuildRecords): undefined when a
   * rebuild would not take every step from them, or would not make this image.
   */
  records: { path: string; ino: string }[] | undefined;
  /** The image the build made. */
  imageId: string;
  /** Whether the build printed the image id alone (-q): the no-op's output is then known. */
  quiet: boolean;
  iidfile?: { path: string; imageId: string };
}

/**
 * Records the memo of one `kiln build` (cli/commands/build.ts drives it): captures what the
 * command writes to stdout and stderr from its start, and at its end, when the build's next run
 * is a no-op the memo can answer, writes the memo. `since` is the build's start: a path whose mtime
 * or ctime is not older than it (less the clock's margin) may have changed while the build read
 * it, or may change again within the same clock tick unseen — git's "racy clean" — and then no memo
 * is written.
 *
 * Which run the memo answers: a build whose every step came from the cache records the memo of
 * its own invocation, with what it printed (its next run prints the same). A build that ran steps
 * records it too when its next run is a full cache hit whose output is known without running it:
 * the image id alone (`-q`, and --iidfile) — the progress of a build that ran steps is not the
 * no-op's. A `--no-cache` build's next run with the same argv runs every step again: its memo
 * answers the same argv without `--no-cache` (withoutNoCache), whose steps then all hit the
 * records this build wrote.
 */
export class MemoRecorder {
  private readonly since = BigInt(Date.now() - RACY_MS) * 1_000_000n;
  private readonly output: { fd: 1 | 2; text: string }[] = [];
  private readonly restore: (() => void)[] = [];
  private steps = 0;
  private cachedSteps = 0;

  private constructor(
    private readonly target: { key: string; file: string },
    private readonly noCache: boolean,
  ) {
    for (const [fd, stream] of [
      [1, process.stdout],
      [2, process.stderr],
    ] as const) {
      const write = stream.write;
      const output = this.output;
      stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
        output.push({
          fd,
          text: typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'),
        });
        return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof stream.write;
      this.restore.push(() => {
        stream.write = write;
      });
    }
  }

  /**
   * A recorder for this invocation, or undefined when no memo can be recorded for it. `noCache`:
   * the build runs every step (--no-cache); its memo is that of the same argv without the flag.
   */
  static start(argv: string[], storeRoot: string, opts: { noCache?: boolean } = {}): MemoRecorder | undefined {
    const next = opts.noCache ? withoutNoCache(argv) : argv;
    const target = next && memoTarget(next, storeRoot);
    return target ? new MemoRecorder(target, opts.noCache === true) : undefined;
  }

  /** Counts the steps and those that came from the cache: whether the build ran any. */
  onEvent(e: { type: string }): void {
    if (e.type === 'step-start') this.steps++;
    else if (e.type === 'step-cached') this.cachedSteps++;
  }

  /** Stops capturing. */
  stop(): void {
    for (const r of this.restore.splice(0)) r();
  }

  /**
   * Writes the memo of a successful build whose next run (the target's invocation) is a no-op
   * (see the class). Failures only cost the memo.
   */
  record(state: MemoState | undefined): boolean {
    this.stop();
    try {
      if (!state?.records) return false;
      let output = this.output;
      if (this.noCache || this.steps !== this.cachedSteps) {
        // The no-op's output is known only when it is the image id alone, and this build printed
        // nothing else (no warning, no notice a no-op might not print).
        const id = [{ fd: 1 as const, text: `${state.imageId}\n` }];
        if (!state.quiet || output.some((o) => o.fd !== 1) || output.map((o) => o.text).join('') !== id[0]!.text)
          return false;
        output = id;
      }
      // A context this large costs the check more than the full path's no-op (a stat and ~150 bytes
      // of memo per path, ~1 µs + parsing each): the full path then.
      if (state.watched.length > MAX_WATCHED) return false;
      const watched = state.watched.map(identityOf);
      if (watched.some((p) => BigInt(p.mtimeNs) >= this.since || BigInt(p.ctimeNs) >= this.since)) return false;
      const memo: NoopMemo = {
        v: MEMO_VERSION,
        key: this.target.key,
        paths: watched,
        digests: state.digested.map((p) => ({ path: p, sha256: fileSha256(p) })),
        present: state.present,
        records: state.records,
        absent: state.absent,
        output,
        ...(state.iidfile ? { iidfile: state.iidfile } : {}),
      };
      if (!memo.absent.every(missing)) return false;
      for (const p of memo.present) statSync(p);
      writeMemo(this.target.file, memo);
      return true;
    } catch {
      return false;
    }
  }
}
