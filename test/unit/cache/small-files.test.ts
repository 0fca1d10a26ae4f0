/**
 * The cache's small files: replaceFile (explain records) gives the new content under the target's
 * name, made whole under a temp name first (a new inode, never the old file rewritten in place),
 * and leaves no temp file, whether or not the target existed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { replaceFile } from '../../../src/cache/small-files.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-small-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('replaceFile: a new file, then one replaced, each whole, no temp file left', () => {
  const target = path.join(dir, 'explain', 'a.json');
  replaceFile(target, '{"v":1}');
  assert.equal(readFileSync(target, 'utf8'), '{"v":1}');
  const first = statSync(target).ino;
  replaceFile(target, '{"v":2,"longer":true}');
  assert.equal(readFileSync(target, 'utf8'), '{"v":2,"longer":true}');
  assert.notEqual(statSync(target).ino, first);
  writeFileSync(path.join(dir, 'explain', 'b.json'), 'x');
  assert.deepEqual(readdirSync(path.join(dir, 'explain')).sort(), ['a.json', 'b.json']);
});
