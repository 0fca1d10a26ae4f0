import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Cataloger } from '../../../src/analyze/sbom/catalog.js';
import {
  parseDpkgStatus,
  parsePythonMetadata,
  parsePackageLock,
  parseApkInstalled,
  parseDebianCopyright,
  parseOsRelease,
} from '../../../src/analyze/sbom/parsers.js';
import { makePurl } from '../../../src/analyze/sbom/purl.js';

type E = { path: string; content?: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string };

/** Feed layers of entries to a cataloger the way the walker does. */
function catalog(layers: E[][]) {
  const c = new Cataloger();
  layers.forEach((entries, i) => {
    for (const e of entries) {
      const type = e.type ?? 'file';
      const content = e.content !== undefined ? Buffer.from(e.content) : undefined;
      const header = { type, size: content?.length ?? 0, linkname: e.linkname };
      c.entry(i, e.path, header, c.wants(e.path, header) ? content : undefined);
    }
    c.endLayer();
  });
  return { packages: c.packages(layers.map((_, i) => `sha256:${String(i).repeat(64)}`)), os: c.osRelease() };
}

const STATUS = `Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library
 multi-line description

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
Source: bash (5.2.15-2)

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0
`;

const OS_RELEASE =
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';

describe('parsers', () => {
  test('dpkg status: source with version, states', () => {
    const e = parseDpkgStatus(STATUS);
    assert.equal(e.length, 3);
    assert.deepEqual(e[1], {
      name: 'bash',
      version: '5.2.15-2+b2',
      arch: 'amd64',
      state: 'installed',
      sourceName: 'bash',
      sourceVersion: '5.2.15-2',
    });
    assert.equal(e[2]!.state, 'config-files');
  });
  test('python metadata: expression, License, classifiers', () => {
    assert.deepEqual(
      parsePythonMetadata(
        'Metadata-Version: 2.4\nName: foo\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\n\nbody',
      ),
      { name: 'foo', version: '1.0', licenses: ['MIT OR Apache-2.0'] },
    );
    assert.deepEqual(
      parsePythonMetadata(
        'Name: bar\nVersion: 2\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: BSD License\n',
      ),
      { name: 'bar', version: '2', licenses: ['BSD License'] },
    );
    assert.equal(parsePythonMetadata('Name: x\n'), undefined);
  });
  test('package-lock v3 and v1', () => {
    const v3 = parsePackageLock(
      JSON.stringify({
        lockfileVersion: 3,
        packages: {
          '': { name: 'app' },
          'node_modules/a': { version: '1.0.0', license: 'MIT' },
          'node_modules/a/node_modules/b': { version: '2.0.0', dev: true },
        },
      }),
    );
    assert.deepEqual(
      v3.map((p) => [p.name, p.version, p.path, p.dev]),
      [
        ['a', '1.0.0', 'node_modules/a', false],
        ['b', '2.0.0', 'node_modules/a/node_modules/b', true],
      ],
    );
    const v1 = parsePackageLock(
      JSON.stringify({
        lockfileVersion: 1,
        dependencies: { a: { version: '1.0.0', dependencies: { b: { version: '2.0.0' } } } },
      }),
    );
    assert.deepEqual(
      v1.map((p) => p.path),
      ['node_modules/a', 'node_modules/a/node_modules/b'],
    );
  });
  test('apk installed db', () => {
    assert.deepEqual(
      parseApkInstalled('C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r15\n'),
      [
        { name: 'musl', version: '1.2.4-r2', arch: 'x86_64', license: 'MIT', origin: 'musl' },
        { name: 'busybox', version: '1.36.1-r15' },
      ],
    );
  });
  test('debian copyright and os-release', () => {
    assert.deepEqual(
      parseDebianCopyright(
        'Format: x\n\nFiles: *\nLicense: GPL-2+\n\nFiles: a\nLicense: LGPL-2.1+\n\nLicense: GPL-2+\n text',
      ),
      ['GPL-2+', 'LGPL-2.1+'],
    );
    assert.deepEqual(parseOsRelease(OS_RELEASE), {
      id: 'debian',
      versionId: '12',
      versionCodename: 'bookworm',
      prettyName: 'Debian GNU/Linux 12 (bookworm)',
    });
  });
  test('purls', () => {
    assert.equal(
      makePurl('deb', 'libc6', '1:2.36-9', {
        os: { id: 'debian', versionId: '12', debianVersion: '12.5' },
        arch: 'amd64',
        upstream: 'glibc',
      }),
      'pkg:deb/debian/libc6@1%3A2.36-9?arch=amd64&distro=debian-12.5&upstream=glibc',
    );
    assert.equal(makePurl('npm', '@babel/core', '7.0.0'), 'pkg:npm/%40babel/core@7.0.0');
    assert.equal(makePurl('python', 'Typing_Extensions', '4.0'), 'pkg:pypi/typing-extensions@4.0');
  });
});

