import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { xattr } from '../../../src/util/xattr.js';

const pkg = createRequire(import.meta.url)('fs-xattr') as {
  getAttributeSync(p: string, n: string): Buffer;
  listAttributesSync(p: string): string[];
};

test("xattr(): the addon's calls set, list, read and remove what fs-xattr's own entry point sees", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-xattr-'));
  try {
    const f = path.join(dir, 'f');
    writeFileSync(f, '');
    const x = xattr();
    x.setAttributeSync(f, 'user.kiln.a', 'one');
    x.setAttributeSync(f, 'trusted.overlay.opaque', Buffer.from('y'));
    assert.equal(x.getAttributeSync(f, 'user.kiln.a').toString(), 'one');
    assert.equal(pkg.getAttributeSync(f, 'trusted.overlay.opaque').toString(), 'y');
    assert.deepEqual(x.listAttributesSync(f).sort(), pkg.listAttributesSync(f).sort());
    assert.deepEqual(x.listAttributesSync(f).sort(), ['trusted.overlay.opaque', 'user.kiln.a']);
    x.removeAttributeSync(f, 'user.kiln.a');
    assert.deepEqual(pkg.listAttributesSync(f), ['trusted.overlay.opaque']);
    // A missing attribute throws as the package's calls do (callers tell it by its code).
    assert.throws(
      () => x.getAttributeSync(f, 'user.kiln.none'),
      (e: NodeJS.ErrnoException) => e.code === 'ENODATA',
    );
    assert.throws(() => x.getAttributeSync(path.join(dir, 'missing'), 'user.a'), { code: 'ENOENT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
