/**
 * mount(8) and umount(8) run by one long-lived shell instead of a process spawned from kiln's
 * each time. Node's spawn forks kiln itself (~80 MB mapped) and blocks its event loop until the
 * child has exec'd: ~5-10 ms a call on a busy machine, and a small build makes a mount and an
 * unmount per RUN. The shell forks for each command instead (a small process), and kiln only
 * writes a line and reads the answer. One command at a time (others meanwhile are spawned).
 *
 * The shell reads its commands on stdin and ends when kiln closes it (or dies). Should it be gone
 * (killed by a Ctrl-C sent to the process group, say), each call runs the tool directly, as before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { runCapture } from '../util/index.js';

type RunResult = Awaited<ReturnType<typeof runCapture>>;

const DONE = '@@kiln-mount-done ';
// Each line: a command (quoted words) run in a subshell, its output (stdout and stderr together),
// then the DONE line with its exit code.
const LOOP = `while IFS= read -r line; do out=$(eval "$line" </dev/null 2>&1); code=$?; [ -n "$out" ] && printf '%s\\n' "$out"; printf '${DONE}%s\\n' "$code"; done`;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let shell: { child: ChildProcess } | undefined;
let busy = false;
let broken = false;

function start(): { child: ChildProcess } | undefined {
  if (shell) return shell;
  if (broken) return undefined;
  try {
    const child = spawn('/bin/sh', ['-c', LOOP], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.on('error', () => stop());
    child.on('exit', () => stop());
    child.stdin!.on('error', () => stop()); // EPIPE: the shell is gone
    // Never what keeps kiln running while idle: it ends when kiln does.
    child.unref();
    refs(child, false);
    shell = { child };
    return shell;
  } catch {
    broken = true;
    return undefined;
  }
}

function stop(): void {
  broken = true;
  shell = undefined;
}

/**
 * `tool args…` (mount or umount) in `cwd`: its exit code and what it said (as stderr). While the
 * shell runs another command (an unmount of a big upper dir takes 0.2 s), the tool is spawned
 * directly instead: two stages' mounts never wait for each other.
 */
export async function mountTool(tool: 'mount' | 'umount', args: string[], cwd?: string): Promise<RunResult> {
  const direct = () => runCapture(tool, args, cwd ? { cwd } : {});
  const line = `${cwd ? `cd ${q(cwd)} && ` : ''}${tool} ${args.map(q).join(' ')}`;
  const s = busy || line.includes('\n') ? undefined : start();
  if (!s) return direct();
  busy = true;
  try {
    return await ask(s.child, line);
  } catch {
    return direct();
  } finally {
    busy = false;
  }
}

function ask(child: ChildProcess, line: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (b: Buffer) => {
      text += b.toString('utf8');
      const at = text.lastIndexOf(DONE);
      if (at < 0 || !text.endsWith('\n')) return;
      done();
      const code = Number(text.slice(at + DONE.length).trim());
      resolve({ code, signal: null, stdout: '', stderr: text.slice(0, at) });
    };
    const onGone = () => {
      done();
      reject(new Error('the mount shell ended'));
    };
    const done = () => {
      refs(child, false);
      child.stdout!.off('data', onData);
      child.off('exit', onGone);
    };
    child.stdout!.on('data', onData);
    child.on('exit', onGone);
    // Kiln waits for the answer: until it comes, the pipe keeps the event loop alive.
    refs(child, true);
    child.stdin!.write(`${line}\n`, (e) => e && onGone());
  });
}

/** The shell's pipes hold the event loop open (a command is pending) or not (idle). */
function refs(child: ChildProcess, on: boolean): void {
  for (const p of [child.stdin, child.stdout] as unknown as ({ ref?: () => void; unref?: () => void } | null)[])
    if (on) p?.ref?.();
    else p?.unref?.();
}
