/** The store an API call works on: one the caller opened, else the one at `root` (default: the CLI's). */
import { Store } from '../store/index.js';

export interface StoreOptions {
  /**
   * The store's directory. Default: $KILN_ROOT, else /var/lib/kiln for root, else
   * $XDG_DATA_HOME/kiln (as the CLI's --root).
   */
  root?: string;
  /** A store already open (from `openStore`): `root` is then not read. */
  store?: Store;
}

/** Opens (creating when missing) the store at `root`, or returns the one given. */
export function openStore(o: StoreOptions = {}): Promise<Store> {
  return o.store ? Promise.resolve(o.store) : Store.open({ root: o.root });
}
