import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { which } from '../../../src/util/proc.js';

test('which: the first executable file of that name on PATH, as `command -v`; a path is taken as it is', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-which-'));
  const saved = process.env.PATH;
  try {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    for (const d of [a, b]) (await import('node:fs')).mkdirSync(d);
    writeFileSync(path.join(a, 'tool'), 'not executable', { mode: 0o644 });
    writeFileSync(path.join(b, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    (await import('node:fs')).mkdirSync(path.join(a, 'dirtool'), { mode: 0o755 });
    process.env.PATH = `${a}:${b}`;
    assert.equal(await which('tool'), path.join(b, 'tool'), 'a file that is not executable is passed over');
    assert.equal(await which('dirtool'), undefined, 'a directory is not a command');
    assert.equal(await which('no-such-tool'), undefined);
    assert.equal(await which(path.join(b, 'tool')), path.join(b, 'tool'));
    assert.equal(await which(path.join(a, 'tool')), undefined);
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
