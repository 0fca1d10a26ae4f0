/**
 * User and group resolution through an image's own /etc/passwd and /etc/group, docker's rules:
 * "name", "uid", "name:group", "uid:gid", "name:gid"... A name that the image does not know is an
 * error; a numeric id need not exist. One implementation for USER, COPY --chown and RUN mounts.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { KilnError } from './errors.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' }));
}

export function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

/** Read a file from the first of `roots` (top layer first) that has it. */
function readFromRoots(roots: string[], rel: string): string {
  for (const r of roots) {
    try {
      return readFileSync(path.join(r, rel), 'utf8');
    } catch {
      // not in this one
    }
  }
  return '';
}

const isNum = (s: string) => /^\d+$/.test(s);

/**
 * USER semantics: `spec` as docker takes it. Supplementary groups are those listing the user in
 * /etc/group (as docker does for a named user).
 */
export function resolveUser(rootfs: string | string[], spec: string): ResolvedUser {
  const roots = Array.isArray(rootfs) ? rootfs : [rootfs];
  const s = spec === '' ? 'root' : spec;
  const [u, g] = s.split(':', 2) as [string, string | undefined];
  const passwd = parsePasswd(readFromRoots(roots, 'etc/passwd'));
  const groups = parseGroup(readFromRoots(roots, 'etc/group'));
  let uid: number;
  let gid: number;
  let name: string | undefined;
  let home: string | undefined;
  const pw = isNum(u) ? passwd.find((p) => p.uid === Number(u)) : passwd.find((p) => p.name === u);
  if (isNum(u)) {
    uid = Number(u);
    gid = pw?.gid ?? 0;
    name = pw?.name;
  } else {
    if (!pw) throw new KilnError('NOT_FOUND', `unable to find user ${u}: no matching entries in passwd file`, {}, { hint: 'create the user first (e.g. RUN useradd …) or use a numeric uid' });
    uid = pw.uid;
    gid = pw.gid;
    name = pw.name;
  }
  home = pw?.home;
  if (g !== undefined && g !== '') {
    if (isNum(g)) gid = Number(g);
    else {
      const gr = groups.find((x) => x.name === g);
      if (!gr) throw new KilnError('NOT_FOUND', `unable to find group ${g}: no matching entries in group file`, {}, { hint: 'create the group first or use a numeric gid' });
      gid = gr.gid;
    }
  }
  const additionalGids = name !== undefined && g === undefined ? groups.filter((x) => x.members.includes(name!) && x.gid !== gid).map((x) => x.gid) : [];
  return { uid, gid, additionalGids, home };
}

/** COPY --chown semantics: "user[:group]"; a user alone means its primary group only when named. */
export function resolveChown(rootfs: string | string[], spec: string): { uid: number; gid: number } {
  const [u, g] = spec.split(':', 2) as [string, string | undefined];
  const roots = Array.isArray(rootfs) ? rootfs : [rootfs];
  let uid: number;
  let gid: number;
  if (isNum(u)) {
    uid = Number(u);
    gid = g === undefined ? uid : 0; // docker/BuildKit: --chown=1000 means 1000:1000
  } else {
    const pw = parsePasswd(readFromRoots(roots, 'etc/passwd')).find((p) => p.name === u);
    if (!pw) throw new KilnError('NOT_FOUND', `unable to convert uid/gid chown string to host mapping: can't find uid for user ${u}: no such user: ${u}`, {}, { hint: 'the user must exist in the destination image (/etc/passwd) or be numeric' });
    uid = pw.uid;
    gid = pw.gid;
  }
  if (g !== undefined && g !== '') {
    if (isNum(g)) gid = Number(g);
    else {
      const gr = parseGroup(readFromRoots(roots, 'etc/group')).find((x) => x.name === g);
      if (!gr) throw new KilnError('NOT_FOUND', `unable to convert uid/gid chown string to host mapping: can't find gid for group ${g}: no such group: ${g}`);
      gid = gr.gid;
    }
  }
  return { uid, gid };
}
