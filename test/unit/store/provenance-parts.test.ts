/**
 * putProvenanceParts (a COPY's record, its files streamed in): a record of one piece (under 1 MiB,
 * written whole with synchronous calls) and one of many pieces (streamed) are the same bytes as
 * JSON.stringify of the record, read back whole by provenance() and in part by provenanceHead().
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '../../../src/store/store.js';
import { storeLayout } from '../../../src/store/layout.js';
import { PROVENANCE_VERSION, type CopyProvenance } from '../../../src/store/provenance.js';
import type { Digest } from '../../../src/util/digest.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-provparts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function record(n: number, hex: string): CopyProvenance {
  return {
    version: PROVENANCE_VERSION,
    diffId: `sha256:${hex.repeat(64)}` as Digest,
    kind: 'COPY',
    step: { file: 'Dockerfile', line: 7, text: 'COPY app ./app', stage: { index: 1 } },
    from: { kind: 'context' },
    packages: [],
    files: Array.from({ length: n }, (_, i) => ({ path: `/app/app/f${i}.py`, source: `app/f${i}.py "q" é`, size: i })),
  };
}

async function* lines(files: CopyProvenance['files']): AsyncGenerator<string> {
  for (const f of files) yield JSON.stringify(f);
}

for (const [what, n, hex] of [
  ['a one-piece record (a few files)', 3, 'b'],
  ['a record of no files', 0, 'c'],
  ['a many-piece record (over 1 MiB of files)', 20_000, 'd'],
] as const) {
  test(`${what} is JSON.stringify of it, and reads back`, async () => {
    const store = await Store.open({ root: path.join(tmp, `s-${hex}`) });
    const rec = record(n, hex);
    const { files, ...head } = rec;
    await store.putProvenanceParts(head, lines(files));
    const file = storeLayout(store.root).provenanceFile(rec.diffId);
    assert.equal(readFileSync(file, 'utf8'), JSON.stringify(rec));
    assert.deepEqual(await store.provenance(rec.diffId), rec);
    const { packages: _p, ...headOnly } = head;
    assert.deepEqual(await store.provenanceHead(rec.diffId), headOnly);
    // No temp file left beside it.
    assert.deepEqual(readdirSync(path.dirname(file)), [path.basename(file)]);
  });
}

test('provenanceHead of a record that is absent or torn is undefined', async () => {
  const store = await Store.open({ root: path.join(tmp, 'torn') });
  const rec = record(2, 'e');
  assert.equal(await store.provenanceHead(rec.diffId), undefined);
  const { files, ...head } = rec;
  await store.putProvenanceParts(head, lines(files));
  const file = storeLayout(store.root).provenanceFile(rec.diffId);
  const text = readFileSync(file, 'utf8');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, text.slice(0, -5));
  assert.equal(await store.provenanceHead(rec.diffId), undefined);
});
