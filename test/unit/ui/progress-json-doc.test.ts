/**
 * docs/progress-json.md documents every event type the engine can emit (BUILD_EVENT_TYPES, which
 * the compiler holds equal to BuildEvent's types) and every field the JSON display writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BUILD_EVENT_TYPES } from '../../../src/engine/events.js';
import { JsonRenderer, progressError } from '../../../src/ui/progress/index.js';
import { KilnError } from '../../../src/util/errors.js';
import { repoRoot } from '../../helpers/paths.js';
import { failureScript, successScript, T0 } from './script.js';

interface Doc {
  common: Set<string>;
  events: Map<string, Set<string>>;
}

/** `## Fields on every line` and each `### \`type\`` section's table of `| \`field\` | … |` rows. */
function parseDoc(text: string): Doc {
  const doc: Doc = { common: new Set(), events: new Map() };
  let current: Set<string> | undefined;
  for (const line of text.split('\n')) {
    const h = /^(#{2,3}) (.*)$/.exec(line);
    if (h) {
      const ev = /^`([a-z-]+)`$/.exec(h[2]!.trim());
      if (h[1] === '###' && ev) {
        assert.ok(!doc.events.has(ev[1]!), `event ${ev[1]} documented twice`);
        current = new Set();
        doc.events.set(ev[1]!, current);
      } else current = h[2]!.trim() === 'Fields on every line' ? doc.common : undefined;
      continue;
    }
    const row = /^\| `([A-Za-z[\].]+)` \| ([^|]+) \| ([^|]+) \|$/.exec(line);
    if (row && current) current.add(row[1]!);
  }
  return doc;
}

/** Field paths of a JSON value: `a`, `a.b`, `a[].b`. */
function fieldPaths(v: unknown, prefix = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x) => fieldPaths(x, `${prefix}[]`));
  if (v === null || typeof v !== 'object') return [];
  return Object.entries(v).flatMap(([k, x]) => {
    const p = prefix ? `${prefix}.${k}` : k;
    return [p, ...fieldPaths(x, p)];
  });
}

const doc = parseDoc(readFileSync(path.join(repoRoot, 'docs', 'progress-json.md'), 'utf8'));

test('the doc has the common fields and sections', () => {
  assert.deepEqual([...doc.common].sort(), ['time', 'type', 'v']);
  assert.ok(doc.events.size >= BUILD_EVENT_TYPES.length);
  for (const [type, fields] of doc.events) assert.ok(fields.size > 0, `${type} has a field table`);
});

test('every event type the engine can emit is documented, and the error line too', () => {
  for (const t of BUILD_EVENT_TYPES) assert.ok(doc.events.has(t), `docs/progress-json.md has no section for "${t}"`);
  assert.ok(doc.events.has('error'));
  const extra = [...doc.events.keys()].filter(
    (t) => t !== 'error' && !(BUILD_EVENT_TYPES as readonly string[]).includes(t),
  );
  assert.deepEqual(extra, [], 'documented types the engine does not emit');
});

test('every field of every line the JSON display writes is documented for its type', () => {
  const r = new JsonRenderer();
  const lines: string[] = [];
  for (const s of [successScript(), failureScript()]) for (const [ms, e] of s) lines.push(...r.lines(e, T0 + ms));
  // Optional fields the scripts leave out.
  lines.push(...r.lines({ type: 'warning', message: 'w', stage: 0, step: 1 }, T0));
  lines.push(...r.lines({ type: 'pull', ref: 'r', current: 1, total: 1, done: true, stage: 0 }, T0));
  lines.push(
    ...r.lines({ type: 'sandbox', mode: 'rootless', backend: 'oci', snapshotter: 'overlay', description: 'd' }, T0),
  );
  lines.push(
    ...r.lines(
      {
        type: 'explain',
        stage: 0,
        step: 2,
        cached: false,
        reason: 'earlier-step',
        text: 'because step 1 changed',
        changes: ['a: content'],
        record: 'local',
        causeStep: 1,
      },
      T0,
    ),
  );
  lines.push(r.error(progressError(new KilnError('BUILD', 'm', { file: 'Dockerfile', line: 3 }, { hint: 'h' })), T0));
  const seenTypes = new Set<string>();
  for (const l of lines) {
    const o = JSON.parse(l) as Record<string, unknown>;
    const type = String(o.type);
    seenTypes.add(type);
    const documented = doc.events.get(type);
    assert.ok(documented, `type ${type} is not documented`);
    for (const f of fieldPaths(o)) {
      assert.ok(doc.common.has(f) || documented.has(f), `field "${f}" of "${type}" is not documented`);
    }
  }
  // The check covered every type.
  for (const t of [...BUILD_EVENT_TYPES, 'error']) assert.ok(seenTypes.has(t), `no ${t} line was checked`);
});
