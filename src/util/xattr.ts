/**
 * fs-xattr's native addon, loaded on first use: a command that reads or writes no extended
 * attribute (a fully cached build) does not pay for loading it at start-up. The addon itself is
 * loaded, not the package's ES module wrapper: node 20's require of that module costs ~10 ms (on
 * the first COPY's critical path, where a view asks for overlay markers), the addon ~0.2 ms.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

export interface Xattr {
  getAttributeSync(p: string, n: string): Buffer;
  listAttributesSync(p: string): string[];
  setAttributeSync(p: string, n: string, v: Buffer | string): void;
  removeAttributeSync(p: string, n: string): void;
}

/** The addon's synchronous calls (fs-xattr's index.js wraps them after checking its arguments' types). */
interface Addon {
  getSync(p: string, n: string): Buffer;
  listSync(p: string): string[];
  setSync(p: string, n: string, v: Buffer): void;
  removeSync(p: string, n: string): void;
}

let loaded: Xattr | undefined;

export function xattr(): Xattr {
  return (loaded ??= load());
}

/**
 * The addon where node's resolution of 'fs-xattr' would find the package (the nearest node_modules
 * up from here): a few stats, where require.resolve's walk and exports parsing cost 2-3 ms.
 */
function addonPath(require: NodeJS.Require): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'node_modules', 'fs-xattr');
    if (existsSync(pkg)) return path.join(pkg, 'build', 'Release', 'xattr.node');
    if (path.dirname(dir) === dir) break;
  }
  return path.join(path.dirname(require.resolve('fs-xattr')), 'build', 'Release', 'xattr.node');
}

function load(): Xattr {
  const require = createRequire(import.meta.url);
  let addon: Addon;
  try {
    addon = require(addonPath(require)) as Addon;
  } catch {
    // Laid out otherwise than fs-xattr 0.4's package: its own entry point.
    return require('fs-xattr') as Xattr;
  }
  return {
    getAttributeSync: (p, n) => addon.getSync(p, n),
    listAttributesSync: (p) => addon.listSync(p),
    setAttributeSync: (p, n, v) => addon.setSync(p, n, typeof v === 'string' ? Buffer.from(v) : v),
    removeAttributeSync: (p, n) => addon.removeSync(p, n),
  };
}
