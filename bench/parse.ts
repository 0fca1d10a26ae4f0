/**
 * Benchmark: parse, then parse and plan, a 5,000-line Dockerfile (target: parsing well under 100 ms).
 * Prints one result line each: median and best of 25 runs, after a warm-up (a long-lived process).
 *   node dist/bench/parse.js
 */
import { parseDockerfile } from '../src/dockerfile/parser.js';
import { createPlan } from '../src/plan/index.js';

function makeDockerfile(lines: number): string {
  const out: string[] = ['# syntax=docker/dockerfile:1', 'ARG BASE=debian:bookworm'];
  let stage = 0;
  while (out.length < lines) {
    out.push(`FROM \${BASE} AS s${stage}`, 'ARG V=1', 'ENV PATH="/opt/bin:$PATH" LANG=C.UTF-8', 'WORKDIR /app/$V');
    out.push(
      'RUN apt-get update && \\',
      '    apt-get install -y --no-install-recommends gcc \\',
      '    # a comment inside',
      '    && rm -rf /var/lib/apt/lists/*',
    );
    out.push(
      'COPY --chown=app:app --chmod=0644 src/ ./src/',
      stage > 0 ? `COPY --from=s${stage - 1} /app /prev` : 'COPY --from=busybox /bin /bin',
      'RUN --mount=type=cache,target=/root/.cache pip install -r req.txt',
    );
    out.push(
      'RUN <<EOF',
      'echo one',
      'echo two',
      'EOF',
      'LABEL a="1" b="2" c="three four"',
      'EXPOSE 80/tcp 443',
      'HEALTHCHECK --interval=30s CMD ["true"]',
    );
    stage++;
  }
  return `${out.join('\n')}\n`; // whole groups: a cut could split a heredoc
}

function measure(fn: () => void, runs = 25): { median: number; best: number } {
  for (let i = 0; i < 5; i++) fn(); // warm up the JIT
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(runs / 2)]!, best: times[0]! };
}

const text = makeDockerfile(5000);
const lines = text.split('\n').length - 1;
const parse = measure(() => parseDockerfile(text));
const df = parseDockerfile(text);
const both = measure(() => createPlan(parseDockerfile(text)));
console.log(
  `parse ${lines}-line Dockerfile (${df.instructions.length} instructions): median ${parse.median.toFixed(1)} ms, best ${parse.best.toFixed(1)} ms (target < 100 ms)`,
);
console.log(
  `parse+plan ${lines}-line Dockerfile (${df.instructions.filter((i) => i.kind === 'FROM').length} stages): median ${both.median.toFixed(1)} ms, best ${both.best.toFixed(1)} ms`,
);
