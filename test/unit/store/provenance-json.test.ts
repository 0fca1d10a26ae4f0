import { test } from 'node:test';
import assert from 'node:assert/strict';
import { provenanceJson } from '../../../src/store/store.js';
import type { CopyProvenance } from '../../../src/store/provenance.js';

test('a provenance record is written in pieces, byte for byte JSON.stringify of it (undefined fields left out)', () => {
  const files = Array.from({ length: 40_000 }, (_, i) => ({
    path: `app/files/${i % 100}/f${i}`,
    source: `files/${i % 100}/f${i} "quoted" é`,
    size: i,
    ...(i % 7 === 0 ? { link: true } : {}),
    ...(i % 11 === 0 ? { pkg: 0 } : {}),
  }));
  const rec: CopyProvenance = {
    version: 1,
    diffId: `sha256:${'a'.repeat(64)}`,
    kind: 'COPY',
    step: { file: 'Dockerfile', line: 3, text: 'COPY --from=gen /files /app/files', stage: { index: 1 } },
    from: { kind: 'context' },
    exclude: undefined,
    packages: [{ type: 'deb', name: 'base-files', version: '12.4' } as CopyProvenance['packages'][number]],
    files,
  };
  const pieces = [...provenanceJson(rec)];
  assert.ok(pieces.length > 1, 'more than one piece for a record over a megabyte');
  assert.ok(pieces.every((p) => p.length <= (1 << 20) + 200));
  assert.equal(pieces.join(''), JSON.stringify(rec));
  const empty = { ...rec, files: [] };
  assert.equal([...provenanceJson(empty)].join(''), JSON.stringify(empty));
});
