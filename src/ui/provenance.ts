/** `kiln trace` and `kiln analyze --copies` as text. */
import { fromLabel, type CopyReport, type TraceResult } from '../analyze/index.js';
import { human } from '../util/index.js';

function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}

/** One block per path: the layer, the step, where it was copied from (hop by hop), its package. */
export function formatTraceText(results: TraceResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(r.path);
    if (r.missing) {
      out.push(r.deletedIn !== undefined ? `  deleted by layer ${r.deletedIn}` : '  not in the image');
      continue;
    }
    const l = r.layer!;
    out.push(`  layer     ${l.index} (${shortDigest(l.diffId)})`);
    if (!r.step) {
      out.push(`  step      ${l.createdBy || '(no history)'}`);
      out.push('            no provenance recorded: a base image layer, or built by another store or tool');
      continue;
    }
    const stage = r.step.stage.name ?? String(r.step.stage.index);
    out.push(`  step      ${r.step.file}:${r.step.line} (stage ${stage})  ${r.step.text}`);
    if (r.from && r.from.kind !== 'none' && r.source !== undefined)
      out.push(`  from      ${fromLabel(r.from)}: ${r.source}`);
    for (const h of r.via ?? [])
      out.push(
        `  which     ${h.file}:${h.line} (stage ${h.stage.name ?? h.stage.index}) ${h.text} brought from ${fromLabel(h.from)}: /${h.source}`,
      );
    if (r.package)
      out.push(
        `  package   ${r.package.name} ${r.package.version} (${r.package.type}${r.package.arch ? `, ${r.package.arch}` : ''}${r.package.dev ? ', dev dependency' : ''})`,
      );
    else if (r.from && (r.from.kind === 'stage' || r.from.kind === 'image'))
      out.push('  package   none known (no dpkg list, Python RECORD or package.json owned it there)');
  }
  return `${out.join('\n')}\n`;
}

/** Per COPY --from: its size, what it carries a runtime rarely needs, and what to change. */
export function formatCopiesText(reports: CopyReport[]): string {
  if (!reports.length)
    return "No COPY --from in this image that a build of this store recorded (kiln trace/--copies read the build's provenance).\n";
  const out: string[] = [];
  let saving = 0;
  for (const r of reports) {
    saving += r.saving;
    out.push(`${r.step.file}:${r.step.line}  ${r.step.text}`);
    out.push(`  from ${r.from}: ${human(r.bytes)} in ${r.files} files (layer ${r.layer})`);
    for (const f of r.findings)
      out.push(
        `  ${f.kind.padEnd(24)} ${human(f.bytes).padStart(9)} in ${String(f.files).padStart(5)} files  → ${f.suggestion}`,
      );
    if (r.narrower && r.findings.length)
      out.push(
        `  by source directory: ${r.narrower
          .slice(0, 6)
          .map((n) => `${n.path} ${human(n.bytes)}`)
          .join(', ')}`,
      );
    out.push(
      r.saving
        ? `  would save ${human(r.saving)} (${((100 * r.saving) / Math.max(1, r.bytes)).toFixed(1)} %)`
        : '  nothing a runtime rarely needs',
    );
    out.push('');
  }
  out.push(`Total that the suggestions would save: ${human(saving)}`);
  return `${out.join('\n')}\n`;
}
