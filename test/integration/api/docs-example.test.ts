/**
 * docs/api.md's example, run as written: its code block, with `'kiln'` pointed at the compiled
 * library (dist/src/index.js), against a fresh store holding the Debian base. The example builds a
 * two-stage image with two outputs, runs it, analyzes it and catalogues its packages.
 */
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { collectResult, runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { repoRoot } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-api-doc-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

/** The ```js block that follows `<!-- api-example -->` in docs/api.md. */
export function exampleCode(markdown: string): string {
  const m = /<!-- api-example -->\s*```js\n([\s\S]*?)\n```/.exec(markdown);
  assert.ok(m, 'docs/api.md has no ```js block after <!-- api-example -->');
  return m[1]!;
}

describe("docs/api.md's example", { skip }, () => {
  test('builds, runs, analyzes and catalogues an image through the library', { timeout: 600_000 }, async () => {
    const lib = path.join(repoRoot, 'dist', 'src', 'index.js');
    assert.ok(existsSync(lib), `${lib} is missing: npm run build`);
    const code = exampleCode(readFileSync(path.join(repoRoot, 'docs', 'api.md'), 'utf8'));
    assert.match(code, /from 'kiln';/);
    const script = path.join(work, 'example.mjs');
    writeFileSync(script, code.replace(/from 'kiln';/, `from ${JSON.stringify(pathToFileURL(lib).href)};`));

    const imported = await runKiln(
      ['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm', '--change', 'CMD ["bash"]'],
      { root },
    );
    assert.equal(imported.code, 0, imported.stderr);

    const child = spawn(process.execPath, [script], {
      cwd: work,
      env: { ...process.env, KILN_ROOT: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = await collectResult(child, 540_000);
    assert.equal(r.code, 0, `example failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    assert.match(out, /^stage \d+ step \d+ done in \d+ ms$/m, 'no step-done event reached onEvent');
    const built = /^built (sha256:[0-9a-f]{64}) \((\d+) bytes\), 2 stages$/m.exec(out);
    assert.ok(built, out);
    assert.match(out, /^oci archive: [1-9]\d* bytes$/m);
    assert.match(out, /^run: exit 0: HELLO FROM A KILN BUILD$/m);
    const layers = /^layers: (\d+), efficiency: (0\.\d{4}|1\.0000)$/m.exec(out);
    assert.ok(layers, out);
    const packages = /^packages: (\d+) on Debian GNU\/Linux/m.exec(out);
    assert.ok(packages && Number(packages[1]) > 50, out);

    // What the example made is what the CLI sees: the tag, the id, and the archive's image.
    const inspected = await runKiln(['inspect', 'app:api'], { root });
    assert.equal(inspected.code, 0, inspected.stderr);
    const [info] = JSON.parse(inspected.stdout) as { Id: string; RepoTags: string[]; RootFS: { Layers: string[] } }[];
    assert.equal(info!.Id, built[1]);
    assert.deepEqual(info!.RepoTags, ['app:api']);
    assert.equal(info!.RootFS.Layers.length, Number(layers[1]));
  });
});
