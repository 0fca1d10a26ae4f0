/**
 * The library as a user who is not root: build() and run() do not enter a user namespace (the CLI
 * does); they fail at once with a message that says so and what to do, before touching a store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../../helpers/paths.js';

const index = path.join(repoRoot, 'dist', 'src', 'index.js');

test('build() and run() as a user who is not root: one clear error naming the CLI and unshare', () => {
  assert.ok(existsSync(index), `${index}: npm run build first`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-api-nonroot-'));
  try {
    chmodSync(dir, 0o755);
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM scratch\nRUN true\n');
    const script = `
      const k = await import(${JSON.stringify(index)});
      for (const call of [
        () => k.build({ context: ${JSON.stringify(dir)}, root: '/tmp/kiln-nonroot-store-never-made' }),
        () => k.run('app', { root: '/tmp/kiln-nonroot-store-never-made' }),
      ]) {
        try { await call(); console.log('no error'); }
        catch (e) { console.log(e.code + ': ' + e.message + ' | ' + (e.hint ?? '')); }
      }`;
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8', cwd: dir },
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[0]!, /^SANDBOX: build\(\) needs root or a user namespace, and this process runs as uid 65534/);
    assert.match(lines[1]!, /^SANDBOX: run\(\) needs root or a user namespace/);
    for (const l of lines) assert.match(l, /the kiln CLI .*unshare --map-auto --map-root-user --mount/);
    assert.ok(!existsSync('/tmp/kiln-nonroot-store-never-made'), 'no store was made');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