describe('cataloger over layers', () => {
  test('Debian: installed packages only, licences from copyright, os-release through its symlink', () => {
    const { packages, os } = catalog([
      [
        { path: 'usr/lib/os-release', content: OS_RELEASE },
        { path: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
        { path: 'etc/debian_version', content: '12.5\n' },
        { path: 'var/lib/dpkg/status', content: STATUS },
        { path: 'usr/share/doc/libc6/copyright', content: 'License: LGPL-2.1+\n' },
        { path: 'usr/share/doc/bash', type: 'symlink', linkname: 'libc6' },
      ],
    ]);
    assert.equal(os.id, 'debian');
    assert.equal(os.versionId, '12');
    assert.equal(os.debianVersion, '12.5');
    assert.deepEqual(
      packages.map((p) => [p.name, p.version, p.licenses, p.layer]),
      [
        ['bash', '5.2.15-2+b2', ['LGPL-2.1+'], 0],
        ['libc6', '2.36-9+deb12u4', ['LGPL-2.1+'], 0],
      ],
    );
    assert.equal(
      packages[1]!.purl,
      'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12.5&upstream=glibc',
    );
  });

  test('a later layer that installs packages: old ones keep their layer, new ones get the new layer', () => {
    const s2 = `${STATUS}\nPackage: gcc\nStatus: install ok installed\nVersion: 4:12.2.0-3\n`;
    const s3 = STATUS.replace('2.36-9+deb12u4', '2.36-9+deb12u7');
    const { packages } = catalog([
      [{ path: 'var/lib/dpkg/status', content: STATUS }],
      [{ path: 'var/lib/dpkg/status', content: s2 }],
      [{ path: 'var/lib/dpkg/status', content: s3 }],
    ]);
    assert.deepEqual(
      packages.map((p) => [p.name, p.version, p.layer]),
      [
        ['bash', '5.2.15-2+b2', 0],
        ['libc6', '2.36-9+deb12u7', 2], // upgraded in layer 2
      ],
    ); // gcc removed again in layer 2's status
  });

  test('distroless status.d files', () => {
    const { packages } = catalog([
      [
        {
          path: 'var/lib/dpkg/status.d/base-files',
          content: 'Package: base-files\nVersion: 12.4\nArchitecture: amd64\n',
        },
        { path: 'var/lib/dpkg/status.d/base-files.md5sums', content: 'abc  etc/x\n' },
      ],
    ]);
    assert.deepEqual(
      packages.map((p) => [p.name, p.version, p.foundBy]),
      [['base-files', '12.4', 'dpkg-status.d']],
    );
  });

  test('Python: venv and system site-packages, egg-info file; a whiteout removes a package', () => {
    const meta = (n: string, v: string) =>
      `Metadata-Version: 2.1\nName: ${n}\nVersion: ${v}\nLicense: MIT\n\nlong text`;
    const { packages } = catalog([
      [{ path: 'usr/lib/python3/dist-packages/six-1.16.0.egg-info', content: meta('six', '1.16.0') }],
      [
        {
          path: 'venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA',
          content: meta('requests', '2.31.0'),
        },
        { path: 'venv/lib/python3.11/site-packages/idna-3.4.dist-info/METADATA', content: meta('idna', '3.4') },
        { path: 'venv/lib/python3.11/site-packages/not-a-dist/METADATA', content: meta('nope', '1') },
      ],
      [{ path: 'venv/lib/python3.11/site-packages/.wh.idna-3.4.dist-info' }],
    ]);
    assert.deepEqual(
      packages.map((p) => [p.name, p.version, p.layer, p.location]),
      [
        ['requests', '2.31.0', 1, 'venv/lib/python3.11/site-packages/requests-2.31.0.dist-info'],
        ['six', '1.16.0', 0, 'usr/lib/python3/dist-packages/six-1.16.0.egg-info'],
      ],
    );
  });

  test('Node: node_modules package.json (scoped, nested) and lock-only packages; opaque dir hides', () => {
    const pj = (n: string, v: string) => JSON.stringify({ name: n, version: v, license: 'MIT' });
    const lock = JSON.stringify({
      lockfileVersion: 3,
      packages: {
        '': {},
        'node_modules/express': { version: '4.18.2' },
        'node_modules/ms': { version: '2.1.3' },
        'node_modules/jest': { version: '29.0.0', dev: true },
      },
    });
    const { packages } = catalog([
      [
        { path: 'app/package-lock.json', content: lock },
        { path: 'app/node_modules/express/package.json', content: pj('express', '4.18.2') },
        { path: 'app/node_modules/@types/node/package.json', content: pj('@types/node', '20.1.0') },
        { path: 'app/node_modules/express/node_modules/debug/package.json', content: pj('debug', '2.6.9') },
        { path: 'app/node_modules/express/lib/package.json', content: pj('not-a-package', '0') },
        { path: 'old/node_modules/left-pad/package.json', content: pj('left-pad', '1.3.0') },
      ],
      [{ path: 'old/.wh..wh..opq' }],
    ]);
    assert.deepEqual(
      packages.map((p) => [p.name, p.version, p.foundBy]),
      [
        ['@types/node', '20.1.0', 'npm-package.json'],
        ['debug', '2.6.9', 'npm-package.json'],
        ['express', '4.18.2', 'npm-package.json'],
        ['ms', '2.1.3', 'npm-package-lock'],
      ],
    );
  });

  test('Alpine', () => {
    const { packages, os } = catalog([
      [
        { path: 'etc/os-release', content: 'ID=alpine\nVERSION_ID=3.19.1\n' },
        { path: 'lib/apk/db/installed', content: 'P:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n' },
      ],
    ]);
    assert.equal(os.id, 'alpine');
    assert.deepEqual(
      packages.map((p) => [p.name, p.purl, p.licenses]),
      [['busybox', 'pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1', ['GPL-2.0-only']]],
    );
  });
});

test('free-form Debian copyright files: licences from their common-licenses references', () => {
  assert.deepEqual(
    parseDebianCopyright(
      "This is the GNU C Library.\nfound in `/usr/share/common-licenses/LGPL-2.1'.\nand /usr/share/common-licenses/GPL-2 for the rest",
    ),
    ['LGPL-2.1', 'GPL-2'],
  );
});
