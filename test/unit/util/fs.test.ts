import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { removeTree } from '../../../src/util/fs.js';

test('removeTree: a tree of directories, files, symlinks (not followed) and an empty directory is gone; a missing path is no error', async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'kiln-rmtree-'));
  try {
    const outside = path.join(base, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'kept'), 'x');
    const root = path.join(base, 'root');
    // More entries than one turn of the event loop (REMOVE_TURN), over several directories.
    for (let d = 0; d < 3; d++) {
      mkdirSync(path.join(root, `d${d}`, 'sub'), { recursive: true });
      for (let i = 0; i < 400; i++) writeFileSync(path.join(root, `d${d}`, `f${i}`), String(i));
    }
    mkdirSync(path.join(root, 'empty'));
    symlinkSync(outside, path.join(root, 'link-to-dir'));
    symlinkSync('/nonexistent', path.join(root, 'dangling'));
    let turns = 0;
    const ticking = setInterval(() => turns++, 0);
    await removeTree(`${root}/`);
    clearInterval(ticking);
    assert.equal(existsSync(root), false);
    assert.equal(existsSync(path.join(outside, 'kept')), true, 'a symlink to a directory is removed, not followed');
    assert.ok(turns > 0, 'the event loop ran while the tree was removed');
    await removeTree(root);
    const file = path.join(base, 'file');
    writeFileSync(file, 'x');
    await removeTree(file);
    assert.equal(existsSync(file), false);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
