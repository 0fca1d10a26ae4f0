// Word expansion, checked against BuildKit's shell lexer behaviour (frontend/dockerfile/shell).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  expandWord,
  expandWords,
  expandHeredoc,
  referencedNames,
  rawWords,
  parseHeredocMarker,
  ExpansionError,
} from '../../../src/dockerfile/expand.js';

const env: Record<string, string> = { A: 'hello', E: '', P: '/usr/local/bin/python3.tar.gz', S: 'a b  c', D: 'x' };
const L = (n: string) => env[n];
const X = (w: string, e: Record<string, string> = env) => expandWord(w, (n) => e[n]);
const fails = (w: string, re: RegExp, e: Record<string, string> = env) =>
  assert.throws(
    () => X(w, e),
    (err: unknown) => err instanceof ExpansionError && re.test(err.message),
    w,
  );

describe('variables', () => {
  test('plain and braced; unset is empty', () => {
    assert.equal(X('$A'), 'hello');
    assert.equal(X('${A}'), 'hello');
    assert.equal(X('x${A}y'), 'xhelloy');
    assert.equal(X('$A.$A'), 'hello.hello');
    assert.equal(X('$NOPE'), '');
    assert.equal(X('${NOPE}'), '');
  });
  test('a $ not followed by a name stays', () => {
    assert.equal(X('a$'), 'a$');
    assert.equal(X('$/x'), '$/x');
    assert.equal(X('cost: $ 5'), 'cost: $ 5');
  });
  test('special parameters and positional names are names (always unset)', () => {
    assert.equal(X('$-x'), 'x');
    assert.equal(X('$$'), '');
    assert.equal(X('$1abc'), 'abc');
    assert.equal(X('${10}'), '');
    assert.equal(X('$@ $* $? $! $0 $#'), '     ');
  });
  test('names are letters, digits and _ (unicode letters too)', () => {
    assert.equal(X('$A_B'), '');
    assert.equal(X('$A-B'), 'hello-B');
    assert.equal(X('$ÉTÉ', { ÉTÉ: 'summer' }), 'summer');
  });
});

describe('quotes and escapes', () => {
  test('single quotes are literal, double quotes expand; both removed', () => {
    assert.equal(X("'$A'"), '$A');
    assert.equal(X('"$A world"'), 'hello world');
    assert.equal(X(`"it's"`), "it's");
    assert.equal(X(`'say "hi"'`), 'say "hi"');
    assert.equal(X(`'a\\'`), 'a\\', 'nothing escapes inside single quotes');
  });
  test('inside double quotes the escape only escapes ", $ and itself', () => {
    assert.equal(X('"a\\"b"'), 'a"b');
    assert.equal(X('"a\\$A"'), 'a$A');
    assert.equal(X('"a\\\\b"'), 'a\\b');
    assert.equal(X('"a\\nb"'), 'a\\nb');
  });
  test('outside quotes the escape escapes anything; a trailing one is dropped', () => {
    assert.equal(X('\\$A'), '$A');
    assert.equal(X('a\\ b'), 'a b');
    assert.equal(X('\\"x\\"'), '"x"');
    assert.equal(X('trailing\\'), 'trailing');
  });
  test('with # escape=` the backtick escapes and backslashes are plain', () => {
    assert.equal(expandWord('`$A', L, { escape: '`' }), '$A');
    assert.equal(expandWord('C:\\path\\$A', L, { escape: '`' }), 'C:\\path\\hello');
    assert.equal(expandWord('"a`"b"', L, { escape: '`' }), 'a"b');
  });
  test('unterminated quotes are errors', () => {
    fails('"open', /double-quote/);
    fails("'open", /single-quote/);
    fails('"a\\', /double-quote/);
  });
});

