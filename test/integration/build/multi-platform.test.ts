/**
 * Multi-platform builds end to end (docs/multi-platform.md): two-platform bases made offline
 * (mmdebstrap --arch arm64, helpers/bases.ts), `kiln build --platform linux/amd64,linux/arm64`
 * into one OCI index, pushed to a real registry that skopeo and Docker read back; arm64 RUN steps
 * under QEMU (binfmt_misc) and a cross-compiling builder that needs no emulation at all.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, emulationUnavailable, ensureBaseTar, ensureMultiPlatformBase } from '../../helpers/bases.js';
import { registryUnavailable, startRegistry, type Registry } from '../../helpers/registry.js';
import { needs } from '../../helpers/prereq.js';

const fileUnavailable = () =>
  spawnSync('sh', ['-c', 'command -v file']).status === 0 ? undefined : 'file is not installed (apt-get install file)';
const skip = needs(basesUnavailable(), emulationUnavailable('arm64'), registryUnavailable(), fileUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-multiplatform-'));
const root = path.join(work, 'store');
let reg: Registry | undefined;
after(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

interface Event {
  type: string;
  platform?: string;
  stage?: number;
  text?: string;
  emulated?: string | boolean;
}

function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  return dir;
}

/** The digest the store's tag `ref` names (its OCI layout's index.json). */
function taggedDigest(ref: string): string {
  const index = JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)?.digest;
  assert.ok(d, `${ref} is tagged in the store`);
  return d;
}

async function buildJson(args: string[]): Promise<{ events: Event[] }> {
  const r = await runKiln(['build', '--progress=json', ...args], { root });
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
  return { events };
}

/** What `file` says of a file of the image for the platform. */
async function fileOf(image: string, platform: string, file: string): Promise<string> {
  const local = path.join(
    work,
    `f-${createHash('sha256')
      .update(image + platform + file)
      .digest('hex')
      .slice(0, 8)}`,
  );
  // runKiln decodes stdout as UTF-8: read the binary through base64 instead.
  const b = await runKiln(['run', '--platform', platform, '--entrypoint', '', image, 'base64', '-w0', file], { root });
  writeFileSync(local, Buffer.from(b.stdout, 'base64'));
  return spawnSync('file', ['-b', local], { encoding: 'utf8' }).stdout;
}

