/** `kiln scan --secrets`'s text: one finding a line (where, what, the masked match), its layer and step under it. */
import type { SecretScanResult } from '../analyze/index.js';
import { humanSize } from './table.js';

export function formatSecretsText(r: SecretScanResult, image: string): string {
  const out: string[] = [];
  for (const f of r.findings) {
    const where = `${f.path}${f.line !== undefined ? `:${f.line}` : ''}`;
    out.push(`${where}: ${f.description} [${f.rule}]: ${f.match}`);
    if (f.layer !== undefined) {
      const deleted =
        f.deletedIn !== undefined ? ` — deleted by layer ${f.deletedIn + 1}, still in the image's blobs` : '';
      out.push(`    layer ${f.layer + 1} (${(f.diffId ?? '').slice(0, 19)})${deleted}`);
    }
    if (f.step) out.push(`    step: ${f.step.length > 200 ? `${f.step.slice(0, 199)}…` : f.step}`);
  }
  const n = r.findings.length;
  out.push(`${n === 0 ? 'no credential found' : `${n} credential(s) found`} in ${image}`);
  if (r.skipped.length)
    out.push(
      `skipped ${r.skipped.length} binary file(s) over ${humanSize(r.maxFileSize)} (--max-file-size): ${r.skipped
        .slice(0, 5)
        .map((s) => s.path)
        .join(', ')}${r.skipped.length > 5 ? ', …' : ''}`,
    );
  return `${out.join('\n')}\n`;
}
