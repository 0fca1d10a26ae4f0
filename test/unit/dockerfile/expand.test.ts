import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandWord, expandWords, referencedNames, ExpansionError } from '../../../src/dockerfile/expand.js';

const env: Record<string, string> = { A: 'hello', E: '', P: '/usr/local/bin/python3.tar.gz', S: 'a b  c', D: 'x' };
const L = (n: string) => env[n];
const X = (w: string) => expandWord(w, L);

test('plain and braced variables; unset is empty', () => {
  assert.equal(X('$A'), 'hello');
  assert.equal(X('${A}'), 'hello');
  assert.equal(X('x${A}y'), 'xhelloy');
  assert.equal(X('$A.$A'), 'hello.hello');
  assert.equal(X('$NOPE'), '');
  assert.equal(X('a$'), 'a$');
  assert.equal(X('$-x'), '$-x');
});

test('quotes: single quotes are literal, double quotes expand; both removed', () => {
  assert.equal(X("'$A'"), '$A');
  assert.equal(X('"$A world"'), 'hello world');
  assert.equal(X(`"it's"`), "it's");
  assert.equal(X(`'say "hi"'`), 'say "hi"');
  assert.equal(X('"a\\"b"'), 'a"b');
  assert.equal(X('"a\\$A"'), 'a$A');
  assert.equal(X('"a\\nb"'), 'a\\nb', 'an escape before another character stays inside double quotes');
});

test('escapes outside quotes', () => {
  assert.equal(X('\\$A'), '$A');
  assert.equal(X('a\\ b'), 'a b');
  assert.equal(X('trailing\\'), 'trailing\\');
  assert.equal(expandWord('`$A', L, { escape: '`' }), '$A');
  assert.equal(expandWord('C:\\path\\$A', L, { escape: '`' }), 'C:\\path\\hello', 'with escape=` backslashes are plain');
});

test('default and alternative modifiers distinguish unset from empty', () => {
  assert.equal(X('${U:-def}'), 'def');
  assert.equal(X('${E:-def}'), 'def');
  assert.equal(X('${E-def}'), '');
  assert.equal(X('${U-def}'), 'def');
  assert.equal(X('${A:-def}'), 'hello');
  assert.equal(X('${A:+alt}'), 'alt');
  assert.equal(X('${E:+alt}'), '');
  assert.equal(X('${E+alt}'), 'alt');
  assert.equal(X('${U+alt}'), '');
  assert.equal(X('${U:-${A}}'), 'hello', 'nested expansion in the word');
  assert.equal(X('${U:-"a b"}'), 'a b');
});

test('required modifiers fail with the message', () => {
  assert.throws(() => X('${U:?must be set}'), (e: unknown) => e instanceof ExpansionError && /U: must be set/.test(e.message));
  assert.throws(() => X('${E:?}'), ExpansionError);
  assert.equal(X('${E?}'), '');
  assert.throws(() => X('${U?}'), ExpansionError);
  assert.equal(X('${A:?x}'), 'hello');
});

test('prefix and suffix removal with globs', () => {
  assert.equal(X('${P#*/}'), 'usr/local/bin/python3.tar.gz');
  assert.equal(X('${P##*/}'), 'python3.tar.gz');
  assert.equal(X('${P%.*}'), '/usr/local/bin/python3.tar');
  assert.equal(X('${P%%.*}'), '/usr/local/bin/python3');
  assert.equal(X('${P#nomatch}'), env.P);
  assert.equal(X('${A#h?l}'), 'lo');
  assert.equal(X('${A%[lo]}'), 'hell');
  assert.equal(X('${A#"*"}'), 'hello', 'a quoted * is literal');
});

test('pattern replacement, first and all', () => {
  assert.equal(X('${P/l/L}'), '/usr/Local/bin/python3.tar.gz');
  assert.equal(X('${P//l/L}'), '/usr/LocaL/bin/python3.tar.gz');
  assert.equal(X('${P//l}'), '/usr/oca/bin/python3.tar.gz', 'missing replacement deletes');
  assert.equal(X('${A/h*l/J}'), 'Jo', 'greedy glob');
});

test('malformed substitutions are errors with an offset', () => {
  assert.throws(() => X('${A'), ExpansionError);
  assert.throws(() => X('${}'), ExpansionError);
  assert.throws(() => X('${A:x}'), ExpansionError);
  assert.throws(() => X('"open'), /double-quote/);
  assert.throws(() => X("'open"), /single-quote/);
});

test('expandWords splits on unquoted whitespace and unquoted expansions', () => {
  assert.deepEqual(expandWords('80/tcp  8080', L), ['80/tcp', '8080']);
  assert.deepEqual(expandWords('$S', L), ['a', 'b', 'c']);
  assert.deepEqual(expandWords('"$S"', L), ['a b  c']);
  assert.deepEqual(expandWords('"x y" z', L), ['x y', 'z']);
});

test('referencedNames finds the variables a word uses', () => {
  assert.deepEqual(referencedNames('${A:-$B}/$C'), ['A', 'B', 'C']);
  assert.ok(referencedNames('${SRC_FORMAT}-code').includes('SRC_FORMAT'));
  assert.deepEqual(referencedNames("'$A'"), []);
});
