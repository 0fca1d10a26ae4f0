/**
 * fs-xattr, the native addon, loaded on first use: a command that reads or writes no extended
 * attribute (a fully cached build) does not pay for loading it at start-up.
 */
import { createRequire } from 'node:module';

export interface Xattr {
  getAttributeSync(p: string, n: string): Buffer;
  listAttributesSync(p: string): string[];
  setAttributeSync(p: string, n: string, v: Buffer | string): void;
  removeAttributeSync(p: string, n: string): void;
}

let loaded: Xattr | undefined;

export function xattr(): Xattr {
  return (loaded ??= createRequire(import.meta.url)('fs-xattr') as Xattr);
}
