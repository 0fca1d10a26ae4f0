/**
 * Users and groups of an image, resolved through its own /etc/passwd and /etc/group — one
 * implementation for USER (RUN and `kiln run`), COPY/ADD --chown and RUN --mount uid/gid.
 *
 * The rules are runc's libcontainer GetExecUser, which docker run and BuildKit's RUN both use:
 *   ""            → root (uid 0, its passwd entry if any)
 *   "name"        → uid, gid and home of the passwd entry; error when there is none
 *   "uid"         → that uid; gid and home of its passwd entry, else gid 0 and home "/"
 *   "x:group"     → gid of the group named so (error when none) or the numeric gid as given
 *   supplementary groups: only with no explicit group, every group that lists the user's name
 *   "uid:gid" (both numeric, or "root") → exactly those, nothing read (BuildKit's fast path)
 * COPY --chown follows BuildKit's file operation: a numeric user alone means uid:uid, a name takes
 * its passwd uid and gid; "user:" means group 0. Unlike BuildKit (which silently uses 0), a name
 * the image does not know is an error, with the message of docker's classic builder.
 *
 * The files are read from a root directory (a mounted or flattened rootfs) or from a stack of
 * unpacked layer directories with overlayfs markers (a 0/0 character device hides a path below it,
 * trusted.overlay.opaque hides a directory's lower contents). Symlinks are followed inside the
 * root, never out of it.
 */
import { lstatSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from './errors.js';
import { overlayXattrPrefix } from './userns.js';
import { xattr } from './xattr.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (in /etc/group order). */
  additionalGids: number[];
  /** Home directory from passwd, "/" when the user has no entry (runc's default for HOME). */
  home: string;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** A root directory, or layer directories bottom → top (the order store.snapshots returns). */
export type UserFilesRoot = string | string[];

/** Where /etc/passwd and /etc/group are read: a root or layer dirs, or a reader of the image's files (sandbox's RootFs). */
export type UserFiles = UserFilesRoot | { readImageFile(abs: string): string | undefined };

const MAX_ID = 2147483647;

/** Lines as libcontainer reads them: colon-separated, blank lines and comments skipped, bad numbers skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    const f = l.split(':');
    const uid = atoi(f[2] ?? '');
    const gid = atoi(f[3] ?? '');
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0] ?? '', uid, gid, home: f[5] ?? '' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    const f = l.split(':');
    const gid = atoi(f[2] ?? '');
    if (gid === undefined) continue;
    out.push({ name: f[0] ?? '', gid, members: f[3] ? f[3].split(',') : [] });
  }
  return out;
}

/** Go's strconv.Atoi for the values that matter here (optional sign, decimal digits). */
function atoi(s: string): number | undefined {
  return /^[+-]?\d+$/.test(s) ? Number(s) : undefined;
}

/** BuildKit's parseUID: "root" or an unsigned 32-bit number. */
function fastId(s: string): number | undefined {
  if (s === 'root') return 0;
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function checkRange(n: number, spec: string): number {
  if (n < 0 || n > MAX_ID)
    throw new KilnError('INVALID', `invalid user "${spec}": uids and gids must be in range 0-${MAX_ID}`);
  return n;
}

function isOpaque(p: string): boolean {
  try {
    return xattr().getAttributeSync(p, `${overlayXattrPrefix()}opaque`).toString() === 'y';
  } catch {
    return false;
  }
}

/** Where a path of the image is: its real path in the root and, when it exists, its host path and lstat. */
export interface ImagePath {
  /** Relative to the root, every symlink on the way resolved inside the root; missing components kept as given. */
  rel: string;
  host?: string;
  stat?: Stats;
}

/**
 * Resolve `abs` (an absolute path inside the image) in `root`, following symlinks as the
 * container would (the last one too unless `followLast` is false) but never leaving the root.
 */
export function resolveInImage(root: UserFilesRoot, abs: string, opts: { followLast?: boolean } = {}): ImagePath {
  const followLast = opts.followLast ?? true;
  const layers = Array.isArray(root) ? [...root].reverse() : [root]; // top first
  const stack = Array.isArray(root);
  const todo = abs.split('/').filter((x) => x && x !== '.');
  const done: string[] = [];
  let hops = 0;
  let last: { host: string; stat: Stats } | undefined = stack
    ? undefined
    : { host: root as string, stat: lstatSync(root as string) };
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const rel = [...done, part].join('/');
    // The topmost layer that has the path decides what it is; a whiteout, a non-directory or an
    // opaque directory above hides the layers below.
    let found: { host: string; stat: Stats } | undefined;
    for (const layer of layers) {
      const host = path.join(layer, rel);
      let st;
      try {
        st = lstatSync(host);
      } catch {
        if (stack && hiddenBelow(layer, done)) break;
        continue;
      }
      if (stack && st.isCharacterDevice() && st.rdev === 0) break;
      found = { host, stat: st };
      break;
    }
    if (!found) return { rel: joinParts([...done, part, ...todo]) };
    if (found.stat.isSymbolicLink() && (todo.length || followLast)) {
      if (++hops > 40) return { rel: joinParts([...done, part, ...todo]) }; // ELOOP: as missing
      const target = readlinkSync(found.host);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((x) => x && x !== '.'));
      continue;
    }
    done.push(part);
    last = found;
    if (todo.length && !found.stat.isDirectory()) return { rel: joinParts([...done, ...todo]) }; // ENOTDIR: as missing
  }
  return { rel: done.join('/'), host: last?.host, stat: last?.stat };
}

