/**
 * The seeds' patterns end to end (bench/workloads, adapted to work offline): each builds
 * with kiln and its image does what the app should, as the user the Dockerfile sets.
 *
 * The two stress workloads (many-files: 30,000 files; big-layer: a 300 MB layer) take minutes at
 * full size on this 2-core machine; their full size is the benchmark's business (`npm run bench`).
 * Here they run as they are but scaled down (3,000 files, 30 MB), unless KILN_TEST_FULL_SEEDS=1.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar, type BaseName } from '../../helpers/bases.js';
import { workloadsDir as workloads } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-seeds-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

const full = process.env.KILN_TEST_FULL_SEEDS === '1';

/** A workload's context, its Dockerfile's numbers scaled down (unless full): [from, to] replacements. */
function scaled(w: string, replacements: [string, string][]): string {
  if (full) return path.join(workloads, w);
  const dir = path.join(work, `scaled-${w}`);
  cpSync(path.join(workloads, w), dir, { recursive: true });
  const file = path.join(dir, 'Dockerfile');
  let text = readFileSync(file, 'utf8');
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `${w}/Dockerfile no longer has "${from}": update the scaling`);
    text = text.replace(from, to);
  }
  rmSync(file, { force: true });
  writeFileSync(file, text);
  return dir;
}

async function build(w: string, tag: string, args: string[] = [], context = path.join(workloads, w)): Promise<void> {
  const r = await runKiln(['build', '-q', '-t', tag, ...args, context], { root });
  assert.equal(r.code, 0, `${w}: ${r.stderr}`);
}
async function run(tag: string, args: string[] = []): Promise<string> {
  const r = await runKiln(['run', tag, ...args], { root });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}
async function sh(tag: string, script: string): Promise<string> {
  const r = await runKiln(['run', '--entrypoint', '', tag, 'sh', '-c', script], { root });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('the seeds, end to end', { skip }, () => {
  before(async () => {
    // The workloads name their bases REGISTRY/NAME:bookworm with REGISTRY=localhost:5000.
    for (const b of ['python-full', 'python-slim', 'node-full', 'node-slim', 'debian-slim'] as BaseName[]) {
      const r = await runKiln(['import', await ensureBaseTar(b), `localhost:5000/${b}:bookworm`], { root });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  test('seed 002: wheels built with gcc in a builder, installed in the slim image with no compiler', async () => {
    await build('py-wheels', 'wheels:1');
    assert.match(await run('wheels:1'), /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/);
    assert.match(await sh('wheels:1', 'command -v gcc || echo no-gcc'), /no-gcc/);
  });

  test('seed 000: SRC_FORMAT=clear ships the .py sources; obfuscated ships compiled modules only', async () => {
    await build('py-obfuscate', 'obf-clear:1', ['--build-arg', 'SRC_FORMAT=clear']);
    assert.match(await run('obf-clear:1'), /hello, multi-stage/);
    assert.match(await sh('obf-clear:1', 'ls /usr/src/app/app'), /main\.py/);
    await build('py-obfuscate', 'obf:1');
    assert.match(await run('obf:1'), /hello, multi-stage/);
    const files = await sh('obf:1', 'find /usr/src/app/app -name "*.py" | wc -l; ls /usr/src/app');
    assert.match(files, /^0\n/, 'no .py source of the app in the obfuscated image');
    assert.doesNotMatch(files, /code_obfuscation\.py/);
  });

  test('seed 001: venv from a builder and assets from a node stage in a slim image', async () => {
    await build('py-venv', 'venv:1');
    assert.match(await run('venv:1'), /hello, multi-stage/);
    const check = await sh(
      'venv:1',
      'ls /app/static_final | head -3; command -v node || echo no-node; command -v gcc || echo no-gcc',
    );
    assert.match(check, /no-node/);
    assert.match(check, /no-gcc/);
  });

  test('seed 003: /usr/local copied into slim, a non-root user, COPY --chown', async () => {
    await build('py-usrlocal-user', 'microblog:1');
    assert.match(await run('microblog:1'), /hello, multi-stage/);
    assert.match(await sh('microblog:1', 'id -un; stat -c %U /microblog/entrypoint.sh'), /^microblog\nmicroblog\n$/);
  });

  test('seed 003 (TP): a node app on a minimal runtime as nonroot', async () => {
    await build('node-distroless', 'distroless:1');
    assert.match(await run('distroless:1', ['index.js', '--once']), /^hello from 65532 — 1,234,567 requests served/);
  });

  test('seed 002 (all in one): build tools stay in the image, the app runs through its entrypoint as root', async () => {
    await build('single-stage-fat', 'fat:1');
    assert.match(await run('fat:1'), /^hello, multi-stage \| total: 500500 \| app 1\.0\.0/);
    assert.match(
      await sh('fat:1', 'id -u; command -v gcc >/dev/null && echo has-gcc; ls /app'),
      /^0\nhas-gcc\napp\nentrypoint\.sh\n$/,
    );
  });

  test('many-files: a generated node_modules-like tree copied from a stage, every file there', async () => {
    const n = full ? 30000 : 3000;
    await build('many-files', 'many:1', [], scaled('many-files', [['/gen.py /out 30000', `/gen.py /out ${n}`]]));
    assert.equal((await run('many:1')).trim(), String(n));
    // Content as gen.py writes it, spot-checked.
    assert.match(
      await sh('many:1', 'cat /app/node_modules/pkg-0000/dist/file-00000.js; ls /app'),
      /^module\.exports = '[0-9a-f]{64}';\ngen\.py\nnode_modules\n$/,
    );
  });

  test('big-layer: one large layer of incompressible data copied from a stage', async () => {
    const size = full ? 300000000 : 30000000;
    await build('big-layer', 'big:1', [], scaled('big-layer', [['head -c 300000000', `head -c ${size}`]]));
    const ls = await run('big:1');
    assert.match(ls, new RegExp(` ${size} .* blob\\.bin`));
    assert.match(ls, / 20000000 .* zeros\.bin/);
  });
});
