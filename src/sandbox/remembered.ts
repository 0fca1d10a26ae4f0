/**
 * A probe's success remembered across kiln processes until the next boot: a marker file in
 * $XDG_RUNTIME_DIR/kiln, or /run/kiln for root (tmpfs, gone at reboot), named by a hash of what
 * the answer depends on, the boot and the user namespace. A success is remembered (an empty
 * marker); a refusal only where the caller says it is settled (rememberRefusal: the marker holds
 * the reason), else it is probed again, so a host that gains a capability is seen at once. Each
 * probe spawns processes and mounts (the overlay probe ~30 ms, the runtime's ~50 ms): a small
 * build paid them every time.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { bootId, singleIdMode, userNamespace } from '../util/index.js';

/**
 * `probe`'s answer (undefined: it works; else why not), or at once the answer a marker holds from
 * earlier on this boot for the same `facts` (what the answer depends on: a binary's path, inode,
 * size and mtime; a directory's device and inode…). `facts` undefined: not remembered.
 */
export async function rememberedSuccess(
  kind: string,
  facts: string | undefined,
  probe: () => Promise<string | undefined>,
): Promise<string | undefined> {
  const marker = facts === undefined ? undefined : markerPath(kind, facts);
  if (marker) {
    let known: string | undefined;
    try {
      known = readFileSync(marker, 'utf8');
    } catch {
      // not known yet
    }
    if (known !== undefined) return known === '' ? undefined : known;
  }
  const why = await probe();
  if (!why && marker) writeMarker(marker, '');
  return why;
}

/**
 * Remember until the next boot that `kind` is refused for `facts`, and why: for a probe whose
 * refusal is settled (the next choice worked, so the host is as it will stay), which would
 * otherwise be paid again by every kiln process.
 */
export function rememberRefusal(kind: string, facts: string | undefined, why: string): void {
  const marker = facts === undefined ? undefined : markerPath(kind, facts);
  if (marker) writeMarker(marker, why || 'refused');
}

/** Written whole (temp + rename): a reader never sees an empty, half-written refusal as a success. */
function writeMarker(marker: string, text: string): void {
  try {
    mkdirSync(path.dirname(marker), { recursive: true, mode: 0o700 });
    const tmp = `${marker}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, marker);
  } catch {
    // No place to remember it: probed again next time.
  }
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
