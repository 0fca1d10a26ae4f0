// node scripts/peak-rss.mjs <command> <args…>: runs the command under /usr/bin/time and prints the
// peak of the summed RSS of its process tree (the command and all its descendants: kiln's CLI,
// runc, the RUN's process), sampled from /proc every 50 ms, with time's own figures (max RSS of
// one process, wall, user, sys). PEAK_RSS_TRACE=1 also prints "seconds:MB" every 0.5 s.
// Used for docs/benchmarks.md's "Peak RSS after" (the scaling bench samples the same way).
import { spawn } from 'node:child_process';
import { rssOf, tree } from './proc-tree.mjs';

const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: node scripts/peak-rss.mjs <command> <args…>');
  process.exit(2);
}
const t0 = Date.now();
const p = spawn('/usr/bin/time', ['-f', '%M KB %e s %U u %S s', cmd, ...args], {
  stdio: ['ignore', 'inherit', 'pipe'],
});
let err = '';
p.stderr.on('data', (b) => (err = (err + b).slice(-4000)));
let peak = 0;
let n = 0;
const trace = [];
const sample = () => {
  let sum = 0;
  for (const pid of tree(p.pid).slice(1)) sum += rssOf(pid); // not /usr/bin/time itself
  peak = Math.max(peak, sum);
  if (process.env.PEAK_RSS_TRACE && n++ % 10 === 0)
    trace.push(`${((Date.now() - t0) / 1000).toFixed(1)}:${(sum / 1048576).toFixed(0)}`);
};
const timer = setInterval(sample, 50);
p.on('close', (code) => {
  clearInterval(timer);
  const time = err.trim().split('\n').at(-1);
  console.log(`exit ${code}, tree peak ${(peak / 1048576).toFixed(0)} MB | time: ${time}`);
  if (trace.length) console.log(trace.join(' '));
  if (code) console.log(err);
  process.exitCode = code ?? 1;
});
