/**
 * `kiln diff --ci --baseline REF IMAGE` on real images built from the test bases: a release that
 * changed nothing passes (exit 0); one that breaks each rule fails (exit 1) naming each break —
 * size growth, a new package, a setuid file, a world-writable directory, root as the final user,
 * new vulnerabilities split into the base image's and your layers', a new port — in text, JSON
 * and SARIF 2.1.0 (its shape checked); usage errors exit 2. `kiln report --baseline` shows it.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-gate-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));
const env = { KILN_NO_PROGRESS: '1' };

async function kiln(args: string[], expectCode = 0) {
  const r = await runKiln(args, { root, env, timeoutMs: 300_000 });
  assert.equal(r.code, expectCode, `kiln ${args.join(' ')} → ${r.code}\n${r.stderr}\n${r.stdout.slice(0, 3000)}`);
  return r;
}

function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), content);
  }
  return dir;
}

interface Gate {
  pass: boolean;
  baseLayers: number;
  rules: {
    rule: string;
    status: string;
    message: string;
    findings: { message: string; path?: string; origin?: string; id?: string }[];
  }[];
}
const rule = (g: Gate, id: string) => g.rules.find((r) => r.rule === id)!;

describe('kiln diff --ci', { skip }, () => {
  const db = path.join(work, 'osv');
  before(async () => {
    await kiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm']);
    await kiln(['import', await ensureBaseTar('python-slim'), 'python-slim:bookworm']);
    const app = { 'app.txt': 'app\n' };
    // The last release: Debian, an unprivileged user, one port.
    await kiln([
      'build',
      '-q',
      '-t',
      'app:1',
      context('v1', {
        ...app,
        Dockerfile: 'FROM debian-slim:bookworm\nCOPY app.txt /app/\nUSER 1000\nEXPOSE 8080\n',
      }),
    ]);
    // The candidate: a bigger base (python), an npm package, a setuid copy of true, a 0777
    // directory, root, a second port.
    await kiln([
      'build',
      '-q',
      '-t',
      'app:2',
      context('v2', {
        ...app,
        'node_modules/left-pad/package.json': JSON.stringify({ name: 'left-pad', version: '1.3.0' }),
        Dockerfile: [
          'FROM python-slim:bookworm',
          'COPY app.txt /app/',
          'COPY node_modules /app/node_modules',
          'RUN cp /bin/true /app/suid-true && chmod 4755 /app/suid-true && mkdir /app/shared && chmod 0777 /app/shared',
          'EXPOSE 8080 9090',
        ].join('\n'),
      }),
    ]);
    // OSV records: one for python3.11 (in the new base only), one for left-pad (your layer), one
    // for bash (in both: not new).
    mkdirSync(db, { recursive: true });
    const deb = (id: string, name: string) => ({
      id,
      upstream: [id.replace('DEBIAN-', '')],
      affected: [
        {
          package: { ecosystem: 'Debian:12', name },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }],
          ecosystem_specific: { urgency: 'high' },
        },
      ],
    });
    writeFileSync(path.join(db, 'py.json'), JSON.stringify(deb('DEBIAN-CVE-2099-0101', 'python3.11')));
    writeFileSync(path.join(db, 'bash.json'), JSON.stringify(deb('DEBIAN-CVE-2099-0103', 'bash')));
    writeFileSync(
      path.join(db, 'npm.json'),
      JSON.stringify({
        id: 'GHSA-2099-0102-abcd',
        aliases: ['CVE-2099-0102'],
        affected: [
          {
            package: { ecosystem: 'npm', name: 'left-pad' },
            ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '1.3.1' }] }],
          },
        ],
      }),
    );
  });

  test('the same image passes every rule: exit 0', async () => {
    const r = await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:1', '--db', db]);
    assert.match(r.stdout, /^Result: PASS \[rules: 7\] \[passed: 7\] \[failed: 0\] \[skipped: 0\]$/m);
  });

  test('each broken rule is named: exit 1; vulnerabilities split into base image and your layers', async () => {
    const r = await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:2', '--db', db, '--format', 'json'], 1);
    const g = JSON.parse(r.stdout) as Gate;
    assert.equal(g.pass, false);
    for (const id of ['size-growth', 'new-packages', 'new-setuid', 'new-world-writable', 'root-user', 'new-ports'])
      assert.equal(rule(g, id).status, 'fail', `${id}: ${JSON.stringify(rule(g, id))}`);
    assert.ok(rule(g, 'new-packages').findings.some((f) => f.message === 'npm left-pad 1.3.0'));
    assert.ok(rule(g, 'new-packages').findings.some((f) => /^deb python3\.11 /.test(f.message)));
    assert.deepEqual(
      rule(g, 'new-setuid').findings.map((f) => f.path),
      ['/app/suid-true'],
    );
    assert.deepEqual(
      rule(g, 'new-world-writable').findings.map((f) => f.message),
      ['directory 0777 /app/shared'],
    );
    assert.match(rule(g, 'root-user').message, /1000 → root/);
    assert.deepEqual(
      rule(g, 'new-ports').findings.map((f) => f.message),
      ['EXPOSE 9090/tcp'],
    );
    // The imported base is one layer without a Dockerfile step's history comment.
    assert.equal(g.baseLayers, 1);
    const vulns = rule(g, 'new-vulnerabilities');
    assert.equal(vulns.status, 'fail');
    const byId = new Map(vulns.findings.map((f) => [f.id, f.origin]));
    assert.equal(byId.get('CVE-2099-0101'), 'base image');
    assert.equal(byId.get('CVE-2099-0102'), 'your layers');
    assert.ok(!byId.has('CVE-2099-0103'), 'bash is vulnerable in both: not new');
    assert.match(vulns.message, /from the base image, 1 from your layers$/);
    // --base names the base explicitly: the same split.
    const withBase = JSON.parse(
      (
        await kiln(
          [
            'diff',
            '--ci',
            '--baseline',
            'app:1',
            'app:2',
            '--db',
            db,
            '--base',
            'python-slim:bookworm',
            '--format',
            'json',
          ],
          1,
        )
      ).stdout,
    ) as Gate;
    assert.equal(withBase.baseLayers, 1);
    // Text: the rules and the split.
    const t = await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:2', '--db', db], 1);
    assert.match(t.stdout, /^FAIL new-setuid: 1 new setuid\/setgid files\n +setuid 4755 \/app\/suid-true$/m);
    assert.match(t.stdout, /from the base image:\n +CVE-2099-0101 \(HIGH\) in (lib)?python3\.11/);
    assert.match(t.stdout, /from your layers:\n +CVE-2099-0102 \(\w+\) in left-pad 1\.3\.0, fixed in 1\.3\.1/);
    assert.match(t.stdout, /^Result: FAIL /m);
  });

  test('limits and skipped rules: the same candidate passes when its breaks are allowed', async () => {
    const r = await kiln([
      'diff',
      '--ci',
      '--baseline',
      'app:1',
      'app:2',
      '--max-growth',
      'off',
      '--max-growth-mb',
      'off',
      '--skip-rule',
      'new-packages,new-setuid',
      '--skip-rule',
      'new-world-writable',
      '--skip-rule',
      'root-user',
      '--skip-rule',
      'new-ports',
    ]);
    assert.match(r.stdout, /^PASS size-growth: /m);
    assert.match(r.stdout, /^SKIP new-vulnerabilities: no vulnerability database/m);
    assert.match(r.stdout, /^Result: PASS /m);
  });

  test('SARIF 2.1.0: the shape code scanning reads, one result per finding', async () => {
    const r = await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:2', '--db', db, '--format', 'sarif'], 1);
    const s = JSON.parse(r.stdout) as {
      version: string;
      $schema: string;
      runs: {
        tool: { driver: { name: string; rules: { id: string; shortDescription: { text: string } }[] } };
        results: {
          ruleId: string;
          ruleIndex: number;
          level: string;
          message: { text: string };
          locations: { physicalLocation: { artifactLocation: { uri: string } } }[];
        }[];
      }[];
    };
    assert.equal(s.version, '2.1.0');
    assert.match(s.$schema, /sarif-2\.1\.0/);
    assert.equal(s.runs.length, 1);
    const run = s.runs[0]!;
    assert.equal(run.tool.driver.name, 'kiln');
    assert.equal(run.tool.driver.rules.length, 7);
    for (const res of run.results) {
      assert.equal(run.tool.driver.rules[res.ruleIndex]!.id, res.ruleId);
      assert.ok(['error', 'warning', 'note', 'none'].includes(res.level));
      assert.ok(res.message.text.length > 0);
      assert.ok(
        res.locations.length === 1 && typeof res.locations[0]!.physicalLocation.artifactLocation.uri === 'string',
      );
      assert.ok(!res.locations[0]!.physicalLocation.artifactLocation.uri.startsWith('/'), 'a relative URI');
    }
    assert.ok(
      run.results.some(
        (x) => x.ruleId === 'new-setuid' && x.locations[0]!.physicalLocation.artifactLocation.uri === 'app/suid-true',
      ),
    );
    assert.ok(run.results.some((x) => x.ruleId === 'new-vulnerabilities' && /from your layers/.test(x.message.text)));
  });

  test('usage errors exit 2', async () => {
    await kiln(['diff', '--ci', 'app:2'], 2);
    await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:2', '--skip-rule', 'nope'], 2);
    await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:2', '--max-growth', 'ten'], 2);
    await kiln(['diff', '--ci', '--baseline', 'app:1', 'app:2', '--format', 'html'], 2);
    await kiln(['diff', '--baseline', 'app:1', 'app:2'], 2);
  });

  test('kiln report --baseline shows the comparison', async () => {
    const out = path.join(work, 'report.html');
    await kiln(['report', 'app:2', '--baseline', 'app:1', '--db', db, '-o', out]);
    const html = readFileSync(out, 'utf8');
    assert.match(html, /Against the baseline app:1/);
    assert.match(html, /new-setuid/);
    assert.match(html, /\/app\/suid-true/);
  });
});
