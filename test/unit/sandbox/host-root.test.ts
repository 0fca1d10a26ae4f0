import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { emptyRoot, hostRootKeep, keepTests } from '../../../src/sandbox/host-root.js';

test('host-root: emptying / keeps what is kept and the directories on the way to it, nothing else', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'kiln-hostroot-'));
  try {
    for (const d of ['etc', 'var/lib/kiln/blobs', 'var/log', 'usr/local/bin', 'usr/bin', 'proc/1', 'opt/kiln/dist'])
      mkdirSync(path.join(root, d), { recursive: true });
    for (const f of [
      'etc/passwd',
      'etc/hosts',
      'var/log/x',
      'usr/local/bin/node',
      'usr/local/bin/python',
      'usr/bin/sh',
    ])
      writeFileSync(path.join(root, f), f);
    symlinkSync('/usr/bin', path.join(root, 'bin'));
    emptyRoot(root, ['etc/hosts', 'var/lib/kiln', 'usr/local/bin/node', 'proc', 'opt/kiln']);
    const all: string[] = [];
    const walk = (rel: string) => {
      for (const n of readdirSync(path.join(root, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${n.name}` : n.name;
        all.push(r);
        if (n.isDirectory()) walk(r);
      }
    };
    walk('');
    assert.deepEqual(all.sort(), [
      'etc',
      'etc/hosts',
      'opt',
      'opt/kiln',
      'opt/kiln/dist',
      'proc',
      'proc/1',
      'usr',
      'usr/local',
      'usr/local/bin',
      'usr/local/bin/node',
      'var',
      'var/lib',
      'var/lib/kiln',
      'var/lib/kiln/blobs',
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('host-root: kept paths are the mount points, the store, kiln and Node.js; tests on them', () => {
  const keep = hostRootKeep('/var/lib/kiln');
  for (const k of ['proc', 'sys', 'dev', 'workspace', 'var/lib/kiln', process.execPath.slice(1)])
    assert.ok(keep.includes(k), k);
  assert.ok(!keep.includes(''), 'never / itself');
  const { kept, above } = keepTests(['var/lib/kiln', 'etc/hosts']);
  assert.ok(kept('var/lib/kiln') && kept('var/lib/kiln/blobs/x'));
  assert.ok(!kept('var/lib') && above('var/lib') && above('var') && above('etc'));
  assert.ok(!kept('var/lib/kilnx') && !above('var/lib/kilnx') && !above('usr'));
});
