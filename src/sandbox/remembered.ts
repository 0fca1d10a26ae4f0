/**
 * A probe's success remembered across kiln processes until the next boot: a marker file in
 * $XDG_RUNTIME_DIR/kiln, or /run/kiln for root (tmpfs, gone at reboot), named by a hash of what
 * the answer depends on, the boot and the user namespace. Only success is remembered: a refusal
 * is probed again, so a host that gains a capability is seen at once. Each probe spawns processes
 * and mounts (the overlay probe ~30 ms, the runtime's ~50 ms): a small build paid them every time.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { bootId, singleIdMode, userNamespace } from '../util/index.js';

/**
 * `probe`'s answer (undefined: it works; else why not), or undefined at once when a marker says
 * it worked before on this boot for the same `facts` (what the answer depends on: a binary's path,
 * inode, size and mtime; a directory's device and inode…). `facts` undefined: not remembered.
 */
export async function rememberedSuccess(
  kind: string,
  facts: string | undefined,
  probe: () => Promise<string | undefined>,
): Promise<string | undefined> {
  const marker = facts === undefined ? undefined : markerPath(kind, facts);
  if (marker && existsSync(marker)) return undefined;
  const why = await probe();
  if (!why && marker) {
    try {
      mkdirSync(path.dirname(marker), { recursive: true, mode: 0o700 });
      writeFileSync(marker, '');
    } catch {
      // No place to remember it: probed again next time.
    }
  }
  return why;
}

function markerPath(kind: string, facts: string): string | undefined {
  const base = process.env.XDG_RUNTIME_DIR || (process.getuid?.() === 0 ? '/run' : undefined);
  if (!base) return undefined;
  const boot = bootId();
  if (!boot) return undefined;
  try {
    const ns = userNamespace().nested ? ` userns ${singleIdMode() ? 'single' : 'subids'}` : '';
    const key = createHash('sha256')
      .update(`${facts} ${boot} uid ${process.getuid?.() ?? ''}${ns}`)
      .digest('hex')
      .slice(0, 32);
    return path.join(base, 'kiln', `${kind}-${key}`);
  } catch {
    return undefined;
  }
}