describe('modifiers', () => {
  test('default and alternative distinguish unset from empty (BuildKit lexer cases)', () => {
    const e = { FOO: 'xxx', BAR: '' };
    assert.equal(X('${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}', e), 'xxx  ccc');
    assert.equal(X('${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}', e), 'xxx bbb ccc');
    assert.equal(X('${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}', e), 'aaa bbb ');
    assert.equal(X('${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}', e), 'aaa  ');
    assert.equal(X('${FOO:-}', e), 'xxx');
  });
  test('the word is expanded and unquoted itself; nesting', () => {
    assert.equal(X('${U:-${A}}'), 'hello');
    assert.equal(X('${U:-"a b"}'), 'a b');
    assert.equal(X("${U:-'$A'}"), '$A');
    assert.equal(X('"${U:-"x"}"'), 'x');
    const rel = 'something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz';
    assert.equal(
      X(rel, { VERSION: 'v1.2.3', TARGETOS: 'linux', TARGETARCH: 'arm', TARGETVARIANT: 'v7' }),
      'something-v1.2.3.linux-arm-v7.tar.gz',
    );
    assert.equal(
      X(rel, { VERSION: 'v1.2.3', TARGETOS: 'linux', TARGETARCH: 'amd64', TARGETVARIANT: '' }),
      'something-v1.2.3.linux-amd64.tar.gz',
    );
  });
  test('required: ${V:?msg} refuses unset and empty, ${V?msg} only unset; the message is expanded', () => {
    const set = { VAR: 'plain', ARG: 'x' };
    const empty = { VAR: '', ARG: 'x' };
    const unset = { ARG: 'x' };
    assert.equal(X('${VAR:?message here$ARG}', set), 'plain');
    fails('${VAR:?message here$ARG}', /VAR: message herex/, empty);
    fails('${VAR:?message here$ARG}', /VAR: message herex/, unset);
    assert.equal(X('${VAR?message here$ARG}', empty), '');
    fails('${VAR?message here$ARG}', /message herex/, unset);
    fails('${E:?}', /E: is not allowed to be empty/);
    fails('${U?}', /U: is not allowed to be unset/);
  });
  test('unsupported modifiers and malformed substitutions are errors', () => {
    fails('${A=x}', /unsupported modifier \(=\)/);
    fails('${A=}', /unsupported modifier/);
    fails('${A:x}', /unsupported modifier \(:x\)/);
    fails('${A', /missing '}'/);
    fails('${A:-x', /missing '}'/);
    fails('${}', /bad substitution/);
    fails('${:}', /bad substitution/);
    fails('${{A}}', /bad substitution/);
    fails('${', /missing '}'/);
  });
});

describe('patterns', () => {
  test('prefix and suffix removal, shortest and longest', () => {
    assert.equal(X('${P#*/}'), 'usr/local/bin/python3.tar.gz');
    assert.equal(X('${P##*/}'), 'python3.tar.gz');
    assert.equal(X('${P%.*}'), '/usr/local/bin/python3.tar');
    assert.equal(X('${P%%.*}'), '/usr/local/bin/python3');
    assert.equal(X('${P#nomatch}'), env.P);
    assert.equal(X('${A#h?l}'), 'lo');
    const e = { FOO: 'xxyy' };
    assert.equal(X('${FOO#*x*y}', e), 'y');
    assert.equal(X('${FOO#*}', e), 'xxyy');
    assert.equal(X('${FOO##*x}', e), 'yy');
    assert.equal(X('${FOO#}', e), 'xxyy');
    assert.equal(X('${FOO%}', e), 'xxyy');
    assert.equal(X('${ABC:-.}${FOO%x}${ABC:-.}', e), '.xxyy.');
    assert.equal(X('${FOO#$BAR}', { FOO: 'xxyy', BAR: 'x' }), 'xyy');
  });
  test('only \\* \\? \\\\ are literal; brackets, regexp characters and quotes are plain text', () => {
    assert.equal(X('${FOO%%\\**}', { FOO: 'xx**' }), 'xx');
    assert.equal(X('${FOO%%\\**\\*}', { FOO: 'a***yy*' }), 'a');
    assert.equal(X('${FOO#?\\?}', { FOO: '???y' }), '?y');
    assert.equal(X('${FOO#()[]{\\}^$.\\*\\?|\\\\}', { FOO: '()[]{}^$.*?|\\x' }), 'x');
    assert.equal(X('${A%[lo]}'), 'hello', 'no bracket expressions: [lo] is literal');
    assert.equal(X('${A##"*"}'), '', 'quotes do not make * literal in BuildKit');
    fails('${A#\\x}', /invalid escape/);
  });
  test('patterns never match across a newline', () => {
    assert.equal(X('${V##*}', { V: 'a\nb' }), '\nb');
    assert.equal(X('${V%%*}', { V: 'a\nb' }), 'a\n');
  });
  test('replace first and all; the second / is required', () => {
    assert.equal(X('${P/l/L}'), '/usr/Local/bin/python3.tar.gz');
    assert.equal(X('${P//l/L}'), '/usr/LocaL/bin/python3.tar.gz');
    assert.equal(X('${P//l/}'), '/usr/oca/bin/python3.tar.gz');
    assert.equal(X('${A/h*l/J}'), 'Jo', 'greedy');
    fails('${P//l}', /missing '\/'/);
    fails('${P//}', /missing '\/'/);
    const f = { FOO: '/foo*/*/*.txt', NEEDLE: '\\*/' };
    assert.equal(X('${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}', f), '/foo.*/*.txt - /foo..*.txt');
    assert.equal(
      X('${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}', { FOO: '/tmp/tmp/bar.txt', NEEDLE: '/tmp' }),
      '/tmp/bar.txt - /bar.txt',
    );
    assert.equal(X('${FOO//\\//\\/}', { FOO: '/tmp/foo.txt' }), '\\/tmp\\/foo.txt', 'escaped separators');
    assert.equal(X('${FOO/$N/$R}', { FOO: 'http://google.de', N: 'http://', R: 'https://' }), 'https://google.de');
  });
  test('empty patterns behave like Go regexp replacement', () => {
    assert.equal(X('${FOO/$BAR/ww}', { FOO: 'xxyy', BAR: '' }), 'wwxxyy');
    assert.equal(X('${FOO///}', { FOO: 'xxyy' }), 'xxyy');
    assert.equal(X('${FOO///-}', { FOO: 'ab' }), '-a-b-');
    assert.equal(X('${FOO///}', {}), '');
  });
  test('a $ in an all-replacement follows Go templates', () => {
    assert.equal(X('${V//b/<$R>}', { V: 'abc', R: '$$x' }), 'a<$x>c', '$$ is a $');
    assert.equal(X('${V//b/<$R>}', { V: 'abc', R: '$0$0' }), 'a<bb>c');
    assert.equal(X('${V/b/<$R>}', { V: 'abc', R: '$0' }), 'a<$0>c', 'the first-only replacement is literal');
  });
  test('hostile patterns stay linear', () => {
    // Growth, not wall time (which a loaded machine inflates): 8× the value costs ~8× the CPU when
    // linear, ~64× if the matcher turned quadratic (a backtracking one: far more). Each size's
    // best of three runs, after a warm-up, so a busy moment does not count.
    const hostile = (n: number): number => {
      const long = 'a'.repeat(n);
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const c0 = process.cpuUsage();
        assert.equal(X(`\${V##${'*a'.repeat(40)}b}`, { V: long }), long);
        assert.equal(X(`\${V//${'*a'.repeat(40)}b/x}`, { V: long }), long);
        assert.equal(X(`\${V%%${'*a'.repeat(40)}}`, { V: long }), '');
        const c = process.cpuUsage(c0);
        best = Math.min(best, c.user + c.system);
      }
      return best;
    };
    hostile(1000);
    const small = hostile(1500);
    const large = hostile(12000);
    assert.ok(large / small < 24, `8× the value cost ${(large / small).toFixed(1)}× the CPU (${small} → ${large} µs)`);
    assert.throws(
      () => X(`${'${A:-'.repeat(5000)}x${'}'.repeat(5000)}`),
      ExpansionError,
      'deep nesting is an error, not a stack overflow',
    );
  });
});

