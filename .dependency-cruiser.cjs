/**
 * kiln's import rules, checked by dependency-cruiser (`npm run lint`, and so CI).
 *
 * The folder rules are read from the table in docs/design.md ("may import" column), the one
 * source of them; this file only says how to read it:
 *   - a folder may import the folders its row names, plus util/ (every folder's helpers) and itself;
 *   - "X (types)" / "X (event types)" / "X (result types)": type-only imports of X;
 *   - "everything above": every folder in an earlier row; "everything": any folder; "nothing": none.
 * Besides: no cycles (between folders or modules); another folder is entered through its index.ts
 * only; a folder never imports its own index.ts (a barrel importing itself back is an ESM cycle);
 * src/ never imports a devDependency.
 *
 * Tests (test/) and benchmarks (bench/) are not cruised: they may import a folder's internals,
 * which is what a unit test of an internal module does.
 */
const { readFileSync } = require('node:fs');
const path = require('node:path');

const designFile = process.env.KILN_DESIGN_MD ?? path.join(__dirname, 'docs', 'design.md');

/** The folder table of docs/design.md: [{ folder, allowed: Map<folder, 'any' | 'type-only'> }]. */
function folderTable(text) {
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^\|\s*`([a-z][a-z0-9-]*)\/`[^|]*\|[^|]*\|([^|]*)\|\s*$/.exec(line);
    if (m) rows.push({ folder: m[1], mayImport: m[2].trim() });
  }
  if (rows.length < 5)
    throw new Error(`${designFile}: no folder table found (rows like "| \`plan/\` | … | dockerfile, image (types) |")`);
  return rows.map((row, i) => {
    const allowed = new Map();
    for (const part of row.mayImport
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      if (/^everything above$/i.test(part)) for (const r of rows.slice(0, i)) allowed.set(r.folder, 'any');
      else if (/^everything$/i.test(part)) for (const r of rows) allowed.set(r.folder, 'any');
      else if (/^nothing$/i.test(part)) continue;
      else {
        const p = /^([a-z][a-z0-9-]*)\/?\s*(\((?:[a-z]+ )?types\))?$/i.exec(part);
        if (!p) throw new Error(`${designFile}: row ${row.folder}/: cannot read "${part}" in "may import"`);
        const folder = p[1];
        if (!rows.some((r) => r.folder === folder))
          throw new Error(`${designFile}: row ${row.folder}/: no folder "${folder}"`);
        allowed.set(folder, p[2] ? 'type-only' : 'any');
      }
    }
    allowed.set('util', 'any');
    allowed.delete(row.folder);
    return { folder: row.folder, allowed };
  });
}

const table = folderTable(readFileSync(designFile, 'utf8'));
const names = table.map((r) => r.folder);
const alt = (list) => `(${list.join('|')})`;

const folderRules = [];
for (const { folder, allowed } of table) {
  const say = [...allowed].map(([f, how]) => (how === 'type-only' ? `${f} (types)` : f)).join(', ') || 'nothing';
  const forbidden = names.filter((f) => f !== folder && !allowed.has(f));
  if (forbidden.length)
    folderRules.push({
      name: `${folder}-imports`,
      comment: `${folder}/ may import ${say} (docs/design.md); move a shared type down instead`,
      severity: 'error',
      from: { path: `^src/${folder}/` },
      to: { path: `^src/${alt(forbidden)}/` },
    });
  const typeOnly = [...allowed].filter(([, how]) => how === 'type-only').map(([f]) => f);
  if (typeOnly.length)
    folderRules.push({
      name: `${folder}-imports-types-only`,
      comment: `${folder}/ takes only types from ${typeOnly.join(', ')} (docs/design.md): use \`import type\``,
      severity: 'error',
      from: { path: `^src/${folder}/` },
      to: { path: `^src/${alt(typeOnly)}/`, dependencyTypesNot: ['type-only'] },
    });
}

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle is a design bug: move the shared type down to the lower folder or module',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'unknown-folder',
      comment:
        'every folder of src/ has a row in the table of docs/design.md (add one: what it owns, what it may import)',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/[^/]+/', pathNot: `^src/${alt(names)}/` },
    },
    {
      name: 'enter-through-index',
      comment: 'another folder is entered through its index.ts only (export what you need there)',
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/.', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
    },
    {
      name: 'api-through-index',
      comment: "src/index.ts (the library API) takes each folder's exports from its index.ts",
      severity: 'error',
      from: { path: '^src/index\\.ts$' },
      to: { path: '^src/[^/]+/.', pathNot: '^src/[^/]+/index\\.ts$' },
    },
    {
      name: 'not-own-index',
      comment:
        "inside a folder, import the module itself, not the folder's index.ts (which re-exports it: an ESM cycle)",
      severity: 'error',
      from: { path: '^src/([^/]+)/', pathNot: '^src/[^/]+/index\\.ts$' },
      to: { path: '^src/$1/index\\.ts$' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that resolves to nothing',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'not-to-dev-dep',
      comment: 'src/ runs where only dependencies are installed',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'] },
    },
    ...folderRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    // `import type` counts: a type-only cycle is still a cycle in the design.
    tsPreCompilationDeps: true,
    // ESM-only packages (https-proxy-agent…) resolve through their exports map's `import` condition.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'] },
  },
};
