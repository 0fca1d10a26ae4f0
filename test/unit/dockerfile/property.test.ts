import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { createPlan } from '../../../src/plan/index.js';
import { KilnError } from '../../../src/util/errors.js';

// Text made of Dockerfile-ish pieces, so the parser's deeper paths are reached, plus arbitrary strings.
const piece = fc.constantFrom(
  'FROM ', 'RUN ', 'COPY ', 'ADD ', 'ENV ', 'ARG ', 'LABEL ', 'HEALTHCHECK ', 'ONBUILD ', 'SHELL ', 'WORKDIR ', 'EXPOSE ',
  '--mount=', '--from=', 'type=cache,target=/x', '\\\n', '`\n', '\n', '# escape=`\n', '<<EOF', '<<-"E"', 'EOF\n', '"', "'",
  '${', '}', '$A', ':-', '#', '##', '%', '//', '[', ']', '["a", "b"]', '=', ' AS ', 'x', ' ', '\t', 'CMD', 'NONE',
);
const dockerfileish = fc.array(fc.oneof(piece, fc.string({ maxLength: 8 })), { maxLength: 40 }).map((a) => a.join(''));

function assertTypedOutcome(text: string): void {
  try {
    const df = parseDockerfile(text, { file: 'Dockerfile' });
    createPlan(df, { buildArgs: { A: 'x' } });
  } catch (e) {
    if (!(e instanceof KilnError)) throw new Error(`untyped error ${String(e)} for ${JSON.stringify(text)}`);
    assert.ok(e.place.file, 'the error names the file');
    if (e.code === 'PARSE') assert.ok(typeof e.place.line === 'number' && e.place.line >= 1, `a parse error has a line: ${JSON.stringify(text)}`);
  }
}

test('on arbitrary text the parser and planner return a result or a typed KilnError, and never hang', () => {
  fc.assert(
    fc.property(fc.oneof(dockerfileish, fc.string({ maxLength: 200 })), (text) => {
      const t0 = Date.now();
      assertTypedOutcome(text);
      assert.ok(Date.now() - t0 < 1000, 'parsing a short text takes well under a second');
    }),
    { numRuns: 3000 },
  );
});

test('pathological inputs stay linear', () => {
  const long = `FROM a\nRUN ${'x \\\n'.repeat(20000)}y\n`;
  const t0 = Date.now();
  parseDockerfile(long);
  assert.ok(Date.now() - t0 < 2000);
  assertTypedOutcome(`FROM a\nENV A=${'${'.repeat(5000)}`);
  assertTypedOutcome(`FROM a\nCOPY ${'"'.repeat(10001)} /x`);
});
