/**
 * `kiln report` in a real headless browser (Debian's chromium driven by playwright-core): the page
 * loads without console errors or network requests, and shows the image's layers with their
 * commands, the treemap, the packages and the scan summary.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runKiln } from '../../helpers/kiln.js';
import { basesUnavailable, ensureBaseTar } from '../../helpers/bases.js';
import { fixturesDir } from '../../helpers/paths.js';
import { needs } from '../../helpers/prereq.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = needs(basesUnavailable(), existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM} (apt-get install chromium)`);
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-report-'));
const root = path.join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

async function kiln(args: string[], expectCode = 0) {
  const r = await runKiln(args, { root, env: { KILN_NO_PROGRESS: '1' }, timeoutMs: 240_000 });
  assert.equal(r.code, expectCode, `kiln ${args.join(' ')} → ${r.code}\n${r.stderr}`);
  return r;
}

describe('kiln report in headless chromium', { skip }, () => {
  const html = path.join(work, 'report.html');
  const ctx = path.join(work, 'ctx');
  before(async () => {
    await kiln(['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm']);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      [
        'FROM debian-slim:bookworm AS build',
        'RUN mkdir -p /out && head -c 200000 /dev/urandom > /out/app.bin',
        'FROM debian-slim:bookworm',
        'COPY --from=build /out/app.bin /app/app.bin',
        'RUN head -c 100000 /dev/zero > /tmp/junk && echo "<script>alert(1)</script>" > /app/x.txt',
        'RUN rm /tmp/junk',
        'USER 1000',
        'CMD ["/app/app.bin"]',
      ].join('\n'),
    );
    await kiln(['build', '-t', 'report-demo:1', ctx]);
    const r = await kiln([
      'report',
      'report-demo:1',
      '-o',
      html,
      '--db',
      path.join(fixturesDir, 'osv'),
      '-f',
      path.join(ctx, 'Dockerfile'),
    ]);
    assert.match(r.stderr, /wrote/);
  });

  test('loads without errors or network, and shows the layers with their commands', async () => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(path.join(work, 'profile-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('request', (req) => requests.push(req.url()));
      const url = pathToFileURL(html).href;
      await page.goto(url, { waitUntil: 'load' });
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [url], 'self-contained: no other request');

      const inspect = JSON.parse((await kiln(['inspect', 'report-demo:1'])).stdout)[0];
      const layerCount = inspect.RootFS.Layers.length as number;
      assert.equal(await page.locator('#layers tbody tr.layer-row').count(), layerCount);
      assert.equal(await page.locator('svg.layerbar rect.layer-seg').count(), layerCount);
      const commands = await page.locator('#layers code.cmd').allTextContents();
      // BuildKit's history leaves --from out of COPY's created_by; kiln writes the same.
      assert.ok(
        commands.some((c) => c.includes('COPY /out/app.bin /app/app.bin')),
        commands.join(' | '),
      );
      assert.ok(commands.some((c) => c.includes('rm /tmp/junk')));
      // Hovering a row highlights its segment in the bar (the page's script runs).
      await page.locator('#layers tbody tr.layer-row').nth(1).hover();
      assert.equal(await page.locator('svg.layerbar rect.layer-seg.hl').count(), 1);
      // Treemap, waste, packages, scan and stage graph are there.
      assert.ok((await page.locator('svg.treemap g.dir').count()) > 3);
      assert.match(await page.locator('#wasted').innerText(), /\/tmp\/junk/);
      const pkgRows = await page.locator('#packages tbody tr').count();
      assert.ok(pkgRows > 50, `${pkgRows} package rows`);
      await page.locator('#pkg-filter').fill('libc6');
      assert.ok((await page.locator('#packages tbody tr:visible').count()) < pkgRows);
      assert.match(await page.locator('#vulnerabilities').innerText(), /Total: \d+/);
      assert.equal(await page.locator('svg.stagegraph g.stage').count(), 2);
      assert.match(await page.locator('#stages').innerText(), /build/);
      // Text from the image is escaped, never markup.
      assert.equal(await page.locator('script').count(), 2);
      assert.ok(!readFileSync(html, 'utf8').includes('<script>alert(1)'));
    } finally {
      await browser.close();
    }
  });
});
