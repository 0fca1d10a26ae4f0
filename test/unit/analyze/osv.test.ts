import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { deflateRawSync, crc32 } from 'node:zlib';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixturesDir } from '../../helpers/paths.js';
import { OsvDatabase } from '../../../src/analyze/osv/db.js';
import { parseOsvRecord } from '../../../src/analyze/osv/schema.js';
import { evaluateRange, matchRecord } from '../../../src/analyze/osv/match.js';
import { cvss2BaseScore, cvss3BaseScore } from '../../../src/analyze/osv/cvss.js';
import { scanPackages, scanWithDatabase, type Finding } from '../../../src/analyze/scan.js';
import { makePurl } from '../../../src/analyze/sbom/purl.js';
import type { OsRelease, Package } from '../../../src/analyze/sbom/types.js';

const osvDir = path.join(fixturesDir, 'osv');
const debian12: OsRelease = { id: 'debian', versionId: '12', debianVersion: '12.5' };

function pkg(type: Package['type'], name: string, version: string, extra: Partial<Package> = {}): Package {
  return { type, name, version, purl: makePurl(type, name, version), licenses: [], location: 'x', layer: 0, ...extra };
}

let db: OsvDatabase;
before(async () => {
  db = await OsvDatabase.load(osvDir);
});

function scanOne(p: Package, osr: OsRelease = debian12): Finding[] {
  return scanPackages([p], osr, db).findings;
}
const ids = (fs: Finding[]) => fs.map((f) => f.id).sort();

describe('Debian (dpkg order, source packages, releases)', () => {
  test('fixed: an older version is affected, the fix and later are not', () => {
    const fs = scanOne(pkg('deb', 'libc6', '2.36-9+deb12u3', { sourceName: 'glibc' }));
    assert.deepEqual(ids(fs), ['CVE-2023-0001', 'CVE-2023-0005']);
    const a = fs.find((f) => f.id === 'CVE-2023-0001')!;
    assert.equal(a.fixedVersion, '2.36-9+deb12u4');
    // Debian's urgency for this CVE wins over the bundled advisory's CVSS.
    assert.equal(a.severity, 'HIGH');
    assert.deepEqual(a.records.sort(), ['DEBIAN-CVE-2023-0001', 'DSA-5500-1']);
    assert.equal(fs.find((f) => f.id === 'CVE-2023-0005')!.severity, 'CRITICAL');
    assert.deepEqual(scanOne(pkg('deb', 'libc6', '2.36-9+deb12u4', { sourceName: 'glibc' })), []);
    assert.deepEqual(scanOne(pkg('deb', 'libc6', '2.36-9+deb12u10', { sourceName: 'glibc' })), []);
  });
  test('epochs: 1.3 (epoch 0) is older than 1:1.2.13, 2:1.0 is newer', () => {
    const f = scanOne(pkg('deb', 'zlib1g', '1:1.2.13.dfsg-1', { sourceName: 'zlib' }));
    assert.deepEqual(ids(f), ['CVE-2023-0002']);
    assert.equal(f[0]!.severity, 'MEDIUM');
    assert.equal(f[0]!.fixedVersion, '1:1.2.13.dfsg-1+deb12u1');
    assert.deepEqual(ids(scanOne(pkg('deb', 'zlib1g', '1.3-1', { sourceName: 'zlib' }))), ['CVE-2023-0002']);
    assert.deepEqual(scanOne(pkg('deb', 'zlib1g', '2:1.0-1', { sourceName: 'zlib' })), []);
  });
  test('tildes: ~deb12u1 < ~deb12u2 < the plain revision', () => {
    const f = scanOne(pkg('deb', 'libssl3', '3.0.11-1~deb12u1', { sourceName: 'openssl' }));
    assert.deepEqual(ids(f), ['CVE-2023-0003']);
    // "not yet assigned" urgency: the CVSS vector decides (5.9 → MEDIUM).
    assert.equal(f[0]!.severity, 'MEDIUM');
    assert.equal(f[0]!.cvssScore, 5.9);
    assert.deepEqual(scanOne(pkg('deb', 'libssl3', '3.0.11-1~deb12u2', { sourceName: 'openssl' })), []);
    assert.deepEqual(scanOne(pkg('deb', 'libssl3', '3.0.11-1', { sourceName: 'openssl' })), []);
  });
  test('unfixed: affected, no fixed version, "unimportant" is LOW; binNMU matched by source version', () => {
    const f = scanOne(pkg('deb', 'bash', '5.2.15-2+b2', { sourceVersion: '5.2.15-2' }));
    assert.deepEqual(ids(f), ['CVE-2023-0004']);
    assert.equal(f[0]!.fixedVersion, undefined);
    assert.equal(f[0]!.severity, 'LOW');
    assert.equal(f[0]!.installedVersion, '5.2.15-2+b2');
  });
  test('another release does not match', () => {
    assert.deepEqual(scanOne(pkg('deb', 'curl', '7.74.0-1.3+deb11u1')), []);
    const d11 = scanOne(pkg('deb', 'libc6', '2.31-13+deb11u5', { sourceName: 'glibc' }), {
      id: 'debian',
      versionId: '11',
    });
    assert.deepEqual(ids(d11), ['CVE-2023-0001']);
  });
});

