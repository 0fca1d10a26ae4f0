/** LineSpill: lines back in order, from memory or (past a few MB) from its temp file, which goes after. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LineSpill } from '../../../src/engine/spill.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-spill-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function readBack(s: LineSpill): Promise<string[]> {
  const out: string[] = [];
  for await (const l of s.lines()) out.push(l);
  return out;
}

test('a few lines stay in memory and come back in order', async () => {
  const s = new LineSpill(tmp);
  const lines = ['', 'ü "quoted"', JSON.stringify(['a\nb', 1])];
  for (const l of lines) s.push(l);
  assert.deepEqual(readdirSync(tmp), []);
  assert.deepEqual(await readBack(s), lines);
});

test('many lines go to a temp file in the given directory, come back in order, and the file is removed', async () => {
  const s = new LineSpill(tmp);
  const lines = Array.from({ length: 200_000 }, (_, i) =>
    JSON.stringify({ path: `files/${i}/f`, size: i, é: 'x'.repeat(i % 50) }),
  );
  for (const l of lines) s.push(l);
  assert.equal(readdirSync(tmp).length, 1);
  assert.deepEqual(await readBack(s), lines);
  assert.deepEqual(readdirSync(tmp), []);
});

test('a spill never read is removed by dispose', () => {
  const s = new LineSpill(tmp);
  for (let i = 0; i < 100_000; i++) s.push(`line ${i} ${'y'.repeat(60)}`);
  assert.equal(readdirSync(tmp).length, 1);
  s.dispose();
  assert.deepEqual(readdirSync(tmp), []);
});