describe('fields, heredoc bodies, helpers', () => {
  test('expandWords splits on unquoted whitespace and in unquoted variable values', () => {
    assert.deepEqual(expandWords('80/tcp  8080', L), ['80/tcp', '8080']);
    assert.deepEqual(expandWords('$S', L), ['a', 'b', 'c']);
    assert.deepEqual(expandWords('"$S"', L), ['a b  c']);
    assert.deepEqual(expandWords('"x y" z', L), ['x y', 'z']);
    assert.deepEqual(expandWords('a\\ b', L), ['a b']);
    assert.deepEqual(expandWords('"" x', L), ['x'], 'an empty quoted string makes no field');
    assert.deepEqual(expandWords('', L), []);
  });
  test('keepUnset keeps references to unset names as written', () => {
    const keep = { keepUnset: true };
    assert.equal(expandWord('$HOME/x', L, keep), '$HOME/x');
    assert.equal(expandWord('${HOME}/x:$A', L, keep), '${HOME}/x:hello');
    assert.equal(expandWord('${HOME:-/root}', L, keep), '${HOME:-/root}');
    assert.equal(expandWord('$HOME', L, { keepUnset: (n) => n !== 'HOME' }), '');
  });
  test('heredoc bodies: variables and backslash escapes, quotes kept', () => {
    assert.equal(expandHeredoc('echo "$A" \'$A\'\n', L), 'echo "hello" \'hello\'\n');
    assert.equal(expandHeredoc('cost \\$5 ${U:-d}\n', L), 'cost $5 d\n');
  });
  test('referencedNames', () => {
    assert.deepEqual(referencedNames('${A:-$B}/$C').sort(), ['A', 'B', 'C']);
    assert.ok(referencedNames('${SRC_FORMAT}-code').includes('SRC_FORMAT'));
    assert.deepEqual(referencedNames("'$A'"), []);
    assert.deepEqual(referencedNames('${A'), []);
  });
  test('heredoc markers: raw words of a line, quoted delimiters, <<-, fd', () => {
    assert.deepEqual(rawWords('RUN cat <<EOF > "a b" <<-\'E2\''), ['RUN', 'cat', '<<EOF', '>', '"a b"', "<<-'E2'"]);
    assert.deepEqual(parseHeredocMarker('<<EOF'), { name: 'EOF', chomp: false, expand: true, fileDescriptor: 0 });
    assert.deepEqual(parseHeredocMarker('<<-"EOF"'), { name: 'EOF', chomp: true, expand: false, fileDescriptor: 0 });
    assert.equal(parseHeredocMarker("<<E'O'F")?.expand, false, 'a partly quoted delimiter turns off expansion');
    assert.equal(parseHeredocMarker('3<<x')?.fileDescriptor, 3);
    assert.equal(parseHeredocMarker('<<'), undefined);
    assert.equal(parseHeredocMarker('a<<EOF'), undefined);
    assert.equal(parseHeredocMarker('<<<EOF'), undefined);
    assert.equal(parseHeredocMarker('"<<EOF"'), undefined);
  });
});
