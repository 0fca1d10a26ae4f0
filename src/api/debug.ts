/**
 * Failed RUN steps kept by `build({ onError: 'keep' })` (engine/kept-step.ts): enter one, list
 * them, remove them — what `kiln debug` calls.
 */
import {
  debugKeptStep,
  findKeptStep,
  listKeptSteps,
  pruneKeptSteps,
  removeKeptStep,
  type DebugStepOptions,
  type KeptStep,
} from '../engine/index.js';
import { openStore, type StoreOptions } from './store.js';

export type { KeptStep };

export interface DebugOptions extends StoreOptions, DebugStepOptions {}

/**
 * Run a command (default /bin/sh) in a kept step (default: the newest) as the step ran: its user,
 * working directory, environment, --mounts and sandbox mode; `before`: in the state before it.
 * Its changes are thrown away. The command's exit code.
 */
export async function debug(o: DebugOptions = {}): Promise<{ exitCode: number; step: KeptStep }> {
  return debugKeptStep(await openStore(o), o);
}

/** The kept steps, newest first. */
export async function keptSteps(o: StoreOptions = {}): Promise<KeptStep[]> {
  return listKeptSteps((await openStore(o)).root);
}

/** Remove kept steps: those named (ids or unique prefixes), or every one. How many. */
export async function removeKeptSteps(o: StoreOptions & { ids?: string[] } = {}): Promise<number> {
  const store = await openStore(o);
  if (!o.ids) return pruneKeptSteps(store.root);
  for (const id of o.ids) await removeKeptStep(store.root, (await findKeptStep(store.root, id)).id);
  return o.ids.length;
}