/** Path parts joined, ".." taken as a step up that stops at the root. */
function joinParts(parts: string[]): string {
  const out: string[] = [];
  for (const p of parts) {
    if (p === '..') out.pop();
    else if (p && p !== '.') out.push(p);
  }
  return out.join('/');
}

/** The host path of `abs` (inside the image) in `root`, symlinks followed inside it; undefined when missing. */
export function findInRoot(root: UserFilesRoot, abs: string): string | undefined {
  return resolveInImage(root, abs).host;
}

/**
 * Does `layer` hide the lower layers' contents of directory `dirParts`? It does when a component
 * on the way is not a directory in it (a whiteout or a file replaced the directory) or is an
 * opaque directory.
 */
function hiddenBelow(layer: string, dirParts: string[]): boolean {
  for (let i = 1; i <= dirParts.length; i++) {
    const p = path.join(layer, ...dirParts.slice(0, i));
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return false; // this layer does not have the directory: it changes nothing below it
    }
    if (!st.isDirectory()) return true;
    if (isOpaque(p)) return true;
  }
  return false;
}

/** Contents of a file of the image, or undefined when it does not exist (or is not a readable file). */
export function readImageFile(root: UserFiles, abs: string): string | undefined {
  if (typeof root === 'object' && !Array.isArray(root)) return root.readImageFile(abs);
  const host = findInRoot(root, abs);
  if (!host) return undefined;
  try {
    if (!lstatSync(host).isFile()) return undefined;
    return readFileSync(host, 'utf8');
  } catch {
    return undefined;
  }
}

