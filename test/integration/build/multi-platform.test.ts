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
  step?: number;
  text?: string;
  emulated?: string | boolean;
  cached?: boolean;
  record?: string;
  manifestDigest?: string;
  imageId?: string;
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

async function buildJson(args: string[], at = root): Promise<{ events: Event[] }> {
  const r = await runKiln(['build', '--progress=json', ...args], { root: at });
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
  /** The two-platform base in the registry, where a fresh machine pulls it from. */
  let pushed: string | undefined;
  const pushedBase = async () => {
    if (pushed) return pushed;
    const base = `${reg!.host}/debian-slim:multi`;
    const r = await runKiln(['push', 'localhost:5000/debian-slim:bookworm', base], { root });
    assert.equal(r.code, 0, r.stderr);
    return (pushed = base);
  };

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

  test('--cache-to holds every platform: from an empty store, --cache-from hits every step of both, and of one', async () => {
    const base = await pushedBase();
    const ctx = context('cache-multi', {
      Dockerfile: [
        `FROM --platform=$BUILDPLATFORM ${base} AS gen`,
        'RUN date +%s%N > /stamp',
        `FROM ${base}`,
        'COPY --from=gen /stamp /stamp',
        'RUN uname -m > /arch && date +%s%N >> /arch',
        '',
      ].join('\n'),
    });
    const cacheRef = `${reg!.host}/cache/multi:1`;
    const steps = (events: Event[], platform: string) =>
      events.filter((e) => e.type === 'step-start' && e.platform === platform).map((e) => `${e.stage}/${e.step}`);
    const cached = (events: Event[], platform: string, record?: string) =>
      events
        .filter((e) => e.type === 'explain' && e.cached && e.platform === platform)
        .filter((e) => record === undefined || e.record === record)
        .map((e) => `${e.stage}/${e.step}`);
    const imageId = (events: Event[], platform?: string) =>
      events.find((e) => e.type === 'done' && e.platform === platform)?.imageId;
    // Both pushed: the registry's gzip layers make the manifests comparable (a store keeps the
    // layers it made as plain tars, the cache's as gzip blobs).
    const both = ['--platform', 'linux/amd64,linux/arm64', '--push'];
    const first = await buildJson([
      ...both,
      '-t',
      `${reg!.host}/cached:a`,
      '--cache-to',
      `type=registry,ref=${cacheRef},mode=max`,
      ctx,
    ]);

    const empty = path.join(work, 'store-cache-from');
    const second = await buildJson(
      [...both, '-t', `${reg!.host}/cached:b`, '--cache-from', `type=registry,ref=${cacheRef}`, ctx],
      empty,
    );
    for (const p of ['linux/amd64', 'linux/arm64']) {
      assert.deepEqual(steps(second.events, p).sort(), steps(first.events, p).sort(), `${p}: the same steps`);
      assert.equal(steps(second.events, p).length, 3);
      assert.deepEqual(cached(second.events, p).sort(), steps(second.events, p).sort(), `${p}: every step cached`);
    }
    // Each platform's own steps come from the registry; the shared stage's step too, for the
    // platform that reached it first (the other waits for it and takes its record).
    for (const p of ['linux/amd64', 'linux/arm64'])
      assert.deepEqual(
        cached(second.events, p, cacheRef).filter((s) => s !== '0/1'),
        ['1/1', '1/2'],
        `${p}: its steps from ${cacheRef}`,
      );
    assert.ok(
      ['linux/amd64', 'linux/arm64'].some((p) => cached(second.events, p, cacheRef).includes('0/1')),
      `the shared step from ${cacheRef}`,
    );
    const indexOf = (tag: string) => {
      const r = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg!.host}/${tag}`]);
      assert.equal(r.status, 0, r.stderr.toString());
      return createHash('sha256').update(r.stdout).digest('hex');
    };
    assert.equal(indexOf('cached:b'), indexOf('cached:a'), 'the same index');
    const single = await buildJson(
      ['--platform', 'linux/arm64', '-t', 'cached:arm64', '--cache-from', cacheRef, ctx],
      path.join(work, 'store-cache-one'),
    );
    const arm = single.events.filter((e) => e.type === 'step-start').map((e) => `${e.stage}/${e.step}`);
    assert.equal(arm.length, 3);
    assert.deepEqual(
      single.events
        .filter((e) => e.type === 'explain' && e.cached && e.record === cacheRef)
        .map((e) => `${e.stage}/${e.step}`)
        .sort(),
      arm.sort(),
      'a single-platform build hits its platform',
    );
    assert.ok(imageId(first.events, 'linux/arm64'));
    assert.equal(imageId(single.events), imageId(first.events, 'linux/arm64'), 'the arm64 image of the index');
  });

  test('kiln plan --platform a,b says which stages run once: exactly those the build runs once', async () => {
    const base = await pushedBase();
    const ctx = context('plan-once', {
      Dockerfile: [
        `FROM --platform=$BUILDPLATFORM ${base} AS gen`,
        'RUN date +%s%N > /stamp',
        `FROM --platform=$BUILDPLATFORM ${base} AS tgt`,
        'ARG TARGETARCH',
        'RUN echo "$TARGETARCH $(date +%s%N)" > /arch',
        'FROM gen AS next',
        'COPY --from=tgt /arch /arch',
        `FROM --platform=$BUILDPLATFORM ${base} AS tools`,
        'COPY --from=gen /stamp /tools',
        `FROM ${base}`,
        'COPY --from=tools /tools /tools',
        'COPY --from=next /arch /arch',
        '',
      ].join('\n'),
    });
    const p = await runKiln(['plan', '--platform', 'linux/amd64,linux/arm64', '--format', 'json', ctx], { root });
    assert.equal(p.code, 0, p.stderr);
    const mp = JSON.parse(p.stdout) as { platforms: string[]; stages: { index: number; runs: string }[] };
    assert.deepEqual(mp.platforms, ['linux/amd64', 'linux/arm64']);
    const planned = mp.stages.filter((s) => s.runs === 'once').map((s) => s.index);
    assert.deepEqual(planned, [0, 3], 'gen and tools (which reads only gen) run once');
    const text = await runKiln(['plan', '--platform', 'linux/amd64,linux/arm64', ctx], { root });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /stage gen \(#0\): once, on linux\/amd64/);
    assert.match(text.stdout, /stage tgt \(#1\): per platform, on linux\/amd64, linux\/amd64/);

    // The build, on a store that has nothing cached: a stage ran once when each of its steps ran
    // on one platform only (the other took it as step-cached).
    const { events } = await buildJson(
      ['--platform', 'linux/amd64,linux/arm64', '-t', 'plan-once:1', ctx],
      path.join(work, 'store-plan-once'),
    );
    const ranOnce: number[] = [];
    for (const s of mp.stages) {
      const starts = events.filter((e) => e.type === 'step-start' && e.stage === s.index);
      const hits = events.filter((e) => e.type === 'step-cached' && e.stage === s.index);
      const perPlatform = starts.length / 2;
      assert.ok(perPlatform > 0);
      if (starts.length - hits.length === perPlatform) ranOnce.push(s.index);
      else assert.equal(hits.length, 0, `stage ${s.index} ran per platform`);
    }
    assert.deepEqual(ranOnce, planned);
  });

  test('a single-platform base of another architecture: a warning for the platform it concerns, and its RUN runs as the image is', async () => {
    // The store's amd64-only image (helpers/bases.ts tags each architecture's image on its own).
    const ctx = context('base-platform', {
      Dockerfile: ['FROM localhost:5000/debian-slim:bookworm-amd64', 'RUN uname -m > /arch', ''].join('\n'),
    });
    const r = await runKiln(
      ['build', '--progress=json', '--platform', 'linux/amd64,linux/arm64', '-t', 'base-platform:1', ctx],
      { root },
    );
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Event & { message?: string });
    const warnings = events.filter((e) => e.type === 'warning' && /Base image/.test(e.message ?? ''));
    assert.equal(warnings.length, 1, 'once, for the platform it concerns');
    assert.match(
      warnings[0]!.message!,
      /Base image localhost:5000\/debian-slim:bookworm-amd64 was pulled with platform "linux\/amd64", expected "linux\/arm64" for current build/,
    );
    const runs = events.filter((e) => e.type === 'step-start' && e.text?.startsWith('RUN'));
    assert.deepEqual(
      runs.map((e) => e.emulated),
      [undefined, undefined],
      'amd64 programs, run natively here',
    );
    const out = await runKiln(
      ['run', '--platform', 'linux/amd64', '--entrypoint', '', 'base-platform:1', 'cat', '/arch'],
      {
        root,
      },
    );
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'x86_64\n');
    // The arm64 entry holds what the base is (its config says amd64, as its programs are): kiln
    // run refuses to pass it off as arm64.
    const arm = await runKiln(['run', '--platform', 'linux/arm64', 'base-platform:1', 'true'], { root });
    assert.match(arm.stderr, /does not match the specified platform: wanted linux\/arm64, actual: linux\/amd64/);
  });
});

// FROM scratch and COPY only: two platforms with no base and no emulation.
describe('plain progress of a multi-platform build', () => {
  test('every stage and step line names its platform; each step id stays with its platform', async () => {
    const ctx = context('plain-progress', {
      Dockerfile: [
        '# check=skip=all',
        'FROM scratch AS files',
        'COPY a.txt /a.txt',
        'FROM scratch',
        'COPY --from=files /a.txt /b.txt',
        '',
      ].join('\n'),
      'a.txt': 'a\n',
    });
    const r = await runKiln(
      ['build', '--progress=plain', '--platform', 'linux/amd64,linux/arm64', '-t', 'plain:1', ctx],
      {
        root,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n');
    const titled = new Map<string, string>(); // step id → its line
    for (const l of lines) {
      const m = /^(#\d+) \[[^\]\s]+ /.exec(l); // not `#N [linux/arm64] writing image`
      if (m) titled.set(m[1]!, l);
    }
    for (const p of ['linux/amd64', 'linux/arm64']) {
      for (const want of [
        `[${p} stage 1/2 files] FROM scratch`,
        `[${p} files 1/1] COPY a.txt /a.txt`,
        `[${p} stage 2/2] FROM scratch`,
        `[${p} stage-1 1/1] COPY --from=files /a.txt /b.txt`,
      ])
        assert.equal([...titled.values()].filter((l) => l.endsWith(` ${want}`)).length, 1, `${want}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^#\\d+ \\[${p}\\] writing image sha256:[0-9a-f]{64} done$`, 'm'));
    }
    assert.equal(titled.size, 8, 'a step id per stage and step of each platform');
    // A line of a step (its DONE or CACHED) follows the line that titled it.
    for (const l of lines) {
      const m = /^(#\d+) (DONE|CACHED)/.exec(l);
      if (m) assert.ok(titled.has(m[1]!), `${l} is a step's:\n${r.stderr}`);
    }
    assert.doesNotMatch(r.stderr, /\[(stage|files|stage-1) /, 'no step line without its platform');
  });
});
