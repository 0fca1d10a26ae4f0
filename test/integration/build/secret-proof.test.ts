/**
 * The secret proof (engine/secret-proof.ts) on real builds: a build given --secret values fails
 * when the image — or a cache export — carries one, as-is or encoded, even in a file a later layer
 * deleted, naming the file, the layer and the Dockerfile line; a secret used without being written
 * passes; --allow-secret-in-image turns the error into a warning; a push never happens on a hit.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable(), registryUnavailable());
const ws = new Workspace('kiln-secret-proof-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const secret = `s3cr3t-${randomBytes(16).toString('hex')}`;
const secretFile = path.join(ws.dir, 'token.txt');

let n = 0;
/** Build a Dockerfile (lines) with the secret `t`; the result and the tag it was given. */
async function buildWith(lines: string[], extra: string[] = []) {
  const name = `case${++n}`;
  const ctx = ws.context(name, { Dockerfile: lines.join('\n') + '\n', 'hello.txt': 'hello\n' });
  const tag = `${name}:1`;
  const r = await ws.kiln([
    'build',
    '--progress',
    'plain',
    '-t',
    tag,
    '--secret',
    `id=t,src=${secretFile}`,
    ...extra,
    ctx,
  ]);
  return { ...r, tag };
}

async function tagged(tag: string): Promise<boolean> {
  return (await ws.kiln(['inspect', tag])).code === 0;
}

