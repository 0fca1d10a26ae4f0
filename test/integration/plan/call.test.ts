// `kiln build --call=targets|outline|check` (and --check): BuildKit's subrequests, answered
// without building, printed as docker buildx prints them (docs.docker.com/reference/cli/docker/
// buildx/build/#call; Debian's docker 20.10 has no --call to compare with). Nothing is built:
// the base images do not exist anywhere.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-call-'));
process.env.KILN_ROOT = path.join(dir, 'store');
after(() => rmSync(dir, { recursive: true, force: true }));

const DOCKERFILE = [
  '# GO_VERSION sets the Go version',
  'ARG GO_VERSION=1.22',
  'ARG UNUSED=x',
  '',
  '# builder compiles the app',
  'FROM golang:${GO_VERSION} AS builder',
  '# COMMIT the commit to stamp',
  'ARG COMMIT',
  'RUN --mount=type=secret,id=npmrc,required=true --mount=type=ssh true',
  '',
  'FROM builder AS test',
  'RUN true',
  '',
  '# release is the image that ships',
  'FROM no-such-registry.invalid/base:1 AS release',
  'ARG PORT=8080',
  'COPY --from=builder /out /x',
  '',
].join('\n');

test('--call=targets lists every stage, the default last, descriptions from "# NAME …" comments', async () => {
  writeFileSync(path.join(dir, 'Dockerfile'), DOCKERFILE);
  const r = await runKiln(['build', '--call', 'targets', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'TARGET            DESCRIPTION',
      'builder           compiles the app',
      'test',
      'release (default) is the image that ships',
      '',
    ].join('\n'),
  );
});

test('--call=outline: the target, its build args (value, description), secrets and ssh; --target and --build-arg count', async () => {
  const r = await runKiln(['build', '--call=outline', '--build-arg', 'COMMIT=abc', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'TARGET:      release',
      'DESCRIPTION: is the image that ships',
      '',
      'BUILD ARG    VALUE   DESCRIPTION',
      'COMMIT       abc     the commit to stamp',
      'PORT         8080',
      'GO_VERSION   1.22    sets the Go version',
      '',
      'SECRET   REQUIRED',
      'npmrc    true',
      '',
      'SSH       REQUIRED',
      'default',
      '',
      '',
    ].join('\n'),
  );
  const t = await runKiln(['build', '--call=outline', '--target', 'test', dir]);
  assert.match(t.stdout, /^TARGET: +test\n/);
  assert.doesNotMatch(t.stdout, /PORT/, 'an ARG of a stage the target does not need is not listed');
});

test("--check (= --call=check): BuildKit's checks only, exit 1 when one fires; unknown --call is a usage error", async () => {
  writeFileSync(path.join(dir, 'Dockerfile'), 'FROM debian:12 as base\nMAINTAINER me\nRUN apt-get install -y gcc\n');
  const r = await runKiln(['build', '--check', dir]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /Dockerfile:1:1: warning: .*\[FromAsCasing\]/);
  assert.match(r.stdout, /\[MaintainerDeprecated\]/);
  assert.doesNotMatch(
    r.stdout,
    /AptListsNotCleaned|RootUserInFinalStage/,
    "kiln's own rules are kiln lint's, not BuildKit's checks",
  );
  writeFileSync(path.join(dir, 'Dockerfile'), 'FROM debian:12\nUSER nobody\n');
  const clean = await runKiln(['build', '--call=check', dir]);
  assert.equal(clean.code, 0, clean.stdout);
  const bad = await runKiln(['build', '--call=bogus', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown --call "bogus"/);
});

// Directives (docs.docker.com/reference/dockerfile/#syntax and #check): BuildKit runs its checks
// with every build (warnings; `error=true` fails the build, `skip=` leaves rules out), and reads
// the file with the frontend `# syntax=` names, which kiln does not fetch: its own is
// docker/dockerfile:1.
test('# check=skip=…;error=true honoured by kiln build; # syntax= read, shown by kiln plan, another frontend refused', async () => {
  const build = (text: string, extra: string[] = []) => {
    writeFileSync(path.join(dir, 'Dockerfile'), text);
    return runKiln(['build', '--progress', 'plain', ...extra, dir]);
  };
  const warned = await build('# check=skip=MaintainerDeprecated\nFROM scratch as x\nMAINTAINER me\nLABEL a=b\n');
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(
    warned.stderr,
    /WARNING: .*Dockerfile:2: 'as' and 'FROM' keywords' casing do not match \[FromAsCasing\]/,
  );
  assert.doesNotMatch(warned.stderr, /MAINTAINER instruction is deprecated/, 'skipped');
  const plain = await build('FROM scratch\nMAINTAINER me\n');
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stderr.match(/MAINTAINER instruction is deprecated/g)?.length, 1, 'reported once');
  const failed = await build('# check=error=true\nFROM scratch as x\nMAINTAINER me\n');
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /Dockerfile:2:1: lint violation found for rules: FromAsCasing, MaintainerDeprecated/);
  assert.doesNotMatch(failed.stderr, /writing image/, 'nothing was built');
  const skippedAll = await build('# check=error=true;skip=all\nFROM scratch as x\n');
  assert.equal(skippedAll.code, 0, skippedAll.stderr);

  for (const ok of [
    'docker/dockerfile:1',
    'docker/dockerfile:1.7',
    'docker.io/docker/dockerfile:1.4.3',
    `docker/dockerfile-upstream:master@sha256:${'a'.repeat(64)}`,
  ]) {
    const r = await build(`# syntax=${ok}\nFROM scratch\nLABEL a=b\n`);
    assert.equal(r.code, 0, `${ok}: ${r.stderr}`);
  }
  const labs = await build('# syntax=docker/dockerfile:1-labs\nFROM scratch\nLABEL a=b\n');
  assert.equal(labs.code, 0, labs.stderr);
  assert.match(
    labs.stderr,
    /WARNING: .*Dockerfile:1: # syntax=docker\/dockerfile:1-labs: kiln reads Dockerfiles as docker\/dockerfile:1; the labs channel's own features are not there/,
  );
  const other = await build('# syntax=ghcr.io/acme/frontend:2\nFROM scratch\n');
  assert.equal(other.code, 1);
  assert.match(other.stderr, /Dockerfile:1: # syntax=ghcr\.io\/acme\/frontend:2 names a frontend kiln does not have/);
  assert.match(other.stderr, /hint: remove the line/);
  const plan = await runKiln(['plan', '--format', 'json', dir]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.equal(
    (JSON.parse(plan.stdout) as { syntax?: string }).syntax,
    'ghcr.io/acme/frontend:2',
    'kiln plan reports the line (and builds nothing)',
  );
});
