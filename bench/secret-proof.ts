/**
 * Benchmark: the cost of the secret proof (engine/secret-proof.ts) against a cold build. Each
 * workload of bench/workloads is built with --no-cache on a store holding only its bases, given
 * one --secret (a random token no step writes), and the proof is timed alone afterwards on the
 * same image: the layers the build made (not the bases'), decompressed and searched, plus the
 * config. The proof runs inside every build given secrets; its share is proof / cold build.
 *
 *   node dist/bench/secret-proof.js [workload …]   (default: py-wheels node-distroless many-files)
 */
import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../src/store/store.js';
import { importRootfs } from '../src/archive/import.js';
import { build } from '../src/engine/engine.js';
import { proveBuildHasNoSecrets, type MadeLayer } from '../src/engine/secret-proof.js';
import type { Digest } from '../src/util/digest.js';

let repo = path.dirname(fileURLToPath(import.meta.url));
while (!existsSync(path.join(repo, 'bench', 'workloads')) && path.dirname(repo) !== repo) repo = path.dirname(repo);
const basesDir = process.env.KILN_TEST_BASES ?? '/var/cache/kiln-test-bases';
const names = process.argv.slice(2).length ? process.argv.slice(2) : ['py-wheels', 'node-distroless', 'many-files'];
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-secret-'));
const secretFile = path.join(work, 'token');
writeFileSync(secretFile, `tok-${randomBytes(20).toString('hex')}\n`);
try {
  for (const name of names) {
    const store = await Store.open({ root: path.join(work, `store-${name}`) });
    const baseIds = new Set<string>();
    for (const base of ['debian-slim', 'python-slim', 'python-full', 'node-slim', 'node-full']) {
      const img = await importRootfs(store, createReadStream(path.join(basesDir, `${base}.tar`)), {
        name: `localhost:5000/${base}:bookworm`,
      });
      for (const d of img.config.rootfs.diff_ids) baseIds.add(d);
    }
    const ctx = path.join(repo, 'bench', 'workloads', name);
    const { readFileSync } = await import('node:fs');
    const t0 = process.hrtime.bigint();
    const r = await build({
      store,
      contextDir: ctx,
      dockerfileText: readFileSync(path.join(ctx, 'Dockerfile'), 'utf8'),
      dockerfileName: 'Dockerfile',
      noCache: true,
      secrets: [{ id: 'token', src: secretFile }],
    });
    const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
    const img = await store.resolveImage(r.descriptor.digest);
    const made = new Map<Digest, MadeLayer>();
    img.manifest.layers.forEach((l, i) => {
      const diffId = img.config.rootfs.diff_ids[i]!;
      if (!baseIds.has(diffId))
        made.set(diffId, { layer: { ...l, diffId }, stage: 0, step: { file: 'Dockerfile', line: 1 } });
    });
    const bytes = [...made.values()].reduce((n, m) => n + m.layer.size, 0);
    const t1 = process.hrtime.bigint();
    const hits = await proveBuildHasNoSecrets({
      store,
      secrets: [{ id: 'token', src: secretFile }],
      shippedStages: new Set(),
      made,
      image: img,
      warn: () => undefined,
    });
    const proofS = Number(process.hrtime.bigint() - t1) / 1e9;
    console.log(
      `secret-proof ${name}: cold build ${buildS.toFixed(1)} s (proof included), proof alone ${proofS.toFixed(2)} s over ${made.size} layers, ${(bytes / 1e6).toFixed(1)} MB (${(bytes / 1e6 / proofS).toFixed(0)} MB/s): ${((100 * proofS) / buildS).toFixed(1)} % of the cold build; ${hits.length} hits`,
    );
    rmSync(path.join(work, `store-${name}`), { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
