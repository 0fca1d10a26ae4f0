/**
 * What a step leaves to finish while the next steps run (engine/background.ts): a COPY layer's
 * provenance record. A record that reads another (a copy of a copy) still names the chain; a
 * record that cannot be written fails the build as it did when it was written in the step, and
 * leaves no cache record of its layer behind (nor temp files).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Workspace } from './util.js';

const ws = new Workspace('kiln-background-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const CHAIN = `FROM scratch AS one
COPY a.txt /one/a.txt

FROM scratch AS two
COPY --from=one /one/ /two/

FROM scratch
COPY --from=two /two/ /out/
COPY b.txt /b.txt
`;

const records = () => readdirSync(path.join(ws.root, 'cache', 'records')).filter((f) => f.endsWith('.json'));

test('a copy of a copy: its record, written in the background, names the chain through the stage before', async () => {
  const ctx = ws.context('chain', { Dockerfile: CHAIN, 'a.txt': 'a\n', 'b.txt': 'b\n' });
  await ws.build(ctx, 'chain:1', ['--no-cache']);
  const img = await ws.inspect('chain:1');
  const out = img.RootFS.Layers[0]!;
  const rec = JSON.parse(readFileSync(path.join(ws.root, 'provenance', `${out.slice(7)}.json`), 'utf8')) as {
    from: { kind: string; name?: string };
    files: { path: string; source: string; via?: { text: string; source: string; from: { kind: string } }[] }[];
  };
  assert.deepEqual(rec.from, { kind: 'stage', index: 1, name: 'two' });
  const file = rec.files.find((f) => f.path === 'out/a.txt');
  assert.ok(file, JSON.stringify(rec.files));
  assert.equal(file.source, 'two/a.txt');
  assert.deepEqual(
    file.via?.map((v) => [v.text, v.from.kind, v.source]),
    [
      ['COPY --from=one /one/ /two/', 'stage', 'one/a.txt'],
      ['COPY a.txt /one/a.txt', 'context', 'a.txt'],
    ],
  );
  // And the last COPY's own record, from the context.
  const last = img.RootFS.Layers[1]!;
  assert.match(readFileSync(path.join(ws.root, 'provenance', `${last.slice(7)}.json`), 'utf8'), /"path":"b.txt"/);
});

test('a provenance record that cannot be written fails the build with its message; no cache record, no temp file is left', async () => {
  const ctx = ws.context('fails', {
    Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n',
    'a.txt': 'a2\n',
    'b.txt': 'b2\n',
  });
  const before = records();
  const prov = path.join(ws.root, 'provenance');
  rmSync(prov, { recursive: true, force: true });
  writeFileSync(prov, 'not a directory');
  try {
    const r = await ws.kiln(['build', '-q', '-t', 'fails:1', ctx]);
    assert.equal(r.code, 1, r.stderr);
    // A record is written through a temp file in the directory: which call meets the file first
    // (the temp file's open, or a mkdir) depends on the record's size.
    assert.match(
      r.stderr,
      /^error: (EEXIST: file already exists, mkdir|ENOTDIR: not a directory, open) '.*\/provenance[/']/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.deepEqual(records(), before, 'the failed steps left no cache record');
    assert.deepEqual(readdirSync(path.join(ws.root, 'tmp')), []);
  } finally {
    rmSync(prov, { force: true });
    mkdirSync(prov);
  }
  // The steps run again (nothing cached from the failed build) and their records are written.
  const r = await ws.kiln(['build', '--progress', 'plain', '-t', 'fails:1', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr + r.stdout, /CACHED/);
  const img = await ws.inspect('fails:1');
  for (const l of img.RootFS.Layers) readFileSync(path.join(ws.root, 'provenance', `${l.slice(7)}.json`));
});
