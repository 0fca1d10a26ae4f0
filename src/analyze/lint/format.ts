/** `kiln lint` output: text with file:line:column, JSON, SARIF 2.1.0 for code scanning. */
import { RULES, type LintResult } from './index.js';

export function formatLintText(r: LintResult): string {
  let out = '';
  for (const f of r.findings) {
    out += `${f.file}:${f.line}${f.column !== undefined ? `:${f.column}` : ''}: ${f.level}: ${f.message} [${f.rule}]\n`;
    if (f.source !== undefined) out += `    ${f.source.trimEnd()}\n`;
  }
  const n = r.findings.length;
  out +=
    n === 0
      ? `${r.file}: no problems found\n`
      : `${r.file}: ${r.errors} error${r.errors === 1 ? '' : 's'}, ${r.warnings} warning${r.warnings === 1 ? '' : 's'}${n - r.errors - r.warnings ? `, ${n - r.errors - r.warnings} info` : ''}\n`;
  return out;
}

export function formatLintJson(r: LintResult): string {
  return `${JSON.stringify({ file: r.file, errors: r.errors, warnings: r.warnings, findings: r.findings.map(({ source: _s, ...f }) => f) }, null, 2)}\n`;
}

export function formatLintSarif(r: LintResult, tool: { name: string; version: string }): string {
  const used = [...new Set(r.findings.map((f) => f.rule))].sort();
  const level = (l: string) => (l === 'info' ? 'note' : l);
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: tool.name,
            version: tool.version,
            informationUri: 'https://github.com/kiln-build/kiln',
            rules: used.map((id) => {
              const info = RULES[id];
              const rule: Record<string, unknown> = {
                id,
                shortDescription: { text: info?.description ?? id },
                defaultConfiguration: { level: level(info?.level ?? 'warning') },
              };
              if (info?.url) rule.helpUri = info.url;
              return rule;
            }),
          },
        },
        results: r.findings.map((f) => {
          const region: Record<string, number> = { startLine: f.line };
          if (f.column !== undefined) region.startColumn = f.column;
          if (f.endLine !== undefined) region.endLine = f.endLine;
          return {
            ruleId: f.rule,
            ruleIndex: used.indexOf(f.rule),
            level: level(f.level),
            message: { text: f.message },
            locations: [{ physicalLocation: { artifactLocation: { uri: f.file.replace(/^\.\//, '') }, region } }],
          };
        }),
      },
    ],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}
