/**
 * One layer encode (tar + gzip + diff_id + digest of the directory `argv[2]`) in a process of its
 * own, for bench/layer-export.ts: prints its wall time, the process's CPU time (every thread,
 * node's start-up and the code's loading included) and peak RSS as JSON.
 *
 * layer-export.ts runs it bundled as kiln ships (one CommonJS file, as scripts/bundle.mjs makes
 * dist/bin/kiln-cli.cjs), not as dist/src's ES modules: no kiln command loads those, and through
 * them the encode loaded zod's ~90 files (60 locales), ~0.15 s of CPU the CLI's bundle never pays.
 */
import { Writable } from 'node:stream';
import { encodeLayer, tarDirectory } from '../src/layer/index.js';

async function main(dir: string): Promise<void> {
  const t0 = process.hrtime.bigint();
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const info = await encodeLayer(tarDirectory(dir), sink, { compression: 'gzip' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const used = process.cpuUsage();
  const cpu = (used.user + used.system) / 1e6;
  const rss = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ s, cpu, rss, digest: info.digest, diffId: info.diffId }));
}

// No top-level await: the bundle is CommonJS.
const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node layer-encode.cjs DIR\n');
  process.exit(2);
}
main(dir).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
