import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// A stand-in runc that logs its calls and answers the probe as a working runtime does (the probe's
// program is missing in its empty rootfs).
const FAKE_RUNC = `#!/bin/sh
echo "$*" >> "$KILN_FAKE_RUNC_LOG"
case "$*" in *" run "*) echo 'exec: "/kiln-probe": no such file or directory' >&2; exit 1;; esac
exit 0
`;

test('a runtime that works is probed once per boot, not by every kiln process', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-probe-'));
  try {
    mkdirSync(path.join(dir, 'bin'));
    writeFileSync(path.join(dir, 'bin', 'runc'), FAKE_RUNC, { mode: 0o755 });
    const log = path.join(dir, 'calls.log');
    const runtime = new URL('../../../src/sandbox/runtime.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(runtime)}); const r = await m.selectRunner({ scratch: ${JSON.stringify(dir)} }); console.log(r.kind);`;
    const env = {
      ...process.env,
      PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
      XDG_RUNTIME_DIR: path.join(dir, 'xdg'),
      KILN_FAKE_RUNC_LOG: log,
    };
    for (let i = 0; i < 3; i++) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'oci');
    }
    const runs = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => / run /.test(` ${l} `));
    assert.equal(runs.length, 1, `one probe for three processes:\n${readFileSync(log, 'utf8')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
