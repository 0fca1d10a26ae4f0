/**
 * ADD of a git repository, as BuildKit does it (`ADD https://host/repo.git#ref:subdir /dst`,
 * `ADD git@host:repo.git /dst`, `ADD git://host/repo#tag /dst`): the ref (a branch, a tag or a
 * commit; the remote's HEAD when none) is fetched shallow with the git program, submodules too,
 * and the checkout's content (or its subdir) is copied like a directory source. The .git
 * directory is dropped unless `--keep-git-dir=true`.
 *
 * Every file's mtime is the commit's time, so the same commit always gives the same layer (a
 * checkout's own mtimes are the time of the clone). Credentials come from the user's git setup
 * (credential helpers, ssh agent, ~/.ssh); git never prompts.
 */
import { mkdirSync, lstatSync, readdirSync, rmSync, lutimesSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { runCapture, KilnError, type ErrorPlace } from '../util/index.js';

export interface GitSource {
  /** What git fetches from (the URL without its fragment). */
  remote: string;
  /** Branch, tag or commit; undefined: the remote's HEAD. */
  ref?: string;
  /** A directory inside the repository to copy instead of its root. */
  subdir?: string;
}

/**
 * A git source, or undefined for anything else. BuildKit's rule: git://, ssh:// and scp-like
 * `user@host:path` remotes are git; http(s) URLs are git when their path ends in `.git`.
 */
export function parseGitSource(s: string): GitSource | undefined {
  const hash = s.indexOf('#');
  const remote = hash < 0 ? s : s.slice(0, hash);
  const fragment = hash < 0 ? '' : s.slice(hash + 1);
  const isGit =
    /^(git|ssh):\/\/[^/]/i.test(remote) ||
    /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!\/\/)/.test(remote) ||
    (/^https?:\/\/[^/]/i.test(remote) && /\.git\/?$/i.test(new URL(remote, 'http://x').pathname));
  if (!isGit) return undefined;
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const subdir = colon < 0 ? '' : fragment.slice(colon + 1);
  return { remote, ref: ref || undefined, subdir: subdir || undefined };
}

/** The remote as shown in messages: no password. */
function shown(remote: string): string {
  return remote.replace(/^([a-z]+:\/\/[^/:@]+):[^/@]*@/i, '$1:***@');
}

export interface GitCheckout {
  /** A temporary directory holding the checkout (remove it when done). */
  dir: string;
  /** The directory to copy: the checkout or its subdir. */
  root: string;
  commit: string;
  /** The commit's time (seconds): every mtime of the checkout. */
  time: number;
}

/** `checksum`: the commit the ref must resolve to (BuildKit's --checksum for git); it lets the step be cached. */
export async function checkoutGit(o: {
  source: GitSource;
  keepGitDir: boolean;
  checksum?: string;
  tmpDir: string;
  place: ErrorPlace;
}): Promise<GitCheckout> {
  const { remote, ref, subdir } = o.source;
  const what = `ADD ${shown(remote)}${ref ? `#${ref}` : ''}`;
  const dir = path.join(o.tmpDir, `tmp-${process.pid}-addgit-${randomBytes(6).toString('hex')}`);
  const work = path.join(dir, 'checkout');
  mkdirSync(work, { recursive: true });
  const env = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes',
  };
  const git = async (args: string[]) => {
    let r;
    try {
      // git checks files out as 0666/0777 minus the umask: BuildKit's 022, not kiln's own.
      r = await runCapture('git', ['-C', work, ...args], { env, umask: 0o022 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new KilnError('NOT_FOUND', `${what}: ADD of a git repository needs the git program`, o.place, {
          hint: 'apt-get install git',
        });
      throw e;
    }
    return r;
  };
  const must = async (args: string[], doing: string) => {
    const r = await git(args);
    if (r.code !== 0) throw new KilnError('BUILD', `${what}: ${doing} failed: ${lastLine(r.stderr)}`, o.place);
    return r.stdout;
  };
  try {
    await must(['init', '-q'], 'git init');
    await must(['remote', 'add', 'origin', remote], 'git remote add');
    // Shallow fetch of just the ref; a server that refuses a commit id in a shallow fetch gets a
    // full fetch, then the commit is checked out from it.
    const want = ref ?? 'HEAD';
    const shallow = await git(['fetch', '-q', '--depth', '1', '--no-tags', 'origin', want]);
    if (shallow.code === 0) await must(['checkout', '-q', '--detach', 'FETCH_HEAD'], 'git checkout');
    else if (ref && /^[0-9a-f]{7,64}$/i.test(ref)) {
      await must(['fetch', '-q', '--tags', 'origin'], 'git fetch');
      await must(['checkout', '-q', '--detach', ref], `git checkout ${ref}`);
    } else
      throw new KilnError('BUILD', `${what}: git fetch failed: ${lastLine(shallow.stderr)}`, o.place, {
        hint: ref ? `is "${ref}" a branch, tag or commit of that repository?` : undefined,
      });
    if ((await git(['ls-files', '--stage', '--', '.gitmodules'])).stdout.trim())
      await must(['submodule', 'update', '-q', '--init', '--recursive', '--depth', '1'], 'git submodule update');
    const commit = (await must(['rev-parse', 'HEAD'], 'git rev-parse')).trim();
    const pinned = o.checksum?.toLowerCase();
    if (pinned !== undefined && !(pinned.length >= 7 && commit.startsWith(pinned)))
      throw new KilnError(
        'DIGEST',
        `${what}: the checkout is commit ${commit}, not --checksum ${o.checksum}`,
        o.place,
        { hint: '--checksum of a git source is the commit id it must resolve to' },
      );
    const time = Number((await must(['log', '-1', '--format=%ct', 'HEAD'], 'git log')).trim());
    if (!o.keepGitDir) dropGitDirs(work);
    let root = work;
    if (subdir) {
      root = path.resolve(work, subdir.replace(/^\/+/, ''));
      const rel = path.relative(work, root);
      if (rel.startsWith('..') || path.isAbsolute(rel))
        throw new KilnError('BUILD', `${what}: subdir "${subdir}" is outside the repository`, o.place);
      const st = lstatSync(root, { throwIfNoEntry: false });
      if (!st?.isDirectory())
        throw new KilnError(
          'BUILD',
          `${what}: no directory "${subdir}" in the repository at ${commit.slice(0, 12)}`,
          o.place,
        );
    }
    setMtimes(work, time);
    return { dir, root, commit, time };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.at(-1) ?? 'no output';
}

/** .git of the checkout and of its submodules (a file there, pointing into the parent's .git). */
function dropGitDirs(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name === '.git') rmSync(p, { recursive: true, force: true });
    else if (lstatSync(p).isDirectory()) dropGitDirs(p);
  }
}

function setMtimes(dir: string, t: number): void {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (lstatSync(p).isDirectory()) setMtimes(p, t);
    lutimesSync(p, t, t);
  }
  lutimesSync(dir, t, t);
}