/** USER semantics (RUN, `kiln run -u`): see the module comment. */
export function resolveUser(root: UserFiles, spec: string): ResolvedUser {
  const colon = spec.indexOf(':');
  const userArg = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? undefined : spec.slice(colon + 1);
  const groupArg = rest === undefined ? '' : rest.split(':')[0]!;
  const passwdText = readImageFile(root, '/etc/passwd');
  const passwd = passwdText === undefined ? undefined : parsePasswd(passwdText);
  const homeOf = (uid: number) => passwd?.find((p) => p.uid === uid)?.home || '/';

  // BuildKit's fast path: both parts given as numbers (or "root"); nothing is looked up but HOME.
  if (spec !== '' && rest !== undefined) {
    const u = fastId(userArg);
    const g = fastId(rest);
    if (u !== undefined && g !== undefined)
      return { uid: checkRange(u, spec), gid: checkRange(g, spec), additionalGids: [], home: homeOf(u) };
  }

  const uidArg = atoi(userArg);
  const gidArg = atoi(groupArg);
  let uid = 0;
  let gid = 0;
  let home = '/';
  let matched: string | undefined;
  const users = (passwd ?? []).filter((u) =>
    userArg === '' ? u.uid === 0 : uidArg !== undefined ? u.uid === uidArg : u.name === userArg,
  );
  if (users.length) {
    matched = users[0]!.name;
    uid = users[0]!.uid;
    gid = users[0]!.gid;
    home = users[0]!.home || '/';
  } else if (userArg !== '') {
    if (uidArg === undefined) {
      throw new KilnError(
        'NOT_FOUND',
        `unable to find user ${userArg}: no matching entries in passwd file`,
        {},
        { hint: 'create the user in the image first (e.g. RUN useradd …) or use a numeric uid' },
      );
    }
    uid = checkRange(uidArg, spec);
  }

  // A missing /etc/group reads as an empty one (libcontainer ignores the read error).
  const groups = parseGroup(readImageFile(root, '/etc/group') ?? '');
  let additionalGids: number[] = [];
  if (groupArg !== '') {
    const g = groups.find((x) => (gidArg !== undefined ? x.gid === gidArg : x.name === groupArg));
    if (g) gid = g.gid;
    else if (gidArg === undefined) {
      throw new KilnError(
        'NOT_FOUND',
        `unable to find group ${groupArg}: no matching entries in group file`,
        {},
        { hint: 'create the group in the image first (e.g. RUN groupadd …) or use a numeric gid' },
      );
    } else gid = checkRange(gidArg, spec);
  } else if (matched !== undefined) {
    // Supplementary groups only in the implicit form, as libcontainer.
    additionalGids = groups.filter((x) => x.members.includes(matched!)).map((x) => x.gid);
  }
  return { uid, gid, additionalGids, home };
}

/** COPY/ADD --chown semantics: see the module comment. */
export function resolveChown(root: UserFiles, spec: string): { uid: number; gid: number } {
  const colon = spec.indexOf(':');
  const u = colon < 0 ? spec : spec.slice(0, colon);
  const g = colon < 0 ? undefined : spec.slice(colon + 1);
  if (u === '')
    throw new KilnError(
      'INVALID',
      `invalid --chown "${spec}": a user is required`,
      {},
      { hint: 'use --chown=user[:group] or --chown=uid[:gid]' },
    );
  let uid: number;
  let gid: number;
  if (/^\d+$/.test(u)) {
    uid = checkRange(Number(u), spec);
    gid = uid;
  } else {
    const text = readImageFile(root, '/etc/passwd');
    const pw = text === undefined ? undefined : parsePasswd(text).find((p) => p.name === u);
    if (!pw) {
      throw new KilnError(
        'NOT_FOUND',
        `unable to convert uid/gid chown string to host mapping: can't find uid for user ${u}: no such user: ${u}`,
        {},
        { hint: 'the user must exist in the destination image (/etc/passwd) or be given as a number' },
      );
    }
    uid = pw.uid;
    gid = pw.gid;
  }
  if (g !== undefined) {
    if (g === '') gid = 0;
    else if (/^\d+$/.test(g)) gid = checkRange(Number(g), spec);
    else {
      const text = readImageFile(root, '/etc/group');
      const gr = text === undefined ? undefined : parseGroup(text).find((x) => x.name === g);
      if (!gr) {
        throw new KilnError(
          'NOT_FOUND',
          `unable to convert uid/gid chown string to host mapping: can't find gid for group ${g}: no such group: ${g}`,
          {},
          { hint: 'the group must exist in the destination image (/etc/group) or be given as a number' },
        );
      }
      gid = gr.gid;
    }
  }
  return { uid, gid };
}
