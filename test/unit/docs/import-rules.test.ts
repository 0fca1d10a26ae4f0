/**
 * The import rules of docs/design.md are kept by dependency-cruiser (.dependency-cruiser.cjs,
 * `npm run lint:deps`). These tests make the check fail: a copy of src/ gets a wrong-way import, a
 * cycle, a deep import into another folder, a value import where only types may go, and a folder
 * importing its own index; the check must name each of them, and nothing else (the real tree is
 * clean). A broken folder table must stop the check rather than let everything through.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../../helpers/paths.js';

const depcruise = path.join(repoRoot, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** One reported violation: its rule, its first edge, and the whole text (a cycle lists its path). */
interface Violation {
  rule: string;
  from: string;
  to: string;
  text: string;
}

/** A copy of what the check reads (src/, the config, tsconfig, docs/design.md) in a temp dir. */
function copyTree(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-import-rules-'));
  for (const f of ['src', 'docs/design.md', '.dependency-cruiser.cjs', 'tsconfig.json', 'package.json'])
    cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: true });
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

/** `npm run lint:deps` as CI runs it (the default `err` output), read back. */
function cruise(dir: string): { status: number | null; violations: Violation[]; output: string } {
  const r = spawnSync(process.execPath, [depcruise, '--config', '.dependency-cruiser.cjs', 'src'], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    // The config reads the folder table of the copy, not the repository's.
    env: { ...process.env, KILN_DESIGN_MD: path.join(dir, 'docs', 'design.md') },
  });
  const violations: Violation[] = [];
  for (const block of r.stdout.split(/\n(?=\s*(?:error|warn) )/)) {
    const m = /^\s*(?:error|warn) ([\w-]+): (\S+) →\s*(\S+)/.exec(block);
    if (m) violations.push({ rule: m[1]!, from: m[2]!, to: m[3]!, text: block });
  }
  return { status: r.status, violations, output: r.stdout + r.stderr };
}

describe('import rules (dependency-cruiser over docs/design.md)', () => {
  let dir = '';
  before(() => {
    assert.ok(
      spawnSync(process.execPath, [depcruise, '--version']).status === 0,
      `dependency-cruiser is missing: run npm ci (it is a devDependency) in ${repoRoot}`,
    );
    dir = copyTree();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a wrong-way import, a cycle, a deep import, a value where types go and an own-index import all fail', () => {
    const put = (rel: string, text: string) => writeFileSync(path.join(dir, 'src', rel), text);
    // util/ may import nothing: an upward import.
    put('util/wrong-way.ts', "import { build } from '../engine/index.js';\nexport const b = build;\n");
    // Two modules of layer/ that import each other.
    put('layer/cycle-a.ts', "import { b } from './cycle-b.js';\nexport const a = (): number => b() + 1;\n");
    put('layer/cycle-b.ts', "import { a } from './cycle-a.js';\nexport const b = (): number => a() - 1;\n");
    // cli/ may import store/, but through its index.ts only.
    put('cli/deep.ts', "import { Store } from '../store/store.js';\nexport const S = Store;\n");
    // ui/ may take only types from engine/.
    put('ui/value.ts', "import { build } from '../engine/index.js';\nexport const run = build;\n");
    // Inside store/, importing store/index.ts (which re-exports this folder) is an ESM cycle.
    put('store/own.ts', "import { Store } from './index.js';\nexport const T = Store;\n");
    const r = cruise(dir);
    assert.notEqual(r.status, 0, `the check passed:\n${r.output}`);
    const seen = r.violations.map((v) => `${v.rule}: ${v.from} → ${v.to}`);
    const has = (rule: string, from: string, to: string) =>
      assert.ok(
        r.violations.some((v) => v.rule === rule && v.from === from && v.to === to),
        `expected ${rule}: ${from} → ${to}; got:\n${seen.join('\n')}`,
      );
    has('util-imports', 'src/util/wrong-way.ts', 'src/engine/index.ts');
    has('enter-through-index', 'src/cli/deep.ts', 'src/store/store.ts');
    has('ui-imports-types-only', 'src/ui/value.ts', 'src/engine/index.ts');
    has('not-own-index', 'src/store/own.ts', 'src/store/index.ts');
    assert.ok(
      r.violations.some(
        (v) => v.rule === 'no-circular' && /src\/layer\/cycle-b\.ts/.test(v.text) && /cycle-a/.test(v.text),
      ),
      `expected the layer/cycle-a ↔ cycle-b cycle; got:\n${seen.join('\n')}`,
    );
    // Nothing else: the real tree keeps the rules.
    const planted = /src\/(util\/wrong-way|layer\/cycle-[ab]|cli\/deep|ui\/value|store\/own)\.ts/;
    const stray = r.violations.filter((v) => !planted.test(v.text));
    assert.deepEqual(
      stray.map((v) => `${v.rule}: ${v.from} → ${v.to}`),
      [],
    );
  });

  test('a folder table the config cannot read stops the check', () => {
    const design = path.join(dir, 'docs', 'design.md');
    const text = readFileSync(design, 'utf8');
    writeFileSync(design, text.replace(/(\| `report\/` \|[^\n]*\|)[^|\n]*\|\n/, '$1 analyze, plann |\n'));
    const r = cruise(dir);
    writeFileSync(design, text);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /row report\/: no folder "plann"/);
  });

  test("architecture.md's map shows the directions design.md's table sets (the ones enforced)", () => {
    /** folder → a column of its row, in a markdown table whose rows start with `folder/`. */
    const column = (file: string, header: string): Map<string, string> => {
      const out = new Map<string, string>();
      let at = -1;
      for (const line of readFileSync(path.join(repoRoot, 'docs', file), 'utf8').split('\n')) {
        const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
        if (cells[1] === 'folder') at = cells.indexOf(header);
        const m = /^`([a-z][a-z0-9-]*)\/`/.exec(cells[1] ?? '');
        if (m && at > 0) out.set(m[1]!, cells[at] ?? '');
      }
      return out;
    };
    const design = column('design.md', 'may import');
    const map = column('architecture.md', 'may import (enforced)');
    assert.ok(design.size >= 10, 'design.md: no folder table with a "may import" column');
    assert.deepEqual([...map].sort(), [...design].sort(), "update docs/architecture.md's folder table");
  });
});
