/**
 * The seed workloads (bench/workloads, as seeds.test.ts builds them) built for
 * linux/amd64,linux/arm64 from two-platform bases (helpers/bases.ts ensureMultiPlatformBase): the
 * index has the two images; every ELF file the build put into each image (its RUN layers and the
 * COPY --from layers of a builder's RUN output) is for that image's machine, read from the ELF
 * header of each and confirmed by `file` on one per layer; each image runs (the arm64 one under
 * QEMU) and prints what the seed's app prints.
 *
 * The arm64 RUN steps (pip compiling the fastsum C extension, node, npm, useradd) run under QEMU: this
 * file takes minutes. One store for the file; each seed is built once and every check reads it.
 */
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import {
  basesUnavailable,
  emulationUnavailable,
  ensureMultiPlatformBase,
  type HostBaseName,
} from '../../helpers/bases.js';
import { workloadsDir as workloads } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';
import { Store } from '../../../src/store/index.js';
import { openLayer, readTar } from '../../../src/layer/index.js';

const fileUnavailable = () =>
  spawnSync('sh', ['-c', 'command -v file']).status === 0 ? undefined : 'file is not installed (apt-get install file)';
const skip = needs(basesUnavailable(), emulationUnavailable('arm64'), fileUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-seeds-mp-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

const PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;
type Target = (typeof PLATFORMS)[number];
/** What each platform's programs are: ELF e_machine, `file`'s words, `uname -m`. */
const MACHINE: Record<Target, { eMachine: number; file: RegExp; uname: string }> = {
  'linux/amd64': { eMachine: 0x3e, file: /^ELF 64-bit LSB .*x86-64/, uname: 'x86_64' },
  'linux/arm64': { eMachine: 0xb7, file: /^ELF 64-bit LSB .*ARM aarch64/, uname: 'aarch64' },
};

interface Event {
  type: string;
  platform?: string;
  text?: string;
  emulated?: string | boolean;
}

/** An ELF file found in a layer the build added. */
interface Elf {
  path: string;
  /** The history entry that made its layer (`RUN …`, `COPY --from=builder …`). */
  madeBy: string;
  eMachine: number;
}

/** Layer digests of the bases (the layers a build did not make). */
const baseLayers = new Set<string>();

/**
 * The two-platform bases a seed names, in the store once. The workloads name their bases
 * REGISTRY/NAME:bookworm with REGISTRY=localhost:5000: here each is an index of amd64 and arm64.
 */
async function ensureBases(names: HostBaseName[]): Promise<void> {
  const store = await Store.open({ root });
  for (const b of names) {
    const ref = `localhost:5000/${b}:bookworm`;
    if (await store.tagged(ref)) continue;
    await ensureMultiPlatformBase(root, b, ref);
    for (const arch of ['amd64', 'arm64']) {
      const img = await store.resolveImage(`${ref}-${arch}`);
      for (const l of img.manifest.layers) baseLayers.add(l.digest);
    }
  }
}

/** Build a seed for both platforms from `bases`; returns the progress events. */
async function buildSeed(w: string, tag: string, bases: HostBaseName[]): Promise<Event[]> {
  await ensureBases(bases);
  const r = await runKiln(
    ['build', '--progress=json', '--platform', PLATFORMS.join(','), '-t', tag, path.join(workloads, w)],
    { root },
  );
  assert.equal(r.code, 0, `${w}: ${r.stderr}`);
  const events = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
  // Every RUN of the arm64 build is emulated (no stage of these seeds is on $BUILDPLATFORM), no amd64 one is.
  const runs = events.filter((e) => e.type === 'step-start' && e.text?.startsWith('RUN'));
  assert.ok(runs.length > 0, `${w} has RUN steps`);
  for (const e of runs)
    assert.equal(e.emulated, e.platform === 'linux/arm64' ? 'linux/arm64' : undefined, `${e.platform}: ${e.text}`);
  return events;
}

/** The index tagged `tag`: two images, amd64 then arm64, each image's config saying the same. */
async function checkIndex(tag: string): Promise<void> {
  const store = await Store.open({ root });
  const desc = await store.tagged(tag);
  assert.ok(desc, `${tag} is tagged`);
  assert.equal(desc.mediaType, 'application/vnd.oci.image.index.v1+json');
  const index = (await store.readJSON(desc.digest)) as { manifests: { platform?: object }[] };
  assert.deepEqual(
    index.manifests.map((m) => m.platform),
    PLATFORMS.map((p) => ({ architecture: p.split('/')[1], os: 'linux' })),
  );
  for (const p of PLATFORMS) {
    const img = await store.resolveImage(tag, { platform: { os: 'linux', architecture: p.split('/')[1]! } });
    assert.equal(img.config.architecture, p.split('/')[1]);
    assert.equal(img.config.os, 'linux');
  }
}

/**
 * Every ELF file in the layers of `tag`'s image for `platform` that are not a base's: its header's
 * e_machine must be the platform's; `file` must say so of the first ELF of each layer.
 */
async function elfsOf(tag: string, platform: Target): Promise<Elf[]> {
  const store = await Store.open({ root });
  const img = await store.resolveImage(tag, { platform: { os: 'linux', architecture: platform.split('/')[1]! } });
  const made = (img.config.history ?? []).filter((h) => !h.empty_layer).map((h) => h.created_by ?? '');
  assert.equal(made.length, img.manifest.layers.length, 'one history entry per layer');
  const elfs: Elf[] = [];
  for (const [i, layer] of img.manifest.layers.entries()) {
    if (baseLayers.has(layer.digest)) continue;
    const madeBy = made[i] ?? '';
    let sampled = false;
    for await (const { header, body } of readTar(openLayer(store.openBlob(layer.digest)))) {
      if (header.type !== 'file') continue;
      // The whole body is read (the tar reader needs it consumed); only an ELF's is kept, to sample one.
      const chunks: Buffer[] = [];
      let isElf: boolean | undefined;
      for await (const c of body) {
        if (isElf === undefined && c.length >= 4) isElf = c.subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1'));
        if (isElf !== false) chunks.push(c);
      }
      if (!isElf) continue;
      const bytes = Buffer.concat(chunks);
      if (bytes.length < 20) continue;
      elfs.push({ path: `/${header.name}`, madeBy, eMachine: bytes.readUInt16LE(18) });
      if (!sampled) {
        sampled = true;
        const local = path.join(work, 'sample.elf');
        writeFileSync(local, bytes);
        const said = spawnSync('file', ['-b', local], { encoding: 'utf8' }).stdout;
        assert.match(said, MACHINE[platform].file, `${platform}: file /${header.name} (${madeBy})`);
      }
    }
  }
  const wrong = elfs.filter((e) => e.eMachine !== MACHINE[platform].eMachine);
  assert.deepEqual(
    wrong.map((e) => `${e.path} e_machine 0x${e.eMachine.toString(16)} (${e.madeBy})`),
    [],
    `${tag} for ${platform}: every ELF is for ${MACHINE[platform].uname}`,
  );
  return elfs;
}

/** `kiln run --platform P ARGS…` (the arm64 image under QEMU): its stdout. */
async function run(platform: Target, args: string[]): Promise<string> {
  const r = await runKiln(['run', '--platform', platform, ...args], { root });
  assert.equal(r.code, 0, `kiln run --platform ${platform} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const sh = (tag: string, platform: Target, script: string) =>
  run(platform, ['--entrypoint', '', tag, 'sh', '-c', script]);

/** What every Python seed's app prints (app.main: greet + the fastsum C extension + app.util). */
const HELLO = /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/;

describe('the seeds, built for linux/amd64 and linux/arm64', { skip }, () => {
  interface Expect {
    /** What `kiln run --platform P TAG ARGS…` prints on every platform. */
    output: RegExp;
    args?: string[];
    /** Some ELF is in a layer whose history entry matches this. */
    elfsMadeBy?: RegExp;
    /** A shell script run in the image after `uname -m`, and what it must print (given `uname -m`'s word). */
    script?: string;
    shows?: (machine: string) => RegExp;
  }

  /** The checks every seed gets: the index, the ELFs of each image, the app's output and `uname -m` on each platform. */
  async function checkSeed(tag: string, expect: Expect) {
    await checkIndex(tag);
    for (const p of PLATFORMS) {
      const m = MACHINE[p].uname;
      const elfs = await elfsOf(tag, p);
      if (expect.elfsMadeBy) {
        const found = elfs.map((e) => `${e.path} (${e.madeBy})`).join(', ') || 'none';
        assert.ok(
          elfs.some((e) => expect.elfsMadeBy!.test(e.madeBy)),
          `${tag} for ${p}: an ELF in a layer made by ${expect.elfsMadeBy} (found: ${found})`,
        );
      }
      assert.match(await run(p, [tag, ...(expect.args ?? [])]), expect.output, `${tag} on ${p}`);
      const seen = await sh(tag, p, `uname -m; ${expect.script ?? 'true'}`);
      assert.ok(seen.startsWith(`${m}\n`), `${tag} on ${p} runs as ${m}: ${seen}`);
      if (expect.shows) assert.match(seen, expect.shows(m), `${tag} on ${p}`);
    }
  }

  test('seed 002 (py-wheels): the C-extension wheel compiled in the builder per platform, installed by RUN in the slim image', async () => {
    await buildSeed('py-wheels', 'wheels:mp', ['python-full', 'python-slim']);
    await checkSeed('wheels:mp', {
      output: HELLO,
      elfsMadeBy: /^RUN .*pip --no-cache-dir install/,
      script: 'ls /venv/lib/python3*/site-packages/fastsum/; command -v gcc || echo no-gcc',
      shows: (m) => new RegExp(`\\n_csum\\.cpython-3\\d+-${m}-linux-gnu\\.so\\n[^]*no-gcc\\n$`),
    });
  });

  test('seed 000 (py-obfuscate): the venv with the C extension made by RUN under emulation, compiled modules only', async () => {
    await buildSeed('py-obfuscate', 'obf:mp', ['python-full']);
    await checkSeed('obf:mp', {
      output: /hello, multi-stage/,
      elfsMadeBy: /^RUN .*pip install/,
      script: 'find /usr/src/app/app -name "*.py" | wc -l',
      shows: () => /\n0\n$/,
    });
  });

  test('seed 003 (py-usrlocal-user): /usr/local from the builder (its C extension) in slim, a non-root user made by RUN', async () => {
    await buildSeed('py-usrlocal-user', 'microblog:mp', ['python-full', 'python-slim']);
    await checkSeed('microblog:mp', {
      output: /hello, multi-stage/,
      elfsMadeBy: /^COPY .*\/usr\/local\/ \/usr\/local\//,
      script: 'id -un',
      shows: () => /\nmicroblog\n$/,
    });
  });

  test('seed 001 (py-venv): node assets, a venv with the C extension made by RUN, both copied into slim', async () => {
    // The assets stage is FROM node-full with no --platform: it is built (under QEMU too) for each platform.
    await buildSeed('py-venv', 'venv:mp', ['node-full', 'python-full', 'python-slim']);
    await checkSeed('venv:mp', {
      output: /hello, multi-stage/,
      elfsMadeBy: /^COPY .*\/venv \/venv/,
      script:
        'ls /venv/lib/python3*/site-packages/fastsum/; ls /app/static_final | head -3; command -v node || echo no-node; command -v gcc || echo no-gcc',
      shows: (m) => new RegExp(`\\n_csum\\.cpython-3\\d+-${m}-linux-gnu\\.so\\n[^]*\\nno-node\\nno-gcc\\n$`),
    });
  });

  test('seed 003 (TP, node-distroless): npm install in node-full, a nonroot user made by RUN in node-slim', async () => {
    await buildSeed('node-distroless', 'distroless:mp', ['node-full', 'node-slim']);
    // No ELF is made here (the one dependency is plain JavaScript): node itself, from the base, says its machine.
    const nodeArch: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64' };
    await checkSeed('distroless:mp', {
      output: /^hello from 65532 — 1,234,567 requests served/,
      args: ['index.js', '--once'],
      script: 'node -p process.arch; id -un',
      shows: (m) => new RegExp(`\\n${nodeArch[m]}\\nnonroot\\n$`),
    });
  });
});
