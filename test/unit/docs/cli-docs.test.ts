/**
 * docs/cli.md is generated from the CLI's commander definitions by scripts/gen-cli-docs.mjs; these
 * tests fail when it is stale (a command or option added, changed or removed without regenerating).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../../src/cli/main.js';
import { repoRoot } from '../../helpers/paths.js';

const REGENERATE = 'regenerate it with: npm run docs   (or: npm run build && node scripts/gen-cli-docs.mjs)';
const docPath = path.join(repoRoot, 'docs', 'cli.md');

function walk(cmd: Command): Command[] {
  return cmd.commands.filter((c) => c.name() !== 'help').flatMap((c) => [c, ...walk(c)]);
}
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

describe('docs/cli.md', () => {
  test('is what scripts/gen-cli-docs.mjs generates from the current CLI', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'scripts', 'gen-cli-docs.mjs'), '--check'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `docs/cli.md is stale — ${REGENERATE}\n${r.stderr}`);
  });

  test('has a section for every command and lists every option of each', async () => {
    const doc = readFileSync(docPath, 'utf8');
    const cmds = walk(await buildProgram());
    assert.ok(cmds.length > 10, 'the program has its commands');
    for (const c of cmds) {
      const name = fullName(c);
      const at = doc.indexOf(`\n## ${name}\n`) >= 0 ? doc.indexOf(`\n## ${name}\n`) : doc.indexOf(`\n### ${name}\n`);
      assert.ok(at >= 0, `docs/cli.md has no section "${name}" — ${REGENERATE}`);
      const next = doc.slice(at + 1).search(/\n#{2,4} kiln /);
      const section = next < 0 ? doc.slice(at) : doc.slice(at, at + 1 + next);
      for (const o of c.options) {
        if (o.hidden || o.long === '--help') continue;
        assert.ok(
          section.includes(`\`${o.flags}`),
          `the "${name}" section of docs/cli.md does not list ${o.flags} — ${REGENERATE}`,
        );
      }
    }
  });
});