describe('multi-platform builds (linux/amd64 + linux/arm64)', { skip }, () => {
  before(async () => {
    reg = await startRegistry();
    await ensureMultiPlatformBase(root, 'debian-slim', 'localhost:5000/debian-slim:bookworm');
    const r = await runKiln(['import', await ensureBaseTar('cross-gcc'), 'localhost:5000/cross-gcc:bookworm'], {
      root,
    });
    assert.equal(r.code, 0, r.stderr);
  });

  test('RUN for arm64 runs under QEMU, said in the events; every ELF it made is aarch64, the amd64 one x86-64', async () => {
    const ctx = context('emulated', {
      Dockerfile: [
        'FROM localhost:5000/debian-slim:bookworm',
        'RUN cp /bin/ls /usr/local/bin/myls && uname -m > /arch',
        'CMD ["cat", "/arch"]',
        '',
      ].join('\n'),
    });
    const { events } = await buildJson(['--platform', 'linux/amd64,linux/arm64', '-t', 'emu:1', ctx]);
    const runs = events.filter((e) => e.type === 'step-start' && e.text?.startsWith('RUN'));
    assert.deepEqual(runs.map((e) => [e.platform, e.emulated]).sort(), [
      ['linux/amd64', undefined],
      ['linux/arm64', 'linux/arm64'],
    ]);
    for (const [platform, arch, elf] of [
      ['linux/amd64', 'x86_64', /x86-64/],
      ['linux/arm64', 'aarch64', /ARM aarch64/],
    ] as const) {
      const r = await runKiln(['run', '--platform', platform, 'emu:1'], { root });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${arch}\n`);
      assert.match(await fileOf('emu:1', platform, '/usr/local/bin/myls'), elf);
    }
  });

  test('a cross-compiling builder (FROM --platform=$BUILDPLATFORM, TARGETARCH) runs no emulated RUN; the index pushed is what skopeo and docker read', async () => {
    const ctx = context('cross', {
      'hello.c': '#include <stdio.h>\nint main(void) { printf("hello from %s\\n", ARCH); return 0; }\n',
      Dockerfile: [
        'FROM --platform=$BUILDPLATFORM localhost:5000/cross-gcc:bookworm AS build',
        'ARG TARGETARCH',
        'COPY hello.c /src/',
        'RUN case "$TARGETARCH" in amd64) CC=gcc ;; arm64) CC=aarch64-linux-gnu-gcc ;; esac; \\',
        '    $CC -static -O2 -DARCH="\\"$TARGETARCH\\"" -o /hello /src/hello.c',
        'FROM localhost:5000/debian-slim:bookworm',
        'COPY --from=build /hello /usr/local/bin/hello',
        'CMD ["hello"]',
        '',
      ].join('\n'),
    });
    const ref = `${reg!.host}/hello:multi`;
    const { events } = await buildJson(['--platform', 'linux/amd64,linux/arm64', '-t', ref, '--push', ctx]);
    const runs = events.filter((e) => e.type === 'step-start' && e.text?.startsWith('RUN'));
    assert.equal(runs.length, 2, 'the builder runs once per target (it reads TARGETARCH)');
    assert.ok(
      runs.every((e) => e.emulated === undefined),
      'no RUN is emulated',
    );
    for (const [platform, elf] of [
      ['linux/amd64', /x86-64/],
      ['linux/arm64', /ARM aarch64/],
    ] as const) {
      const r = await runKiln(['run', '--platform', platform, ref], { root });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `hello from ${platform.split('/')[1]}\n`);
      assert.match(await fileOf(ref, platform, '/usr/local/bin/hello'), elf);
    }
    // The registry holds the index kiln made, byte for byte.
    const raw = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    assert.equal(raw.status, 0, raw.stderr.toString());
    assert.equal(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`, taggedDigest(ref));
    const index = JSON.parse(raw.stdout.toString()) as { mediaType: string; manifests: { platform: object }[] };
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      index.manifests.map((m) => m.platform),
      [
        { architecture: 'amd64', os: 'linux' },
        { architecture: 'arm64', os: 'linux' },
      ],
    );
    const docker = spawnSync('docker', ['manifest', 'inspect', '--insecure', ref], {
      encoding: 'utf8',
      env: { ...process.env, DOCKER_CLI_EXPERIMENTAL: 'enabled', DOCKER_CONFIG: path.join(work, 'docker-config') },
    });
    assert.equal(docker.status, 0, docker.stderr);
    const seen = JSON.parse(docker.stdout) as { manifests: { digest: string }[] };
    assert.deepEqual(
      seen.manifests.map((m) => m.digest),
      (JSON.parse(raw.stdout.toString()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest),
    );
  });

  test('a stage that is the same for every platform is built once', async () => {
    const ctx = context('shared', {
      Dockerfile: [
        'FROM --platform=$BUILDPLATFORM localhost:5000/debian-slim:bookworm AS gen',
        'RUN date +%s%N > /stamp',
        'FROM localhost:5000/debian-slim:bookworm',
        'COPY --from=gen /stamp /stamp',
        '',
      ].join('\n'),
    });
    const { events } = await buildJson(['--platform', 'linux/amd64,linux/arm64', '-t', 'shared:1', ctx]);
    const gen = events.filter((e) => e.type === 'step-start' && e.text?.startsWith('RUN'));
    assert.equal(gen.length, 2, 'each platform reaches the step');
    assert.equal(
      events.filter((e) => e.type === 'step-cached' && e.stage === 0).length,
      1,
      'one of them waits for the other and takes its result',
    );
    const stamps = [];
    for (const p of ['linux/amd64', 'linux/arm64']) {
      const r = await runKiln(['run', '--platform', p, 'shared:1', 'cat', '/stamp'], { root });
      assert.equal(r.code, 0, r.stderr);
      stamps.push(r.stdout);
    }
    assert.equal(stamps[0], stamps[1]);
  });
});
