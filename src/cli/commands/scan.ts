/**
 * `kiln scan IMAGE --db DIR`: known vulnerabilities of the image's packages, from an offline OSV
 * database directory (JSON records or osv.dev all.zip exports). Summary counts by severity as
 * trivy prints them; table, JSON or SARIF.
 */
import type { Command } from 'commander';
import {
  catalogImage,
  displayName,
  SEVERITIES,
  filterSeverities,
  scanWithDatabase,
  type Finding,
  type ScanResult,
  severityRank,
  type Severity,
  type OsRelease,
} from '../../analyze/index.js';
import { KilnError } from '../../util/index.js';
import { readPackageVersion } from '../version.js';
import { emit, openImageFromCli, progress } from './analyze.js';

function parseSeverity(s: string, flag: string): Severity {
  const u = s.trim().toUpperCase();
  if (!(SEVERITIES as readonly string[]).includes(u))
    throw new KilnError('USAGE', `invalid ${flag} "${s}": use ${SEVERITIES.join(', ')}`);
  return u as Severity;
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

export function formatScanSarif(r: ScanResult, image: string): string {
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
              name: 'kiln',
              version: readPackageVersion(),
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

interface ScanFlags {
  db?: string;
  severity?: string;
  failOn?: string;
  format: string;
  output?: string;
  platform?: string;
}

export function register(program: Command): Command {
  return program
    .command('scan')
    .description(
      "find known vulnerabilities in an image's packages using an offline OSV database (Debian, PyPI, npm, Alpine), with each ecosystem's version order",
    )
    .argument('<image>', 'image name or ID in the store, an image archive, or a registry reference')
    .requiredOption('--db <dir>', 'directory of OSV records (JSON files, or osv.dev all.zip exports per ecosystem)')
    .option('--severity <list>', 'only report these severities (comma-separated: UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL)')
    .option('--fail-on <severity>', 'exit 1 when a reported finding has this severity or a higher one')
    .option('--format <format>', 'table, json or sarif', 'table')
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(async (image: string, flags: ScanFlags, cmd: Command) => {
      if (!['table', 'json', 'sarif'].includes(flags.format))
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use table, json or sarif`);
      const keep = flags.severity
        ? new Set(flags.severity.split(',').map((s) => parseSeverity(s, '--severity')))
        : undefined;
      const failOn = flags.failOn ? parseSeverity(flags.failOn, '--fail-on') : undefined;
      const src = await openImageFromCli(cmd, image, flags.platform);
      const p = progress('scan');
      let cat;
      try {
        cat = await catalogImage(src, { onLayer: p.onLayer });
      } finally {
        p.done();
        await src.close();
      }
      let r = await scanWithDatabase(cat.packages, cat.os, flags.db!);
      if (keep) r = filterSeverities(r, keep);
      const name = displayName(cat.image);
      if (flags.format === 'json')
        await emit(`${JSON.stringify({ image: cat.image, os: cat.os, ...r }, null, 2)}\n`, flags.output);
      else if (flags.format === 'sarif') await emit(formatScanSarif(r, name), flags.output);
      else await emit(formatScanTable(r, cat.os, `${name} (${cat.os.prettyName ?? 'unknown OS'})`), flags.output);
      if (r.db.problems)
        process.stderr.write(`warning: ${r.db.problems} malformed records in ${flags.db} were skipped\n`);
      if (failOn && r.findings.some((f) => severityRank(f.severity) >= severityRank(failOn))) process.exitCode = 1;
    });
}
