/**
 * analyze/sbom/diff/history/scan on real images: Debian bases made from Debian packages
 * (make-base-rootfs.sh), imported and built with kiln itself.
 *  - SBOM Debian packages == `dpkg-query -W` run inside the image with `kiln run` (the oracle).
 *  - a venv's Python packages == `pip list` run inside the image; a node_modules tree's versions
 *    == what node's own module resolution finds inside the image.
 *  - analyze on an image built to waste known amounts reports exactly those amounts (dive's
 *    definitions; the base layer's byte total comes from GNU tar's listing, independently).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { fixturesDir } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';

const noBases = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-analyze-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));
const env = { KILN_NO_PROGRESS: '1' };

function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), content);
  }
  return dir;
}

async function kiln(args: string[], expectCode = 0) {
  const r = await runKiln(args, { root, env, timeoutMs: 240_000 });
  assert.equal(r.code, expectCode, `kiln ${args.join(' ')} → ${r.code}\n${r.stderr}`);
  return r;
}

async function inImage(image: string, script: string): Promise<string> {
  return (await kiln(['run', '--entrypoint', '', '--network', 'none', image, 'sh', '-c', script])).stdout;
}

interface Pkg {
  type: string;
  name: string;
  version: string;
  location: string;
  layer: number;
  licenses: string[];
  purl: string;
}
async function sbom(image: string): Promise<{ packages: Pkg[]; os: { id?: string; versionId?: string } }> {
  return JSON.parse((await kiln(['sbom', image, '--format', 'json'])).stdout);
}

describe('on Debian-based images', { skip: noBases }, () => {
  before(async () => {
    await kiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm']);
    await kiln(['import', await ensureBaseTar('python-slim'), 'python-slim:bookworm']);
    await kiln(['import', await ensureBaseTar('node-slim'), 'node-slim:bookworm']);
  });

  test("SBOM's Debian packages equal dpkg-query -W inside the image (kiln run)", async () => {
    for (const image of ['debian-slim:bookworm', 'python-slim:bookworm']) {
      const s = await sbom(image);
      const mine = s.packages
        .filter((p) => p.type === 'deb')
        .map((p) => `${p.name}\t${p.version}`)
        .sort();
      const oracle = (await inImage(image, "dpkg-query -W -f '${Package}\\t${Version}\\n'")).trim().split('\n').sort();
      assert.ok(oracle.length > 50, `dpkg-query listed ${oracle.length} packages`);
      assert.deepEqual(mine, oracle, image);
      assert.equal(s.os.id, 'debian');
      assert.equal(s.os.versionId, '12');
      const libc = s.packages.find((p) => p.name === 'libc6')!;
      assert.match(libc.purl, /^pkg:deb\/debian\/libc6@2\.36-[^?]+\?arch=amd64&distro=debian-12\.\d+&upstream=glibc$/);
      assert.ok(libc.licenses.length > 0, 'licences from /usr/share/doc/libc6/copyright');
    }
  });

  test("a venv's Python packages equal pip list inside the image; the layer that brought each", async () => {
    const ctx = context('venv', {
      Dockerfile: [
        'FROM python-slim:bookworm',
        'RUN python3 -m venv /venv',
        'COPY demo/ /src/demo/',
        'RUN /venv/bin/pip install --no-index --no-build-isolation /src/demo',
        'RUN mkdir -p /usr/local/lib/python3.11/site-packages/gone-1.0.dist-info && printf "Name: gone\\nVersion: 1.0\\n" > /usr/local/lib/python3.11/site-packages/gone-1.0.dist-info/METADATA',
        'RUN rm -rf /usr/local/lib/python3.11/site-packages/gone-1.0.dist-info',
      ].join('\n'),
      'demo/setup.py':
        "from setuptools import setup\nsetup(name='kiln-demo', version='1.2.3rc1', py_modules=['kiln_demo'], license='MIT')\n",
      'demo/kiln_demo.py': 'X = 1\n',
    });
    await kiln(['build', '-t', 'venv:1', ctx]);
    const s = await sbom('venv:1');
    const venv = s.packages.filter((p) => p.type === 'python' && p.location.startsWith('venv/'));
    const oracle = JSON.parse(await inImage('venv:1', '/venv/bin/pip list --format=json')) as {
      name: string;
      version: string;
    }[];
    const norm = (n: string) => n.toLowerCase().replace(/[-_.]+/g, '-');
    assert.deepEqual(
      venv.map((p) => `${norm(p.name)}==${p.version}`).sort(),
      oracle.map((p) => `${norm(p.name)}==${p.version}`).sort(),
    );
    const demo = venv.find((p) => p.name === 'kiln-demo')!;
    assert.equal(demo.version, '1.2.3rc1');
    assert.equal(demo.layer, 3, 'installed by the fourth layer');
    assert.equal(demo.purl, 'pkg:pypi/kiln-demo@1.2.3rc1');
    assert.equal(venv.find((p) => p.name === 'pip')!.layer, 1, 'pip came with the venv layer');
    assert.ok(!s.packages.some((p) => p.name === 'gone'), 'a package deleted by a later layer is not reported');
  });

  test("a node_modules tree's versions equal node's own resolution inside the image", async () => {
    const pj = (name: string, version: string, deps: Record<string, string> = {}) =>
      JSON.stringify({ name, version, license: 'MIT', main: 'index.js', dependencies: deps });
    const ctx = context('node', {
      Dockerfile: 'FROM node-slim:bookworm\nWORKDIR /app\nCOPY app/ /app/\n',
      'app/package.json': pj('demo-app', '0.1.0', { 'left-pad': '^1.3.0', '@kiln/util': '2.0.0-beta.3' }),
      'app/package-lock.json': JSON.stringify({
        name: 'demo-app',
        lockfileVersion: 3,
        packages: {
          '': { name: 'demo-app', version: '0.1.0' },
          'node_modules/left-pad': { version: '1.3.0' },
          'node_modules/@kiln/util': { version: '2.0.0-beta.3' },
          'node_modules/@kiln/util/node_modules/left-pad': { version: '1.1.3' },
          'node_modules/not-installed': { version: '9.9.9' },
          'node_modules/jest': { version: '29.7.0', dev: true },
        },
      }),
      'app/node_modules/left-pad/package.json': pj('left-pad', '1.3.0'),
      'app/node_modules/left-pad/index.js': 'module.exports = 1;\n',
      'app/node_modules/@kiln/util/package.json': pj('@kiln/util', '2.0.0-beta.3', { 'left-pad': '1.1.3' }),
      'app/node_modules/@kiln/util/index.js': 'module.exports = require("left-pad/package.json").version;\n',
      'app/node_modules/@kiln/util/node_modules/left-pad/package.json': pj('left-pad', '1.1.3'),
      'app/node_modules/@kiln/util/node_modules/left-pad/index.js': 'module.exports = 1;\n',
    });
    await kiln(['build', '-t', 'node:1', ctx]);
    const s = await sbom('node:1');
    const npm = s.packages.filter((p) => p.type === 'npm');
    const installed = npm
      .filter((p) => p.location.includes('node_modules/'))
      .map((p) => `${p.location} ${p.name}@${p.version}`)
      .sort();
    assert.deepEqual(installed, [
      'app/node_modules/@kiln/util @kiln/util@2.0.0-beta.3',
      'app/node_modules/@kiln/util/node_modules/left-pad left-pad@1.1.3',
      'app/node_modules/left-pad left-pad@1.3.0',
      'app/node_modules/not-installed not-installed@9.9.9',
    ]);
    const layers = JSON.parse((await kiln(['inspect', 'node:1'])).stdout)[0].RootFS.Layers.length;
    assert.equal(npm.find((p) => p.name === 'not-installed')!.layer, layers - 1, 'brought by the COPY layer');
    // The oracle: node's module resolution from /app and from inside @kiln/util.
    const out = await inImage(
      'node:1',
      'cd /app && node -e \'console.log(require("left-pad/package.json").version, require("@kiln/util/package.json").version, require("@kiln/util"))\'',
    );
    assert.equal(out.trim(), '1.3.0 2.0.0-beta.3 1.1.3');
    assert.ok(!npm.some((p) => p.name === 'jest'), 'dev dependencies of the lock are left out');
    const cdx = JSON.parse((await kiln(['sbom', 'node:1', '--format', 'cyclonedx-json'])).stdout);
    assert.equal(cdx.bomFormat, 'CycloneDX');
    const util = cdx.components.find((c: { name: string; group?: string }) => c.group === '@kiln' && c.name === 'util');
    assert.equal(util.purl, 'pkg:npm/%40kiln/util@2.0.0-beta.3');
    const spdx = JSON.parse((await kiln(['sbom', 'node:1', '--format', 'spdx-json'])).stdout);
    assert.equal(spdx.spdxVersion, 'SPDX-2.3');
    assert.equal(spdx.packages.length, s.packages.length + 1);
  });

  test('analyze reports the waste an image was built with, exactly (dive definitions), and --ci gates on it', async () => {
    const ctx = context('waste', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN head -c 1000000 /dev/zero > /big && head -c 300000 /dev/zero > /keep && mkdir /data && head -c 200000 /dev/zero > /data/a && head -c 100000 /dev/zero > /data/b',
        'RUN head -c 500000 /dev/urandom > /big',
        'RUN rm /big && rm -rf /data',
        'RUN chmod 600 /keep',
      ].join('\n'),
    });
    await kiln(['build', '-t', 'waste:1', ctx]);
    const a = JSON.parse((await kiln(['analyze', 'waste:1', '--format', 'json'])).stdout);
    const e = a.efficiency;
    const byPath = new Map(e.inefficiencies.map((i: { path: string }) => [i.path, i]));
    assert.deepEqual(byPath.get('/big'), { path: '/big', cumulativeSize: 1_500_000, count: 3, layers: [1, 2, 3] });
    assert.deepEqual(byPath.get('/keep'), { path: '/keep', cumulativeSize: 600_000, count: 2, layers: [1, 4] });
    assert.ok(!byPath.has('/data'), 'a deleted directory is one reference (dive counts it once)');
    assert.equal(e.wastedBytes, 2_100_000);
    assert.deepEqual(e.layerSizes.slice(1), [1_600_000, 500_000, 0, 300_000]);
    assert.equal(e.userSizeBytes, 2_400_000);
    assert.equal(e.wastedUserPercent, 2_100_000 / 2_400_000);
    // Σ sizes of the base layer, from GNU tar's own listing of the base rootfs.
    const listing = spawnSync('tar', ['-tvf', await ensureBaseTar('debian-slim')], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    }).stdout;
    let s0 = 0;
    for (const line of listing.split('\n')) {
      const m = /^(\S)\S*\s+\S+\s+(\d+)\s/.exec(line);
      if (m && (m[1] === '-' || m[1] === 'd')) s0 += Number(m[2]);
    }
    assert.equal(e.layerSizes[0], s0);
    // Σ minimum sizes / Σ cumulative sizes: /big 0/1.5M, /keep 300k/600k, /data/a, /data/b and /data once each.
    assert.equal(e.efficiency, (s0 + 900_000) / (s0 + 2_700_000));
    // Per-layer changes.
    assert.deepEqual(a.layers[2].changes.modified, { count: 1, bytes: 500_000 });
    assert.deepEqual(a.layers[3].changes.removed, { count: 3, bytes: 800_000 });
    assert.deepEqual(a.layers[4].changes.modified, { count: 1, bytes: 300_000 });
    // --ci: dive's default user-wasted threshold (0.1) fails; a lenient one passes.
    const fail = await kiln(['analyze', 'waste:1', '--ci'], 1);
    assert.match(fail.stdout, /FAIL: highestUserWastedPercent/);
    assert.match(fail.stdout, /Result:FAIL/);
    const pass = await kiln([
      'analyze',
      'waste:1',
      '--ci',
      '--lowest-efficiency',
      '0.5',
      '--highest-user-wasted-percent',
      '0.9',
      '--highest-wasted-bytes',
      '2.1MB',
    ]);
    assert.match(pass.stdout, /Result:PASS/);
    await kiln(
      ['analyze', 'waste:1', '--ci', '--highest-user-wasted-percent', 'disabled', '--highest-wasted-bytes', '2MB'],
      1,
    );
  });

  test('history and diff', async () => {
    const h = await kiln(['history', 'waste:1', '--format', 'json']);
    const rows = h.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(rows.length, 5);
    assert.match(rows[0].CreatedBy, /chmod 600 \/keep/);
    assert.equal(
      rows[3].Size,
      1_600_000,
      `the first RUN layer's files, as docker history counts them (not its tar): ${rows[3].Size}`,
    );
    const d = JSON.parse((await kiln(['diff', 'debian-slim:bookworm', 'waste:1', '--format', 'json'])).stdout);
    assert.equal(d.sharedLayers, 1);
    const files = new Map(
      d.files.filter((f: { type: string }) => f.type !== 'directory').map((f: { path: string }) => [f.path, f]),
    );
    assert.deepEqual(files.get('keep'), { path: 'keep', kind: 'added', type: 'file', sizeB: 300_000 });
    assert.ok(!files.has('big') && !files.has('data/a'));
    assert.equal(d.summary.added.bytes, 300_000);
    assert.equal(d.packages.length, 0);
    const py = JSON.parse(
      (await kiln(['diff', 'debian-slim:bookworm', 'python-slim:bookworm', '--format', 'json'])).stdout,
    );
    assert.ok(py.packages.some((p: { kind: string; name: string }) => p.kind === 'added' && p.name === 'python3.11'));
    assert.ok(py.summary.added.bytes > 10_000_000);
  });

  test('scan: the image against OSV fixtures; summary counts; --fail-on; SARIF', async () => {
    const db = path.join(work, 'osv');
    mkdirSync(db, { recursive: true });
    const s = await sbom('debian-slim:bookworm');
    const bash = s.packages.find((p) => p.name === 'bash')!;
    // A record for the installed bash: unfixed (affected), and one fixed before it (not affected).
    writeFileSync(
      path.join(db, 'a.json'),
      JSON.stringify({
        id: 'DEBIAN-CVE-2099-0001',
        upstream: ['CVE-2099-0001'],
        affected: [
          {
            package: { ecosystem: 'Debian:12', name: 'bash' },
            ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }],
            ecosystem_specific: { urgency: 'medium' },
          },
        ],
      }),
    );
    writeFileSync(
      path.join(db, 'b.json'),
      JSON.stringify({
        id: 'DEBIAN-CVE-2099-0002',
        upstream: ['CVE-2099-0002'],
        affected: [
          {
            package: { ecosystem: 'Debian:12', name: 'bash' },
            ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '5.0-1' }] }],
          },
        ],
      }),
    );
    const r = await kiln(['scan', 'debian-slim:bookworm', '--db', db]);
    assert.match(r.stdout, /Total: 1 \(UNKNOWN: 0, LOW: 0, MEDIUM: 1, HIGH: 0, CRITICAL: 0\)/);
    assert.match(r.stdout, new RegExp(`bash\\s+CVE-2099-0001\\s+MEDIUM\\s+${bash.version.replace(/[+.]/g, '\\$&')}`));
    await kiln(['scan', 'debian-slim:bookworm', '--db', db, '--fail-on', 'medium'], 1);
    await kiln(['scan', 'debian-slim:bookworm', '--db', db, '--fail-on', 'HIGH']);
    const sarif = JSON.parse((await kiln(['scan', 'debian-slim:bookworm', '--db', db, '--format', 'sarif'])).stdout);
    assert.equal(sarif.runs[0].results[0].ruleId, 'CVE-2099-0001');
    const fx = await kiln(['scan', 'debian-slim:bookworm', '--db', path.join(fixturesDir, 'osv'), '--format', 'json']);
    const j = JSON.parse(fx.stdout);
    assert.ok(
      j.findings.every((f: { package: string }) => ['bash', 'libc6', 'zlib1g', 'libssl3'].includes(f.package)),
      'only packages of this image',
    );
    const libc = s.packages.find((p) => p.name === 'libc6')!;
    // The fixture's glibc fix is 2.36-9+deb12u4: affected exactly when the image's libc6 is older.
    const dpkgSays = spawnSync('dpkg', ['--compare-versions', libc.version, 'lt', '2.36-9+deb12u4']).status === 0;
    assert.equal(
      j.findings.some((f: { id: string }) => f.id === 'CVE-2023-0001'),
      dpkgSays,
    );
  });

  test('an image archive is read in place (docker-archive and OCI)', async () => {
    for (const format of ['docker', 'oci']) {
      const file = path.join(work, `waste-${format}.tar`);
      await kiln(['save', '--format', format, '-o', file, 'waste:1']);
      const a = JSON.parse((await kiln(['analyze', file, '--format', 'json'])).stdout);
      assert.equal(a.efficiency.wastedBytes, 2_100_000, format);
      const s = JSON.parse(
        (await kiln(['sbom', `${format === 'docker' ? 'docker-archive' : 'oci-archive'}:${file}`, '--format', 'json']))
          .stdout,
      );
      assert.ok(s.packages.length > 50);
    }
  });
});