describe('PyPI (PEP 440 order, name normalisation)', () => {
  test('fixed range with an introduced bound', () => {
    const f = scanOne(pkg('python', 'django', '4.2.7'));
    assert.deepEqual(ids(f), ['CVE-2023-1001']);
    assert.equal(f[0]!.severity, 'MEDIUM'); // GitHub's MODERATE
    assert.equal(f[0]!.records.length, 2); // GHSA + PYSEC: one finding
    assert.equal(f[0]!.fixedVersion, '4.2.8');
    assert.deepEqual(scanOne(pkg('python', 'Django', '4.2.8')), []);
    assert.deepEqual(scanOne(pkg('python', 'django', '3.2.20')), []);
  });
  test('a pre-release of the fix is still affected', () => {
    assert.deepEqual(ids(scanOne(pkg('python', 'django', '4.2.8rc1'))), ['CVE-2023-1001']);
    assert.deepEqual(ids(scanOne(pkg('python', 'django', '4.0a1'))), []);
  });
  test('last_affected: up to and including it', () => {
    const f = scanOne(pkg('python', 'requests', '2.31.0'));
    assert.deepEqual(ids(f), ['CVE-2023-1002']);
    assert.equal(f[0]!.fixedVersion, undefined);
    assert.equal(f[0]!.severity, 'MEDIUM'); // CVSS 5.4
    assert.deepEqual(scanOne(pkg('python', 'requests', '2.31.1')), []);
    assert.deepEqual(scanOne(pkg('python', 'requests', '2.32.0.dev1')), []);
  });
  test('versions list', () => {
    assert.deepEqual(ids(scanOne(pkg('python', 'urllib3', '1.26.1'))), ['CVE-2023-1003']);
    assert.deepEqual(scanOne(pkg('python', 'urllib3', '1.26.2')), []);
  });
});

describe('npm (SemVer)', () => {
  test('fixed, and withdrawn records ignored', () => {
    const f = scanOne(pkg('npm', 'lodash', '4.17.20'));
    assert.deepEqual(ids(f), ['CVE-2023-2001']);
    assert.equal(f[0]!.severity, 'CRITICAL');
    assert.equal(f[0]!.cvssScore, 9.8);
    assert.deepEqual(scanOne(pkg('npm', 'lodash', '4.17.21')), []);
  });
  test('pre-release identifiers compare numerically', () => {
    assert.deepEqual(scanOne(pkg('npm', '@kiln/widget', '1.0.0-beta.1')), []);
    const f = scanOne(pkg('npm', '@kiln/widget', '1.0.0-beta.10'));
    assert.deepEqual(ids(f), ['GHSA-kiln-0102']);
    assert.equal(f[0]!.severity, 'HIGH');
    assert.deepEqual(scanOne(pkg('npm', '@kiln/widget', '1.0.0')), []);
  });
  test('limit events', () => {
    const f = scanOne(pkg('npm', 'left-pad', '1.5.0'));
    assert.deepEqual(ids(f), ['GHSA-kiln-0104']);
    assert.equal(f[0]!.severity, 'UNKNOWN');
    assert.deepEqual(scanOne(pkg('npm', 'left-pad', '2.1.0')), []);
  });
});

describe('Alpine (apk order)', () => {
  test('fixed in -r16', () => {
    const alpine: OsRelease = { id: 'alpine', versionId: '3.19.1' };
    assert.deepEqual(ids(scanOne(pkg('apk', 'busybox', '1.36.1-r15'), alpine)), ['CVE-2023-3001']);
    assert.deepEqual(scanOne(pkg('apk', 'busybox', '1.36.1-r16'), alpine), []);
    assert.deepEqual(scanOne(pkg('apk', 'busybox', '1.36.1-r15'), { id: 'alpine', versionId: '3.18.4' }), []);
  });
});

