// Property tests: the frontend is fed untrusted text. Whatever the input, it returns a result or a
// typed error with a position; it never throws anything else and never hangs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { expandWord, expandWords, expandHeredoc, ExpansionError } from '../../../src/dockerfile/expand.js';
import { expandInstruction } from '../../../src/dockerfile/expand-instruction.js';
import { parseMount, MountError } from '../../../src/dockerfile/mounts.js';
import { createPlan } from '../../../src/plan/index.js';
import { KilnError } from '../../../src/util/errors.js';

// Text made of Dockerfile-ish pieces, so the parser's deeper paths are reached, plus arbitrary strings.
const piece = fc.constantFrom(
  'FROM ',
  'RUN ',
  'COPY ',
  'ADD ',
  'ENV ',
  'ARG ',
  'LABEL ',
  'HEALTHCHECK ',
  'ONBUILD ',
  'SHELL ',
  'WORKDIR ',
  'EXPOSE ',
  'VOLUME ',
  'USER ',
  'STOPSIGNAL ',
  'CMD ',
  'ENTRYPOINT ',
  'MAINTAINER ',
  ' AS ',
  'scratch',
  'a',
  '0',
  '1',
  '--mount=',
  '--from=',
  '--chown=',
  '--platform=',
  '--interval=',
  '--network=',
  '--link',
  '--',
  'type=cache,target=/x',
  'type=secret',
  ',',
  'from=',
  '\\\n',
  '`\n',
  '\n',
  '\r\n',
  '# escape=`\n',
  '# syntax=x\n',
  '#',
  ' #c\n',
  '<<EOF',
  '<<-"E"',
  "<<'Q'",
  'EOF\n',
  '\tE\n',
  'Q\n',
  '"',
  "'",
  '\\',
  '`',
  '${',
  '}',
  '$A',
  '$',
  ':-',
  ':?',
  ':+',
  '#',
  '##',
  '%',
  '%%',
  '/',
  '//',
  '*',
  '?',
  '[',
  ']',
  '["a", "b"]',
  '[1]',
  '=',
  'x',
  ' ',
  '\t',
  'NONE',
  '80/tcp',
  '1-2',
);
const dockerfileish = fc.array(fc.oneof(piece, fc.string({ maxLength: 8 })), { maxLength: 40 }).map((a) => a.join(''));
const wordish = fc.array(fc.oneof(piece, fc.string({ maxLength: 4 })), { maxLength: 16 }).map((a) => a.join(''));
const envs = fc.dictionary(fc.constantFrom('A', 'B', 'X', 'TARGETARCH', 'S'), fc.oneof(wordish, fc.constant('')));

function assertTypedOutcome(text: string, buildArgs: Record<string, string>): void {
  let df;
  try {
    df = parseDockerfile(text, { file: 'Dockerfile' });
  } catch (e) {
    if (!(e instanceof KilnError))
      throw new Error(`parse threw ${String(e)} for ${JSON.stringify(text)}`, { cause: e });
    assert.equal(e.code, 'PARSE');
    assert.equal(e.place.file, 'Dockerfile');
    assert.ok(
      Number.isInteger(e.place.line) && e.place.line! >= 1,
      `a parse error has a line: ${JSON.stringify(text)}`,
    );
    assert.ok(
      Number.isInteger(e.place.column) && e.place.column! >= 1,
      `a parse error has a column: ${JSON.stringify(text)}`,
    );
    assert.equal(typeof e.place.source, 'string');
    return;
  }
  try {
    const plan = createPlan(df, { buildArgs });
    JSON.stringify(plan);
    // The engine re-expands every instruction with the stage's variables: typed errors only.
    for (const s of plan.stages)
      for (const pi of s.instructions) {
        try {
          expandInstruction(pi.instruction, (n) => buildArgs[n], { escape: df.directives.escape });
        } catch (e) {
          if (!(e instanceof ExpansionError || e instanceof MountError)) throw e;
        }
      }
  } catch (e) {
    if (!(e instanceof KilnError)) throw new Error(`plan threw ${String(e)} for ${JSON.stringify(text)}`, { cause: e });
    assert.equal(e.code, 'PLAN');
    assert.equal(e.place.file, 'Dockerfile');
  }
}

test('on arbitrary text the parser and planner return a result or a typed KilnError with a position, quickly', () => {
  fc.assert(
    fc.property(
      fc.oneof(dockerfileish, fc.string({ maxLength: 200 }), fc.string({ maxLength: 100, unit: 'grapheme' })),
      envs,
      (text, buildArgs) => {
        const t0 = Date.now();
        assertTypedOutcome(text, buildArgs);
        assert.ok(Date.now() - t0 < 1000, 'a short text takes well under a second');
      },
    ),
    { numRuns: 3000 },
  );
});

test('word expansion returns a string or an ExpansionError, never anything else', () => {
  fc.assert(
    fc.property(
      fc.oneof(wordish, fc.string({ maxLength: 60 })),
      envs,
      fc.constantFrom('\\', '`'),
      fc.boolean(),
      (w, env, escape, keep) => {
        const lookup = (n: string) => (Object.hasOwn(env, n) ? env[n] : undefined); // not Object.prototype's names
        for (const f of [
          () => expandWord(w, lookup, { escape, keepUnset: keep }),
          () => expandWords(w, lookup, { escape }),
          () => expandHeredoc(w, lookup),
        ]) {
          try {
            const r = f();
            assert.ok(typeof r === 'string' || Array.isArray(r));
          } catch (e) {
            if (!(e instanceof ExpansionError)) throw e;
            assert.ok(e.offset >= 0);
          }
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test('--mount strings give a mount or a MountError', () => {
  const mountish = fc
    .array(
      fc.constantFrom(
        'type=',
        'bind',
        'cache',
        'tmpfs',
        'secret',
        'ssh',
        'nfs',
        'target=',
        'dst=',
        '/x',
        'id=',
        'from=',
        'mode=',
        '0755',
        'uid=',
        '1',
        'size=',
        '1g',
        'ro',
        'rw',
        'required',
        'sharing=',
        'locked',
        'env=',
        ',',
        '"',
        '=',
        '$A',
        'x',
      ),
      { maxLength: 14 },
    )
    .map((a) => a.join(''));
  fc.assert(
    fc.property(fc.oneof(mountish, fc.string({ maxLength: 40 })), fc.boolean(), (spec, lenient) => {
      try {
        parseMount(spec, { lenient });
      } catch (e) {
        if (!(e instanceof MountError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
});

test('pathological inputs stay linear', () => {
  const t0 = Date.now();
  parseDockerfile(`FROM a\nRUN ${'x \\\n'.repeat(20000)}y\n`);
  parseDockerfile(`FROM a\n${'# comment\n'.repeat(20000)}RUN <<EOF\n${'line\n'.repeat(20000)}EOF\n`);
  parseDockerfile(`FROM a\nRUN ${'<<E '.repeat(2000)}\n${'E\n'.repeat(2000)}`);
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  assertTypedOutcome(`FROM a\nENV A=${'${'.repeat(5000)}`, {});
  assertTypedOutcome(`FROM a\nENV A=${'${A:-'.repeat(5000)}`, {});
  assertTypedOutcome(`FROM a\nCOPY ${'"'.repeat(10001)} /x`, {});
  assertTypedOutcome(`FROM a\nRUN ${'--mount=type=tmpfs,target=/t '.repeat(500)}true`, {});
  assertTypedOutcome(`FROM a\nARG V=${'a'.repeat(50000)}\nENV X=\${V//${'*a'.repeat(50)}/b}`, {});
});
