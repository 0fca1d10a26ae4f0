/**
 * `kiln scan IMAGE --db DIR`: known vulnerabilities of the image's packages, from an offline OSV
 * database directory (JSON records or osv.dev all.zip exports). Summary counts by severity as
 * trivy prints them; table, JSON or SARIF.
 * `kiln scan --secrets IMAGE`: credential patterns in every layer and the config (analyze/secrets.ts);
 * text or JSON; exit 1 (`--exit-code N`) when any is found.
 */
import type { Command } from 'commander';
import { displayName, SEVERITIES, severityRank, type Severity } from '../../analyze/index.js';
import { scan, scanSecrets } from '../../api/index.js';
import { formatScanSarif, formatScanTable, formatSecretsText } from '../../ui/index.js';
import { KilnError, parseBytes, readPackageVersion } from '../../util/index.js';
import { emit, progress } from '../output.js';
import { openStoreFromCli } from '../store.js';

function parseSeverity(s: string, flag: string): Severity {
  const u = s.trim().toUpperCase();
  if (!(SEVERITIES as readonly string[]).includes(u))
    throw new KilnError('USAGE', `invalid ${flag} "${s}": use ${SEVERITIES.join(', ')}`);
  return u as Severity;
}

interface ScanFlags {
  db?: string;
  severity?: string;
  failOn?: string;
  format: string;
  output?: string;
  platform?: string;
  secrets?: boolean;
  exitCode?: string;
  maxFileSize?: string;
}

export function register(program: Command): Command {
  return program
    .command('scan')
    .description(
      "find known vulnerabilities in an image's packages using an offline OSV database (Debian, PyPI, npm, Alpine), with each ecosystem's version order; or, with --secrets, credentials left in any layer or the config",
    )
    .argument('<image>', 'image name or ID in the store, an image archive, or a registry reference')
    .option('--db <dir>', 'directory of OSV records (JSON files, or osv.dev all.zip exports per ecosystem)')
    .option(
      '--secrets',
      'find credentials instead: private keys, AWS/GCP/GitHub/GitLab/Slack/npm tokens, .npmrc/.pypirc/.netrc/.git-credentials/docker config.json credentials, in every layer (deleted files too) and the config; exit 1 when any is found (see docs/security.md)',
    )
    .option('--exit-code <n>', 'with --secrets: the exit code when credentials are found (0: do not fail)', '1')
    .option('--max-file-size <size>', 'with --secrets: skip binary files larger than this (listed as skipped)', '10MB')
    .option('--severity <list>', 'only report these severities (comma-separated: UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL)')
    .option('--fail-on <severity>', 'exit 1 when a reported finding has this severity or a higher one')
    .option('--format <format>', 'table, json or sarif', 'table')
    .option('-o, --output <file>', 'write the result to FILE instead of stdout')
    .option('--platform <os/arch>', 'platform to pick from a multi-platform image')
    .action(async (image: string, flags: ScanFlags, cmd: Command) => {
      if (flags.secrets) return scanForSecrets(image, flags, cmd);
      if (flags.db === undefined)
        throw new KilnError(
          'USAGE',
          'kiln scan needs --db DIR (an OSV database) or --secrets',
          {},
          { hint: 'kiln scan --db ./osv IMAGE, or kiln scan --secrets IMAGE' },
        );
      if (!['table', 'json', 'sarif'].includes(flags.format))
        throw new KilnError('USAGE', `unknown --format "${flags.format}": use table, json or sarif`);
      const keep = flags.severity
        ? new Set(flags.severity.split(',').map((s) => parseSeverity(s, '--severity')))
        : undefined;
      const failOn = flags.failOn ? parseSeverity(flags.failOn, '--fail-on') : undefined;
      const p = progress('scan');
      let r;
      try {
        r = await scan(image, {
          store: await openStoreFromCli(cmd),
          db: flags.db!,
          severities: keep ? [...keep] : undefined,
          platform: flags.platform,
          onLayer: p.onLayer,
        });
      } finally {
        p.done();
      }
      const { image: img, os, ...result } = r;
      const name = displayName(img);
      if (flags.format === 'json')
        await emit(`${JSON.stringify({ image: img, os, ...result }, null, 2)}\n`, flags.output);
      else if (flags.format === 'sarif')
        await emit(formatScanSarif(result, name, { name: 'kiln', version: readPackageVersion() }), flags.output);
      else await emit(formatScanTable(result, os, `${name} (${os.prettyName ?? 'unknown OS'})`), flags.output);
      if (r.db.problems)
        process.stderr.write(`warning: ${r.db.problems} malformed records in ${flags.db} were skipped\n`);
      if (failOn && r.findings.some((f) => severityRank(f.severity) >= severityRank(failOn))) process.exitCode = 1;
    });
}

async function scanForSecrets(image: string, flags: ScanFlags, cmd: Command): Promise<void> {
  if (flags.db !== undefined) throw new KilnError('USAGE', '--secrets and --db are two scans: run them one at a time');
  if (flags.format !== 'table' && flags.format !== 'json')
    throw new KilnError('USAGE', `unknown --format "${flags.format}" for --secrets: use table or json`);
  const exitCode = Number(flags.exitCode);
  if (!/^\d+$/.test(flags.exitCode ?? '') || exitCode > 255)
    throw new KilnError('USAGE', `invalid --exit-code "${flags.exitCode}": a number from 0 to 255`);
  let maxFileSize: number;
  try {
    maxFileSize = parseBytes(flags.maxFileSize ?? '10MB');
  } catch {
    throw new KilnError('USAGE', `invalid --max-file-size "${flags.maxFileSize}"`, {}, { hint: 'e.g. 10MB, 500KB' });
  }
  const p = progress('scan');
  let r;
  try {
    r = await scanSecrets(image, {
      store: await openStoreFromCli(cmd),
      platform: flags.platform,
      maxFileSize,
      onLayer: p.onLayer,
    });
  } finally {
    p.done();
  }
  if (flags.format === 'json') await emit(`${JSON.stringify(r, null, 2)}\n`, flags.output);
  else await emit(formatSecretsText(r, r.image), flags.output);
  if (r.findings.length) process.exitCode = exitCode;
}