describe('summary and database', () => {
  test('counts by severity', () => {
    const r = scanPackages(
      [
        pkg('deb', 'libc6', '2.36-9+deb12u3', { sourceName: 'glibc' }),
        pkg('deb', 'bash', '5.2.15-2'),
        pkg('npm', 'lodash', '4.17.20'),
        pkg('npm', 'left-pad', '1.0.0'),
      ],
      debian12,
      db,
    );
    assert.deepEqual(r.summary, { UNKNOWN: 1, LOW: 1, MEDIUM: 0, HIGH: 1, CRITICAL: 2 });
    assert.equal(r.total, 5);
    assert.deepEqual(
      r.findings.map((f) => f.severity),
      ['CRITICAL', 'CRITICAL', 'HIGH', 'LOW', 'UNKNOWN'],
    );
  });
  test('only wanted records are kept in memory', async () => {
    const r = await scanWithDatabase([pkg('npm', 'lodash', '4.17.20')], debian12, osvDir);
    assert.equal(r.db.kept, 2); // GHSA-kiln-0101 and the withdrawn one
    assert.equal(r.total, 1);
  });
  test('osv.dev all.zip exports are read (deflate and stored members)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-osv-'));
    try {
      const files = readdirSync(path.join(osvDir, 'debian')).map((n) => ({
        name: n,
        data: readFileSync(path.join(osvDir, 'debian', n)),
      }));
      writeFileSync(path.join(dir, 'all.zip'), makeZip(files));
      const zdb = await OsvDatabase.load(dir);
      assert.equal(zdb.stats.records, files.length);
      const r = scanPackages([pkg('deb', 'libc6', '2.36-9+deb12u3', { sourceName: 'glibc' })], debian12, zdb);
      assert.deepEqual(ids(r.findings), ['CVE-2023-0001', 'CVE-2023-0005']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('malformed records are skipped and reported', () => {
    const d = new OsvDatabase();
    d.addText('{"id": "X-1", "affected": [{"package": {"ecosystem": "npm"}}]}', 'bad.json');
    d.addText('not json', 'worse.json');
    assert.equal(d.problems.length, 2);
    assert.match(d.problems[0]!.message, /affected\.0\.package\.name/);
  });
});

describe('range evaluation details', () => {
  test('events given out of order are sorted first', () => {
    const r = {
      type: 'SEMVER',
      events: [{ fixed: '2.0.0' }, { introduced: '1.0.0' }, { introduced: '3.0.0' }, { fixed: '3.1.0' }],
    };
    assert.equal(evaluateRange(r, '1.5.0', 'npm')?.affected, true);
    assert.equal(evaluateRange(r, '2.5.0', 'npm')?.affected, false);
    assert.equal(evaluateRange(r, '3.0.5', 'npm')?.fixed, '3.1.0');
  });
  test('GIT ranges are not evaluated', () => {
    assert.equal(evaluateRange({ type: 'GIT', events: [{ introduced: '0' }] }, 'abc', 'npm'), undefined);
  });
  test('a record without the package does not match', () => {
    const rec = parseOsvRecord({
      id: 'X',
      affected: [
        { package: { ecosystem: 'npm', name: 'a' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] },
      ],
    });
    assert.equal(matchRecord(rec, { ecosystem: 'npm', name: 'b', version: '1.0.0' }), undefined);
    assert.equal(matchRecord(rec, { ecosystem: 'PyPI', name: 'a', version: '1.0.0' }), undefined);
    assert.ok(matchRecord(rec, { ecosystem: 'npm', name: 'a', version: '1.0.0' }));
  });
});

describe('CVSS base scores', () => {
  test('v3.1 and v3.0', () => {
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H'), 10);
    assert.equal(cvss3BaseScore('CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H'), 7.8);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N'), 5.4);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N'), 0);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:X/AC:L'), undefined);
  });
  test('v2', () => {
    assert.equal(cvss2BaseScore('AV:N/AC:L/Au:N/C:P/I:P/A:P'), 7.5);
    assert.equal(cvss2BaseScore('AV:N/AC:M/Au:N/C:N/I:P/A:N'), 4.3);
    assert.equal(cvss2BaseScore('AV:N/AC:L/Au:N/C:C/I:C/A:C'), 10);
  });
});

/** A minimal zip writer (first member stored, the rest deflated) to test the reader. */
function makeZip(files: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  files.forEach((f, i) => {
    const method = i === 0 ? 0 : 8;
    const body = method === 0 ? f.data : deflateRawSync(f.data);
    const name = Buffer.from(f.name);
    const crc = crc32(f.data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(method, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(f.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    locals.push(lh, name, body);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(method, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(body.length, 20);
    ch.writeUInt32LE(f.data.length, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    centrals.push(ch, name);
    offset += 30 + name.length + body.length;
  });
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
