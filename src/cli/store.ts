/** The store a command works on: --root, else KILN_ROOT, else the per-user default. */
import type { Command } from 'commander';
import { Store } from '../store/index.js';
import { globalOptions } from './options.js';

export function openStoreFromCli(cmd: Command): Promise<Store> {
  return Store.open({ root: globalOptions(cmd).root });
}
