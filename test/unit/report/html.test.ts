import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { renderReport, stageContributions, shortCommand, human, squarify } from '../../../src/report/index.js';
import type { ImageAnalysis } from '../../../src/analyze/analyze.js';
import { computeEfficiency } from '../../../src/analyze/efficiency.js';
import { stackLayers, largestDirectories } from '../../../src/analyze/filetree.js';
import { createPlan } from '../../../src/plan/index.js';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';

const f = (path: string, size: number) => ({ path, type: 'file' as const, size, mode: 0o644, uid: 0, gid: 0 });

function analysis(): ImageAnalysis {
  const layers = [
    [f('usr/lib/a', 5000), f('usr/bin/b', 3000)],
    [f('app/bin', 2000), f('tmp/junk', 700)],
    [f('tmp/.wh.junk', 0)],
  ];
  const { tree, changes } = stackLayers(layers);
  const eff = computeEfficiency(layers);
  const cmds = ['', 'COPY --from=build /out/bin /app/bin # buildkit', 'RUN /bin/sh -c rm /tmp/junk # buildkit'];
  return {
    image: {
      display: 'demo:1',
      name: 'docker.io/library/demo:1',
      id: 'sha256:' + 'a'.repeat(64),
      platform: 'linux/amd64',
    },
    layers: layers.map((l, i) => ({
      index: i,
      diffId: `sha256:${String(i).repeat(64)}`,
      size: eff.layerSizes[i]!,
      createdBy: cmds[i]!,
      comment: i === 0 ? 'Imported from base.tar' : undefined,
      entries: l.length,
      changes: changes[i]!,
    })),
    efficiency: eff,
    directories: largestDirectories(tree),
    finalSize: 10000,
    fileCount: 3,
    packages: [
      {
        type: 'deb',
        name: 'libx<script>',
        version: '1.0',
        purl: 'pkg:deb/debian/libx@1.0',
        licenses: ['MIT'],
        location: 'var/lib/dpkg/status',
        layer: 0,
      },
    ],
    os: { id: 'debian', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
  };
}

describe('HTML report', () => {
  test('self-contained, escaped, one row and one bar segment per layer', () => {
    const html = renderReport({ analysis: analysis(), tool: { name: 'kiln', version: '0.1.0' } });
    assert.ok(html.startsWith('<!DOCTYPE html>'));
    assert.equal((html.match(/<tr class="layer-row"/g) ?? []).length, 3);
    assert.equal((html.match(/class="layer-seg"/g) ?? []).length, 3);
    assert.ok(!/\b(?:src|href)=["']?(?:https?:)?\/\//.test(html), 'no external resources');
    assert.ok(html.includes("default-src 'none'"), 'CSP forbids network');
    assert.ok(html.includes('libx&lt;script&gt;') && !html.includes('libx<script>'));
    assert.match(html, /\(Imported from base\.tar\)/);
    assert.match(html, /RUN rm \/tmp\/junk/);
    assert.match(html, /\/tmp\/junk/); // wasted
    assert.match(html, /Not scanned/);
    assert.doesNotMatch(html, /id="stages"/);
  });

  test('stage graph and what each stage contributed', () => {
    const plan = createPlan(
      parseDockerfile(
        'FROM debian:12 AS build\nRUN make\nFROM debian:12 AS unused\nFROM debian:12\nCOPY --from=build /out/bin /app/bin\n',
        { file: 'Dockerfile' },
      ),
    );
    const a = analysis();
    const c = stageContributions(a, plan);
    assert.equal(c.get(0), 2700); // the COPY --from=build layer
    assert.equal(c.get(2), 8000); // the rest came with the target's FROM chain
    assert.equal(c.get(1), undefined);
    const html = renderReport({ analysis: a, plan, tool: { name: 'kiln', version: '0' } });
    assert.equal((html.match(/<g class="stage/g) ?? []).length, 3);
    assert.match(html, /class="stage unused"/);
    assert.match(html, /class="stage target"/);
  });

  test('helpers', () => {
    assert.equal(shortCommand('/bin/sh -c #(nop)  CMD ["x"]'), 'CMD ["x"]');
    assert.equal(shortCommand('RUN /bin/sh -c apt-get update # buildkit'), 'RUN apt-get update');
    assert.equal(shortCommand('', 'Imported from -'), '(Imported from -)');
    assert.equal(human(999), '999 B');
    assert.equal(human(1_500_000), '1.50 MB');
    assert.equal(human(123_456_789), '123 MB');
  });

  test('squarified treemap: areas proportional to values, inside the box, no overlaps', () => {
    const values = [500, 250, 125, 60, 40, 25, 0];
    const box = { x: 0, y: 0, w: 400, h: 250 };
    const rects = squarify(values, box);
    const total = values.reduce((a, b) => a + b, 0);
    rects.forEach((r, i) => {
      assert.ok(Math.abs(r.w * r.h - (values[i]! / total) * 400 * 250) < 1e-6, `area of ${i}`);
      assert.ok(r.x >= -1e-9 && r.y >= -1e-9 && r.x + r.w <= 400 + 1e-9 && r.y + r.h <= 250 + 1e-9);
    });
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const a = rects[i]!;
        const b = rects[j]!;
        const overlap =
          Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) *
          Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
        assert.ok(overlap < 1e-6, `${i} and ${j} overlap`);
      }
    }
  });
});
