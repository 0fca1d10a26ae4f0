/** The report's "Against the baseline" section: the CI gate's rules (analyze/gate.ts) as a table. */
import { displayName, type GateResult } from '../analyze/index.js';
import { human } from '../util/index.js';

/** Findings listed per rule on the page. */
const PAGE_FINDINGS = 50;

export function baselineSection(g: GateResult | undefined, esc: (s: unknown) => string): string {
  if (!g) return '';
  const rows = g.rules
    .map((r) => {
      const shown = r.findings.slice(0, PAGE_FINDINGS);
      const list = shown.length
        ? `<ul>${shown.map((f) => `<li>${esc(f.message)}${f.origin ? ` <em>(from ${esc(f.origin === 'base image' ? 'the base image' : 'your layers')})</em>` : ''}</li>`).join('')}${r.findings.length > shown.length ? `<li>… ${r.findings.length - shown.length} more</li>` : ''}</ul>`
        : '';
      return `<tr class="gate-${esc(r.status)}"><td>${esc(r.status.toUpperCase())}</td><td>${esc(r.rule)}</td><td>${esc(r.message)}${list}</td></tr>`;
    })
    .join('\n');
  return `<section id="baseline"><h2>Against the baseline ${esc(displayName(g.baseline))}</h2>
<p>${g.pass ? 'Every rule passes' : 'Rules broken'}: ${esc(human(g.baseline.size))} → ${esc(human(g.image.size))}, ${g.baseline.packages} → ${g.image.packages} packages (the same rules as <code>kiln diff --ci</code>).</p>
<table><thead><tr><th>result</th><th>rule</th><th>what</th></tr></thead><tbody>
${rows}
</tbody></table>
</section>`;
}
