/**
 * Text of the image-reading commands: dive's analysis and CI lines, the diff of two images, the
 * SBOM table, trivy's vulnerability table and SARIF. Pure: results in, text out.
 */
import {
  displayName,
  type ImageAnalysis,
  type ImageDiff,
  type CiRuleResult,
  type Severity,
  type OsRelease,
  type Package,
  sbomTableRows,
  SEVERITIES,
  type Finding,
  type ScanResult,
} from '../analyze/index.js';
import { human } from '../util/index.js';

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(4).replace(/\.?0+$/, '')} %` : String(x));

export function formatAnalysisText(a: ImageAnalysis, top: number): string {
  const lines: string[] = [];
  lines.push(`Image: ${displayName(a.image)} (${a.image.id})`);
  lines.push('');
  lines.push('Layers:');
  const rows = [['#', 'SIZE', 'ADDED', 'MODIFIED', 'REMOVED', 'COMMAND']];
  for (const l of a.layers) {
    const c = l.changes;
    const cell = (s: { count: number; bytes: number }) => (s.count ? `${s.count} (${human(s.bytes)})` : '0');
    const cmdText = (l.createdBy || (l.comment ? `(${l.comment})` : '(no history)'))
      .replace(/\s+/g, ' ')
      .replace(/^\/bin\/sh -c #\(nop\)\s*/, '')
      .replace(/^\/bin\/sh -c /, 'RUN ');
    rows.push([
      String(l.index + 1),
      human(l.size),
      cell(c.added),
      cell(c.modified),
      cell(c.removed),
      cmdText.length > 80 ? `${cmdText.slice(0, 77)}...` : cmdText,
    ]);
  }
  lines.push(tableText(rows, '  '));
  const e = a.efficiency;
  lines.push(`Total image size: ${human(e.sizeBytes)} (${a.fileCount} files, ${human(a.finalSize)} visible)`);
  lines.push(`Potential wasted space: ${human(e.wastedBytes)}`);
  lines.push(`Image efficiency score: ${pct(e.efficiency)}`);
  lines.push(`User wasted percent: ${pct(e.wastedUserPercent)}`);
  lines.push('');
  lines.push('Inefficient Files:');
  if (!e.inefficiencies.length) lines.push('None');
  else {
    const r = [['Count', 'Wasted Space', 'File Path']];
    for (const i of e.inefficiencies.slice(0, top)) r.push([String(i.count), human(i.cumulativeSize), i.path]);
    lines.push(tableText(r, ''));
    if (e.inefficiencies.length > top) lines.push(`... ${e.inefficiencies.length - top} more (--top N shows more)`);
  }
  return `${lines.join('\n')}\n`;
}

function tableText(rows: string[][], indent: string): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join(''))
    .join('\n');
}

/** dive's CI result lines ("PASS: lowestEfficiency", "Result:PASS [Total:3] …"). */
export function formatCiText(ci: { pass: boolean; rules: CiRuleResult[] }): string {
  let text = '\nResults:\n';
  for (const r of ci.rules)
    text += `  ${r.status === 'pass' ? 'PASS' : r.status === 'fail' ? 'FAIL' : 'SKIP'}: ${r.rule}${r.message && r.status !== 'pass' ? `: ${r.message}` : ''}\n`;
  const n = (s: string) => ci.rules.filter((r) => r.status === s).length;
  text += `Result:${ci.pass ? 'PASS' : 'FAIL'} [Total:${ci.rules.length}] [Passed:${n('pass')}] [Failed:${n('fail')}] [Warn:0] [Skipped:${n('skip')}]\n`;
  return text;
}

export function formatDiffText(d: ImageDiff, limit: number): string {
  const out: string[] = [];
  const name = (x: ImageDiff['a']) => displayName(x);
  out.push(`A: ${name(d.a)}  ${human(d.a.size)} in ${d.a.files} files, ${d.a.packages} packages`);
  out.push(`B: ${name(d.b)}  ${human(d.b.size)} in ${d.b.files} files, ${d.b.packages} packages`);
  out.push(`B - A: ${human(d.b.size - d.a.size)} (${d.sharedLayers} shared layer${d.sharedLayers === 1 ? '' : 's'})`);
  out.push('');
  out.push(
    `Files: ${d.summary.added.count} added (${human(d.summary.added.bytes)}), ${d.summary.removed.count} removed (${human(d.summary.removed.bytes)}), ${d.summary.changed.count} changed (${human(d.summary.changed.bytes)})`,
  );
  const pk = (k: string) => d.packages.filter((p) => p.kind === k).length;
  out.push(`Packages: ${pk('added')} added, ${pk('removed')} removed, ${pk('changed')} changed`);
  if (d.packages.length) {
    out.push('');
    out.push('Packages:');
    for (const p of d.packages) {
      const v = p.kind === 'changed' ? `${p.versionA} -> ${p.versionB}` : (p.versionA ?? p.versionB);
      out.push(`  ${p.kind === 'added' ? '+' : p.kind === 'removed' ? '-' : '~'} ${p.type.padEnd(6)} ${p.name} ${v}`);
    }
  }
  const files = d.files.filter((f) => f.type !== 'directory');
  if (files.length) {
    out.push('');
    const size = (f: (typeof files)[number]) => Math.max(f.sizeA ?? 0, f.sizeB ?? 0);
    const shown = [...files].sort((x, y) => size(y) - size(x) || (x.path < y.path ? -1 : 1)).slice(0, limit);
    out.push(`Files (largest ${shown.length} of ${files.length}):`);
    for (const f of shown) {
      const s =
        f.kind === 'changed'
          ? `${human(f.sizeA ?? 0)} -> ${human(f.sizeB ?? 0)} (${(f.what ?? []).join(', ')})`
          : human(f.sizeA ?? f.sizeB ?? 0);
      out.push(`  ${f.kind === 'added' ? '+' : f.kind === 'removed' ? '-' : '~'} /${f.path}  ${s}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The SBOM as a table, with the count of packages and the OS. */
