// UndefinedVar and InvalidBaseImagePlatform with base images from a real store: `kiln lint` and
// `kiln build --check` read the base image's ENV and platform from the store (nothing pulled).
// Reference: moby/buildkit frontend/dockerfile/dockerfile_check_test.go (testUndefinedVariable,
// testBaseImagePlatformMismatch) and docs/rules/undefined-var.md.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { Store } from '../../../src/store/store.js';
import type { ImageConfig } from '../../../src/image/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-lint-base-'));
const root = path.join(dir, 'store');
after(() => rmSync(dir, { recursive: true, force: true }));

async function writeImage(store: Store, name: string, architecture: string, env: string[]): Promise<void> {
  const config: ImageConfig = {
    architecture,
    os: 'linux',
    config: { Env: env },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [{ created_by: `ENV ${env.join(' ')}`, empty_layer: true }],
  };
  const w = await store.writeImage(config, []);
  await store.setTag(name, w.descriptor);
}

test("UndefinedVar knows the base image's ENV from the store; a base of another platform is reported", async () => {
  const store = await Store.open({ root });
  await writeImage(store, 'local/app-base:1', 'amd64', ['PATH=/usr/bin:/bin', 'APP_HOME=/srv/app']);
  await writeImage(store, 'local/arm-base:1', 'arm64', ['PATH=/usr/bin:/bin']);
  const ctx = path.join(dir, 'ctx');
  rmSync(ctx, { recursive: true, force: true });
  (await import('node:fs')).mkdirSync(ctx);
  writeFileSync(
    path.join(ctx, 'Dockerfile'),
    [
      'FROM local/app-base:1 AS app',
      'WORKDIR $APP_HOME',
      'COPY a.txt $APP_HOEM/',
      '',
      'FROM local/arm-base:1',
      'COPY --from=app $APP_HOME /app',
      'USER 1000',
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(ctx, 'a.txt'), 'a\n');
  const lint = await runKiln(['lint', '--format', 'json', ctx], { root });
  const findings = (JSON.parse(lint.stdout) as { findings: { rule: string; line: number; message: string }[] }).findings
    .filter((f) => f.rule === 'UndefinedVar' || f.rule === 'InvalidBaseImagePlatform')
    .map((f) => `${f.line} ${f.rule}: ${f.message}`);
  assert.deepEqual(findings, [
    "3 UndefinedVar: Usage of undefined variable '$APP_HOEM' (did you mean $APP_HOME?)",
    '5 InvalidBaseImagePlatform: Base image local/arm-base:1 was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
    "6 UndefinedVar: Usage of undefined variable '$APP_HOME'",
  ]);

  const check = await runKiln(['build', '--check', ctx], { root });
  assert.equal(check.code, 1, check.stderr);
  assert.match(check.stdout, /Dockerfile:3:1: warning: .*\[UndefinedVar\]/);
  assert.match(check.stdout, /Usage of undefined variable '\$APP_HOEM' \(did you mean \$APP_HOME\?\)/);
  assert.match(check.stdout, /InvalidBaseImagePlatform/);

  // The build's own checks: warnings on stderr, `# check=error=true` fails the build.
  const built = await runKiln(['build', '--progress', 'plain', '--platform', 'linux/amd64', ctx], { root });
  assert.match(built.stderr, /UndefinedVar/, built.stderr);
  writeFileSync(path.join(ctx, 'Dockerfile.strict'), '# check=error=true\nFROM local/app-base:1\nWORKDIR $APP_HOEM\n');
  const strict = await runKiln(['build', '-f', path.join(ctx, 'Dockerfile.strict'), ctx], { root });
  assert.equal(strict.code, 1, strict.stderr);
  assert.match(strict.stderr, /APP_HOEM/);

  // A base image the store does not have: its stage's names could come from it, nothing reported.
  const other = path.join(dir, 'other');
  (await import('node:fs')).mkdirSync(other, { recursive: true });
  writeFileSync(path.join(other, 'Dockerfile'), 'FROM local/not-here:1\nWORKDIR $APP_HOME\nUSER 1000\n');
  const none = await runKiln(['lint', '--format', 'json', other], { root });
  assert.equal(
    (JSON.parse(none.stdout) as { findings: { rule: string }[] }).findings.filter((f) => f.rule === 'UndefinedVar')
      .length,
    0,
  );
});
