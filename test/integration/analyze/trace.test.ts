/**
 * Provenance end to end on real builds (issue 21, parts 2 and 4): the seeds py-usrlocal-user
 * (/usr/local from the builder) and node-distroless (node_modules from the builder), and a
 * Dockerfile that copies zlib's shared library out of a Debian builder stage (directly, and
 * through a second stage). `kiln trace`, `kiln sbom`, `kiln analyze --copies` and the report's
 * stage graph read what the build recorded.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar, type BaseName } from '../../helpers/bases.js';
import { workloadsDir as workloads } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-trace-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

async function kiln(args: string[], code = 0): Promise<string> {
  const r = await runKiln(args, { root });
  assert.equal(r.code, code, `kiln ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const ZLIB = `FROM localhost:5000/debian-slim:bookworm AS builder
RUN mkdir -p /stage && cp -a /usr/lib/x86_64-linux-gnu/libz.so.1* /stage/

FROM localhost:5000/debian-slim:bookworm AS mid
COPY --from=builder /usr/lib/x86_64-linux-gnu/libz.so.1* /libs/

FROM scratch
COPY --from=builder /usr/lib/x86_64-linux-gnu/libz.so.1* /out/
COPY --from=mid /libs/ /chain/
COPY --from=builder /stage/ /made-by-run/
`;

describe('provenance: kiln trace, the copied packages of the SBOM, analyze --copies', { skip }, () => {
  let zlibVersion = '';
  before(async () => {
    for (const b of ['python-full', 'python-slim', 'node-full', 'node-slim', 'debian-slim'] as BaseName[])
      await kiln(['import', await ensureBaseTar(b), `localhost:5000/${b}:bookworm`]);
    const ctx = path.join(work, 'zlib');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), ZLIB);
    await kiln(['build', '-q', '-t', 'zlib:1', ctx]);
    // The version the builder's dpkg has (what trace and the SBOM must name).
    const status = await kiln([
      'run',
      '--entrypoint',
      '',
      'localhost:5000/debian-slim:bookworm',
      'dpkg-query',
      '-W',
      '-f',
      '${Version}',
      'zlib1g',
    ]);
    zlibVersion = status.trim();
    assert.match(zlibVersion, /^1:1\.2\./);
  });

  test('a shared library copied out of a Debian builder: trace names zlib1g and its version, through a chain too', async () => {
    const out = await kiln(['trace', 'zlib:1', '/out/libz.so.1', '/chain/libz.so.1']);
    const [direct, chained] = out.split(/\n(?=\/)/);
    assert.match(direct!, /^\/out\/libz\.so\.1\n {2}layer {5}0 /);
    assert.match(
      direct!,
      /Dockerfile:8 \(stage 2\) {2}COPY --from=builder \/usr\/lib\/x86_64-linux-gnu\/libz\.so\.1\* \/out\//,
    );
    assert.match(direct!, /from {6}stage builder: \/usr\/lib\/x86_64-linux-gnu\/libz\.so\.1\.2\.\d+/);
    assert.ok(direct!.includes(`package   zlib1g ${zlibVersion} (deb, amd64)`), direct);
    assert.match(chained!, /from {6}stage mid: \/libs\/libz\.so\.1/);
    assert.match(
      chained!,
      /which {5}.*Dockerfile:5 \(stage mid\) COPY --from=builder .* brought from stage builder: \/usr\/lib\/x86_64-linux-gnu\/libz\.so\.1/,
    );
    assert.ok(chained!.includes(`package   zlib1g ${zlibVersion}`), chained);
    // A file a RUN made in the builder: where it came from, but no package owned it.
    assert.match(await kiln(['trace', 'zlib:1', '/made-by-run/libz.so.1.2.13']), /package {3}none known/);
    // A path that is not there: said so, exit 1.
    assert.match(await kiln(['trace', 'zlib:1', '/nope'], 1), /^\/nope\n {2}not in the image/);
    const json = JSON.parse(await kiln(['trace', '--format', 'json', 'zlib:1', '/out/libz.so.1'])) as {
      package?: { name: string; version: string };
      from?: { kind: string; name?: string };
    }[];
    assert.deepEqual(json[0]!.package, { type: 'deb', name: 'zlib1g', version: zlibVersion, arch: 'amd64' });
    assert.deepEqual(json[0]!.from, { kind: 'stage', index: 0, name: 'builder' });
  });

  test('the SBOM lists zlib1g, copied without its metadata, marked so in CycloneDX and SPDX', async () => {
    const table = await kiln(['sbom', 'zlib:1']);
    assert.ok(table.includes('zlib1g'), table);
    assert.match(table, /\(copied from stage builder\)/);
    const cdx = JSON.parse(await kiln(['sbom', '--format', 'cyclonedx-json', 'zlib:1'])) as {
      components: { name: string; version: string; properties: { name: string; value: string }[] }[];
    };
    const z = cdx.components.find((c) => c.name === 'zlib1g')!;
    assert.equal(z.version, zlibVersion);
    const prop = (n: string) => z.properties.filter((p) => p.name === n).map((p) => p.value);
    assert.deepEqual(prop('kiln:copied'), ['true']);
    assert.deepEqual(prop('kiln:copied:from'), ['stage builder']);
    assert.ok(prop('kiln:copied:file').includes('/out/libz.so.1'));
    const spdx = JSON.parse(await kiln(['sbom', '--format', 'spdx-json', 'zlib:1'])) as {
      packages: { name: string; sourceInfo?: string; annotations?: { comment: string }[] }[];
    };
    const s = spdx.packages.find((p) => p.name === 'zlib1g')!;
    assert.match(s.sourceInfo!, /^copied from stage builder by .*Dockerfile:8 without its package metadata/);
    assert.match(s.annotations![0]!.comment, /^kiln:copied from=stage builder/);
  });

  test('seed py-usrlocal-user: trace names the Python package; the report credits the builder with 27.5 kB', async () => {
    await kiln(['build', '-q', '-t', 'microblog:1', path.join(workloads, 'py-usrlocal-user')]);
    const file = (
      await kiln([
        'run',
        '--entrypoint',
        '',
        'microblog:1',
        'sh',
        '-c',
        'ls /usr/local/lib/python3*/dist-packages/fastsum/__init__.py',
      ])
    ).trim();
    const out = await kiln(['trace', 'microblog:1', file]);
    assert.match(out, /Dockerfile:11 \(stage 1\) {2}COPY --from=builder \/usr\/local\/ \/usr\/local\//);
    assert.ok(out.includes(`from      stage builder: ${file}`), out);
    assert.match(out, /package {3}fastsum 1\.2\.0 \(python\)/);
    const copies = await kiln(['analyze', '--copies', 'microblog:1']);
    assert.match(copies, /from stage builder: 27\.5 kB in \d+ files/);
    assert.match(copies, /__pycache__ .* → --exclude=\*\*\/__pycache__/);
    // An image no build of that store recorded (an archive read with an empty store): from the Dockerfile.
    const archive = path.join(work, 'microblog.tar');
    await kiln(['save', '-o', archive, 'microblog:1']);
    const other = await runKiln(
      ['analyze', '--copies', archive, '-f', path.join(workloads, 'py-usrlocal-user', 'Dockerfile')],
      { root: path.join(work, 'empty-store') },
    );
    assert.equal(other.code, 0, other.stderr);
    assert.match(
      other.stdout,
      /Dockerfile:11 {2}COPY --from=builder \/usr\/local\/ \/usr\/local\/\n {2}from stage builder: 27\.5 kB/,
    );
    assert.match(other.stdout, /__pycache__ .* → --exclude=\*\*\/__pycache__/);
    const html = path.join(work, 'report.html');
    await kiln(['report', 'microblog:1', '-o', html, '-f', path.join(workloads, 'py-usrlocal-user', 'Dockerfile')]);
    const page = readFileSync(html, 'utf8');
    assert.match(page, /stage-name">builder<\/text>.*?→ final: 27\.5 kB/);
  });

  test('seed node-distroless: trace names the npm package of a file in node_modules', async () => {
    await kiln(['build', '-q', '-t', 'distroless:1', path.join(workloads, 'node-distroless')]);
    const out = await kiln(['trace', 'distroless:1', '/app/node_modules/tiny-format/index.js']);
    assert.match(out, /COPY --chown=nonroot:nonroot --from=base \/app\/node_modules \/app\/node_modules/);
    assert.match(out, /from {6}stage base: \/app\/node_modules\/tiny-format\/index\.js/);
    assert.match(out, /package {3}tiny-format 1\.0\.0 \(npm\)/);
    assert.match(await kiln(['analyze', '--copies', '--format', 'json', 'distroless:1']), /"from": "stage base"/);
  });
});
