/** The CI gate's result (`kiln diff --ci`) as text and as SARIF 2.1.0. */
import { displayName, GATE_RULE_DESCRIPTIONS, type GateResult } from '../analyze/index.js';
import { human } from '../util/index.js';

/** Findings listed per rule in text (the JSON and SARIF outputs have them all). */
const TEXT_FINDINGS = 20;

export function formatGateText(r: GateResult): string {
  const out: string[] = [];
  out.push(`Baseline: ${displayName(r.baseline)}  ${human(r.baseline.size)}, ${r.baseline.packages} packages`);
  out.push(`Image:    ${displayName(r.image)}  ${human(r.image.size)}, ${r.image.packages} packages`);
  out.push('');
  for (const rule of r.rules) {
    out.push(`${rule.status.toUpperCase().padEnd(4)} ${rule.rule}: ${rule.message}`);
    let shown = 0;
    for (const group of ['base image', 'your layers', undefined] as const) {
      const fs = rule.findings.filter((f) => f.origin === group);
      if (!fs.length) continue;
      if (group) out.push(`       from ${group === 'base image' ? 'the base image' : 'your layers'}:`);
      for (const f of fs) {
        if (shown++ >= TEXT_FINDINGS) break;
        out.push(`${group ? '         ' : '       '}${f.message}`);
      }
    }
    if (rule.findings.length > TEXT_FINDINGS) out.push(`       … ${rule.findings.length - TEXT_FINDINGS} more`);
  }
  const n = (s: string) => r.rules.filter((x) => x.status === s).length;
  out.push('');
  out.push(
    `Result: ${r.pass ? 'PASS' : 'FAIL'} [rules: ${r.rules.length}] [passed: ${n('pass')}] [failed: ${n('fail')}] [skipped: ${n('skip')}]`,
  );
  return `${out.join('\n')}\n`;
}

/**
 * SARIF 2.1.0: one rule per gate rule, one result per finding of a broken rule (a rule broken
 * without findings, e.g. size growth: one result with its message). Locations are paths in the
 * image (package locations for packages and vulnerabilities).
 */
export function formatGateSarif(r: GateResult, tool: { name: string; version: string }): string {
  const ids = r.rules.map((x) => x.rule);
  const image = displayName(r.image);
  const results = r.rules
    .filter((x) => x.status === 'fail')
    .flatMap((x) =>
      (x.findings.length ? x.findings : [{ message: x.message, path: undefined, origin: undefined }]).map((f) => ({
        ruleId: x.rule,
        ruleIndex: ids.indexOf(x.rule),
        level: 'error',
        message: {
          text: `${f.message}${f.origin ? ` (from ${f.origin === 'base image' ? 'the base image' : 'your layers'})` : ''}. Image: ${image}, baseline: ${displayName(r.baseline)}.`,
        },
        locations: [
          {
            physicalLocation: { artifactLocation: { uri: (f.path ?? '/').replace(/^\/+/, '') || '.' } },
            logicalLocations: [{ name: image, kind: 'image' }],
          },
        ],
        ...(f.origin ? { properties: { origin: f.origin } } : {}),
      })),
    );
  return `${JSON.stringify(
    {
      $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
      version: '2.1.0',
      runs: [
        {
          tool: {
            driver: {
              name: tool.name,
              version: tool.version,
              rules: r.rules.map((x) => ({
                id: x.rule,
                shortDescription: { text: GATE_RULE_DESCRIPTIONS[x.rule] },
                defaultConfiguration: { level: 'error' },
              })),
            },
          },
          results,
        },
      ],
    },
    null,
    2,
  )}\n`;
}