export function formatSbomTable(packages: Package[], os: OsRelease): string {
  const rows = sbomTableRows(packages);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  let text = rows.map((x) => x.map((c, i) => (i === x.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('')).join('\n');
  text += `\n${packages.length} packages${os.prettyName ? ` on ${os.prettyName}` : ''}\n`;
  return text;
}

export function summaryLine(r: Pick<ScanResult, 'total' | 'summary'>): string {
  return `Total: ${r.total} (${SEVERITIES.map((s) => `${s}: ${r.summary[s]}`).join(', ')})`;
}

const GROUPS: { type: Finding['type']; title: (os: OsRelease) => string }[] = [
  {
    type: 'deb',
    title: (os) =>
      `${os.id ?? 'debian'} ${os.debianVersion ?? os.versionId ?? ''} (os packages)`.replace(/\s+\(/, ' ('),
  },
  { type: 'apk', title: (os) => `${os.id ?? 'alpine'} ${os.versionId ?? ''} (os packages)` },
  { type: 'python', title: () => 'Python (python-pkg)' },
  { type: 'npm', title: () => 'Node.js (node-pkg)' },
];

export function formatScanTable(r: ScanResult, os: OsRelease, image: string): string {
  const out: string[] = [`${image}`, summaryLine(r), ''];
  for (const g of GROUPS) {
    const fs = r.findings.filter((f) => f.type === g.type);
    if (!fs.length) continue;
    const counts = {
      total: fs.length,
      summary: Object.fromEntries(SEVERITIES.map((s) => [s, fs.filter((f) => f.severity === s).length])) as Record<
        Severity,
        number
      >,
    };
    out.push(g.title(os));
    out.push('='.repeat(g.title(os).length));
    out.push(summaryLine(counts));
    out.push('');
    const rows = [['PACKAGE', 'VULNERABILITY ID', 'SEVERITY', 'INSTALLED VERSION', 'FIXED VERSION', 'TITLE']];
    for (const f of fs)
      rows.push([f.package, f.id, f.severity, f.installedVersion, f.fixedVersion ?? '', (f.title ?? '').slice(0, 60)]);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
    for (const x of rows)
      out.push(
        x
          .map((c, i) => (i === x.length - 1 ? c : c.padEnd(widths[i]! + 2)))
          .join('')
          .trimEnd(),
      );
    out.push('');
  }
  if (!r.total) out.push('No known vulnerabilities.');
  if (r.skipped.length)
    out.push(
      `(${r.skipped.length} packages not looked up: ${[...new Set(r.skipped.map((s) => s.reason))].join('; ')})`,
    );
  return `${out.join('\n').trimEnd()}\n`;
}

export function formatScanSarif(r: ScanResult, image: string, tool: { name: string; version: string }): string {
  const level = (s: Severity) => (s === 'CRITICAL' || s === 'HIGH' ? 'error' : s === 'MEDIUM' ? 'warning' : 'note');
  const ids = [...new Set(r.findings.map((f) => f.id))].sort();
  const byId = new Map(r.findings.map((f) => [f.id, f]));
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
              rules: ids.map((id) => {
                const f = byId.get(id)!;
                return {
                  id,
                  shortDescription: { text: f.title ?? id },
                  properties: {
                    'security-severity':
                      f.cvssScore !== undefined
                        ? String(f.cvssScore)
                        : { CRITICAL: '9.5', HIGH: '8.0', MEDIUM: '5.5', LOW: '2.0', UNKNOWN: '0.0' }[f.severity],
                    tags: ['security', 'vulnerability'],
                  },
                };
              }),
            },
          },
          results: r.findings.map((f) => ({
            ruleId: f.id,
            ruleIndex: ids.indexOf(f.id),
            level: level(f.severity),
            message: {
              text: `Package ${f.package} ${f.installedVersion} is affected by ${f.id} (${f.severity})${f.fixedVersion ? `; fixed in ${f.fixedVersion}` : '; no fix yet'}. Image: ${image}.`,
            },
            locations: [
              {
                physicalLocation: { artifactLocation: { uri: f.location } },
                logicalLocations: [{ name: f.purl, kind: 'package' }],
              },
            ],
          })),
        },
      ],
    },
    null,
    2,
  )}\n`;
}
