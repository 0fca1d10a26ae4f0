/**
 * Heredocs at build time, as BuildKit runs them:
 * - `RUN <<EOF` (the marker alone): the body is the command given to the shell; a body starting
 *   with `#!` is written to a file (mode 0755) mounted read-only at /dev/pipes/ and that file is
 *   run through the shell instead, so its interpreter line counts;
 * - any other RUN line with heredocs: the line, then each body followed by its delimiter, is given
 *   to the shell (which reads the heredocs itself);
 * - `COPY/ADD <<EOF DEST`: each body becomes a file named after its delimiter (mode 0644 before
 *   --chmod, owner 0:0 before --chown), expanded with the stage's variables unless the delimiter
 *   was quoted (the caller passes the bodies already expanded: `expandInstruction`).
 */
import { chmodSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { type CommandForm, type Heredoc, parseHeredocMarker } from '../dockerfile/index.js';
import type { Mount } from '../sandbox/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';

/** Where BuildKit mounts the script of a `RUN <<EOF` whose body starts with `#!`. */
export const HEREDOC_SCRIPT_DIR = '/dev/pipes';

export interface RunArgs {
  args: string[];
  /** A read-only bind of the script directory (shebang heredocs). */
  mounts: Mount[];
  /** Host directories to remove after the run. */
  scratch: string[];
}

/** A fresh private directory under `tmpDir` (removed by the caller). */
export function scratchDir(tmpDir: string, what: string): string {
  const dir = path.join(tmpDir, `tmp-${process.pid}-${what}-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Is the whole command one heredoc marker (`<<EOF`, `<<-"EOF"`)? */
function singleHeredoc(command: string): boolean {
  try {
    return parseHeredocMarker(command.trim()) !== undefined;
  } catch {
    return false;
  }
}

/** The process arguments of a RUN (exec or shell form, heredocs as BuildKit runs them). */
export function runArgs(cmd: CommandForm, shell: string[], tmpDir: string): RunArgs {
  if (cmd.form === 'exec') return { args: cmd.args, mounts: [], scratch: [] };
  if (!cmd.heredocs.length) return { args: [...shell, cmd.command], mounts: [], scratch: [] };
  if (singleHeredoc(cmd.command)) {
    const doc = cmd.heredocs[0]!;
    if (!doc.content.startsWith('#!')) return { args: [...shell, doc.content], mounts: [], scratch: [] };
    const dir = scratchDir(tmpDir, 'heredoc');
    chmodSync(dir, 0o755);
    const name = safeName(doc.name);
    const file = path.join(dir, name);
    writeFileSync(file, doc.content, { mode: 0o755 });
    chmodSync(file, 0o755);
    return {
      args: [...shell, path.posix.join(HEREDOC_SCRIPT_DIR, name)],
      mounts: [{ type: 'bind', source: dir, target: HEREDOC_SCRIPT_DIR, readonly: true }],
      scratch: [dir],
    };
  }
  let full = cmd.command;
  for (const h of cmd.heredocs) full += `\n${h.content}${h.name}`;
  return { args: [...shell, full], mounts: [], scratch: [] };
}

function safeName(name: string): string {
  // A delimiter is one word; one with a slash cannot be a file name of its own.
  return name.replace(/\//g, '_') || 'EOF';
}

/**
 * Write the heredoc sources of a COPY/ADD as files in a new directory under `tmpDir`: returns the
 * directory and the file name of each heredoc source, in order.
 */
export function materializeHeredocs(
  heredocs: Heredoc[],
  sources: string[],
  tmpDir: string,
  mtime: number,
  place: ErrorPlace,
): { dir: string; names: Map<string, string> } {
  const dir = scratchDir(tmpDir, 'heredoc');
  const names = new Map<string, string>();
  let k = 0;
  for (const src of sources) {
    const marker = heredocMarker(src);
    if (!marker) continue;
    const doc = heredocs[k++];
    if (!doc || doc.name !== marker) throw new KilnError('INTERNAL', `heredoc ${src} has no body`, place);
    const name = safeName(doc.name);
    if (names.has(src)) throw new KilnError('BUILD', `the heredoc ${src} is given twice`, place);
    const file = path.join(dir, name);
    writeFileSync(file, doc.content, { mode: 0o644 });
    chmodSync(file, 0o644);
    utimesSync(file, mtime, mtime);
    names.set(src, name);
  }
  return { dir, names };
}

/** The delimiter of a COPY/ADD source that is a heredoc marker, else undefined. */
export function heredocMarker(src: string): string | undefined {
  if (!/^\d*<</.test(src)) return undefined;
  try {
    return parseHeredocMarker(src)?.name;
  } catch {
    return undefined;
  }
}