describe('secret proof', { skip }, () => {
  before(async () => {
    writeFileSync(secretFile, `${secret}\n`);
    await ws.importDebian();
  });

  test('a RUN that writes the secret to a file fails the build, naming the file and the line', async () => {
    const r = await buildWith([
      'FROM debian-slim:bookworm',
      'RUN echo hi > /hi',
      'RUN --mount=type=secret,id=t cat /run/secrets/t > /leak',
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Dockerfile:3:1: a build secret would leave the machine in the image/);
    assert.match(r.stderr, /secret "t" in \/leak, layer sha256:[0-9a-f]{12}/);
    assert.match(r.stderr, /RUN --mount=type=secret,id=t cat \/run\/secrets\/t > \/leak/);
    const error = r.stderr.slice(r.stderr.indexOf('error:'));
    assert.doesNotMatch(error, /\/hi\b/, 'the layer without the secret is not named');
    assert.equal(await tagged(r.tag), false, 'a leaking image is not tagged');
  });

  test('base64 of the secret is found too', async () => {
    const r = await buildWith([
      'FROM debian-slim:bookworm',
      'RUN --mount=type=secret,id=t base64 /run/secrets/t > /b64',
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /secret "t" \(base64\) in \/b64, layer .*\/Dockerfile:2 /);
  });

  test('hex (xxd -p) and the secret inside JSON are found', async () => {
    const r = await buildWith([
      'FROM debian-slim:bookworm',
      `RUN --mount=type=secret,id=t sh -c 'od -An -tx1 -v /run/secrets/t | tr -d " \\n" > /hex'`,
      `RUN --mount=type=secret,id=t sh -c 'printf "{\\"token\\": \\"%s\\"}" "$(cat /run/secrets/t)" > /etc/conf.json'`,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /secret "t" \(hex\) in \/hex/);
    assert.match(r.stderr, /secret "t" in \/etc\/conf.json, layer .*\/Dockerfile:3 /);
  });

  test('a file a later RUN deleted is still in its layer: the build fails on it', async () => {
    const r = await buildWith([
      'FROM debian-slim:bookworm',
      'RUN --mount=type=secret,id=t cp /run/secrets/t /x',
      'RUN rm /x',
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\/Dockerfile:2:1: a build secret/);
    assert.match(r.stderr, /secret "t" in \/x, layer/);
  });

  test('a secret used without being written passes', async () => {
    const r = await buildWith([
      'FROM debian-slim:bookworm',
      `RUN --mount=type=secret,id=t sh -c 'test "$(cat /run/secrets/t)" != "" && sha256sum /run/secrets/t | cut -c1-64 > /digest && wc -c < /run/secrets/t > /len'`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /build secret|warning/i);
    assert.equal(await tagged(r.tag), true);
  });

  test('a builder stage that wrote the secret does not ship: no leak; copying that file into the image is', async () => {
    const builder = [
      'FROM debian-slim:bookworm AS builder',
      'RUN --mount=type=secret,id=t sh -c "cat /run/secrets/t > /token && echo built > /artifact"',
      'FROM debian-slim:bookworm',
    ];
    const ok = await buildWith([...builder, 'COPY --from=builder /artifact /artifact']);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await buildWith([...builder, 'COPY --from=builder /token /app/token']);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /\/Dockerfile:4:1: a build secret/);
    assert.match(
      bad.stderr,
      /secret "t" in \/app\/token, layer .*\/Dockerfile:4 COPY --from=builder \/token \/app\/token/,
    );
  });

  test('--allow-secret-in-image keeps the image, with a warning that names the file', async () => {
    const r = await buildWith(
      ['FROM debian-slim:bookworm', 'RUN --mount=type=secret,id=t cat /run/secrets/t > /leak'],
      ['--allow-secret-in-image'],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /--allow-secret-in-image: the image carries a build secret:\n.*secret "t" in \/leak/);
    assert.equal(await tagged(r.tag), true);
  });

  test('a value too short to search is named in a warning', async () => {
    const short = path.join(ws.dir, 'short.txt');
    writeFileSync(short, 'abc\n');
    const r = await buildWith(
      ['FROM debian-slim:bookworm', 'RUN --mount=type=secret,id=pin cat /run/secrets/pin > /pin'],
      ['--secret', `id=pin,src=${short}`],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /secret "pin" is shorter than 8 bytes: not searched/);
  });

  describe('with a registry', () => {
    let reg: Registry;
    before(async () => {
      reg = await startRegistry();
    });
    after(async () => reg?.stop());

    test('--push: nothing is pushed when the image carries the secret', async () => {
      const ref = `${reg.host}/leak/app:1`;
      const r = await buildWith(
        ['FROM debian-slim:bookworm', 'RUN --mount=type=secret,id=t cat /run/secrets/t > /leak'],
        ['--push', '-t', ref],
      );
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /secret "t" in \/leak/);
      const res = await fetch(`http://${reg.host}/v2/leak/app/tags/list`);
      assert.equal(res.status, 404, 'the repository does not exist: nothing was pushed');
    });

    test('--cache-to mode=max carries a builder stage: its leak fails the build before the export', async () => {
      const cacheRef = `${reg.host}/cache/app:max`;
      const lines = [
        'FROM debian-slim:bookworm AS builder',
        'RUN --mount=type=secret,id=t sh -c "cat /run/secrets/t > /token && echo built > /artifact"',
        'FROM debian-slim:bookworm',
        'COPY --from=builder /artifact /artifact',
      ];
      const r = await buildWith(lines, ['--cache-to', `type=registry,ref=${cacheRef},mode=max`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /a build secret would leave the machine in the exported cache:/);
      assert.match(r.stderr, /secret "t" in \/token, layer .*\/Dockerfile:2 .*\(in the exported cache\)/);
      const res = await fetch(`http://${reg.host}/v2/cache/app/tags/list`);
      assert.equal(res.status, 404, 'no cache was exported');
      // mode=min exports the image's stages only: the builder's layer stays here, no leak.
      const min = await buildWith(lines, ['--cache-to', `type=registry,ref=${reg.host}/cache/app:min,mode=min`]);
      assert.equal(min.code, 0, min.stderr);
    });

    test('--cache-to mode=max: a builder ENV holding the value fails the build on the exported cache config, before any push', async () => {
      // The image does not carry the builder's ENV; the builder's cache records do (their state's config).
      const lines = [
        'FROM debian-slim:bookworm AS builder',
        'ARG TOKEN',
        'ENV TOKEN_ENV=$TOKEN',
        'RUN echo built > /artifact',
        'FROM debian-slim:bookworm',
        'COPY --from=builder /artifact /artifact',
      ];
      const args = ['--build-arg', `TOKEN=${secret}`];
      const oci = { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } };
      const cacheRef = `${reg.host}/cachecfg/app:max`;
      const r = await buildWith(lines, [...args, '--cache-to', `type=registry,ref=${cacheRef},mode=max`]);
      assert.equal(r.code, 1, r.stderr);
      const error = r.stderr.slice(r.stderr.indexOf('error:'));
      // The first record that carries it: the ARG's (its history line holds the value given).
      assert.match(error, /\/Dockerfile:2:1: a build secret would leave the machine in the exported cache:/);
      assert.match(
        error,
        new RegExp(
          `secret "t" in the exported cache config \\(${cacheRef.replace(/[.]/g, '\\.')}\\): env TOKEN_ENV of the record of stage builder, .*/Dockerfile:3 ENV TOKEN_ENV=\\$TOKEN`,
        ),
      );
      assert.match(
        error,
        /secret "t" in the exported cache config .*: history line 2 of the record of stage builder, .*\/Dockerfile:2 ARG TOKEN\n/,
      );
      assert.equal(error.match(/history line 2 /g)?.length, 1, 'once, not again for each later record of the stage');
      assert.doesNotMatch(error, /in \/artifact|\(in the image/, 'no layer and not the image config');
      assert.ok(!r.stderr.includes(secret), 'the message does not show the value');
      assert.equal(await tagged(r.tag), false);
      const res = await fetch(`http://${reg.host}/v2/cachecfg/app/tags/list`);
      assert.equal(res.status, 404, 'nothing was pushed: not the config, not a layer');
      // --allow-secret-in-image: a warning naming the same record, and the cache is exported.
      const allowed = await buildWith(lines, [
        ...args,
        '--allow-secret-in-image',
        '--cache-to',
        `type=registry,ref=${cacheRef},mode=max`,
      ]);
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.match(
        allowed.stderr,
        /--allow-secret-in-image: the exported cache carries a build secret:\n(.*\n)*.*env TOKEN_ENV of the record of stage builder/,
      );
      assert.equal((await fetch(`http://${reg.host}/v2/cachecfg/app/manifests/max`, oci)).status, 200);
      // mode=min exports the image's stages only: the builder's records, and its ENV, stay here.
      const min = await buildWith(lines, [
        ...args,
        '--cache-to',
        `type=registry,ref=${reg.host}/cachecfg/app:min,mode=min`,
      ]);
      assert.equal(min.code, 0, min.stderr);
      assert.doesNotMatch(min.stderr, /build secret/);
      assert.equal((await fetch(`http://${reg.host}/v2/cachecfg/app/manifests/min`, oci)).status, 200, 'min exported');
    });
  });
});
