/**
 * WORKDIR's directory: made when missing, owned by the current USER (as BuildKit does), in a
 * layer of its own; nothing when it exists. The config change is config-step.ts's.
 */
import * as path from 'node:path';
import { type LayerInfo, type EntrySpec } from '../layer/index.js';
import { closeViewLater, resolveInFs } from '../sandbox/index.js';
import { type ErrorPlace, resolveChown } from '../util/index.js';
import { parentEntries } from './copy.js';
import { addLayer, destinationView, type StageState, type StepOptions } from './stage-state.js';

/** Make the stage's working directory (config.WorkingDir, already set) where missing: its layer, if any. */
export async function makeWorkdir(
  o: StepOptions,
  state: StageState,
  snapshotsAhead: boolean,
  place: ErrorPlace,
): Promise<LayerInfo | undefined> {
  const c = (state.config.config ??= {});
  const dir = path.posix.resolve(c.WorkingDir || '/');
  const view = await destinationView(o.store, state, [dir], snapshotsAhead);
  const entries: EntrySpec[] = [];
  try {
    const real = resolveInFs(view.fs, dir);
    // BuildKit's mkdir takes USER as a file operation's owner (--chown rules: "1000" is 1000:1000).
    const owner = c.User ? resolveChown(view.fs, c.User) : { uid: 0, gid: 0 };
    const mtime = o.sourceDateEpoch ?? Math.floor(Date.now() / 1000);
    for (let d = real; d !== '' && d !== '.'; d = path.posix.dirname(d) === '.' ? '' : path.posix.dirname(d)) {
      if (view.fs.lstat(d)) break;
      entries.unshift({ path: d, type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime });
    }
    // Its existing parents go in the layer as they are (else an unpacker makes them root's).
    if (entries.length) entries.unshift(...parentEntries(view.fs, [entries[0]!.path], owner, mtime));
  } finally {
    closeViewLater(view);
  }
  return entries.length ? addLayer(o, state, entries, place) : undefined;
}
