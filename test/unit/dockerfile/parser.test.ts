import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import type { CopyInstruction, Instruction, RunInstruction, HealthcheckInstruction } from '../../../src/dockerfile/ast.js';
import { KilnError } from '../../../src/util/errors.js';

const parse = (t: string) => parseDockerfile(t, { file: 'Dockerfile' });
const only = <T extends Instruction>(t: string, i = 1): T => parse(t).instructions[i] as T;
function parseError(t: string, re: RegExp, line?: number): KilnError {
  let caught: unknown;
  try {
    parse(t);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KilnError, `expected a KilnError for ${JSON.stringify(t)}, got ${String(caught)}`);
  assert.equal(caught.code, 'PARSE');
  assert.match(caught.message, re);
  if (line !== undefined) assert.equal(caught.place.line, line);
  assert.equal(caught.place.file, 'Dockerfile');
  return caught;
}

describe('parser directives', () => {
  test('syntax, escape and check at the top', () => {
    const df = parse('# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\n');
    assert.equal(df.directives.syntax, 'docker/dockerfile:1');
    assert.equal(df.directives.escape, '`');
    assert.equal(df.directives.check, 'skip=all');
  });
  test('directives are case-insensitive and allow spaces', () => {
    assert.equal(parse('#  ESCAPE = `\nFROM a').directives.escape, '`');
  });
  test('a directive after a comment, blank line or instruction is a comment', () => {
    assert.equal(parse('# hello\n# escape=`\nFROM a').directives.escape, '\\');
    assert.equal(parse('\n# escape=`\nFROM a').directives.escape, '\\');
    assert.equal(parse('FROM a\n# escape=`\n').directives.escape, '\\');
  });
  test('an unknown directive ends the directives', () => {
    assert.equal(parse('# unknown=x\n# escape=`\nFROM a').directives.escape, '\\');
  });
  test('duplicate and invalid directives are errors', () => {
    parseError('# escape=`\n# escape=\\\nFROM a', /only one escape/, 2);
    parseError('# escape=x\nFROM a', /invalid escape/, 1);
  });
});

describe('lines, comments, continuations', () => {
  test('continuations join lines; comment and empty lines inside are dropped', () => {
    const df = parse('FROM a\nRUN echo a \\\n  # a comment\n\n  b \\\n  c\nRUN x\n');
    const run = df.instructions[1] as RunInstruction;
    assert.equal(run.command.form, 'shell');
    assert.equal(run.command.form === 'shell' && run.command.command, 'echo a   b   c');
    assert.equal(run.range.start.line, 2);
    assert.equal(run.range.endLine, 6);
    assert.equal(df.instructions[2]!.range.start.line, 7);
    assert.ok(df.warnings.some((w) => w.rule === 'NoEmptyContinuation'));
  });
  test('backtick escape continues lines and leaves backslashes alone', () => {
    const df = parse('# escape=`\nFROM windows\nCOPY testfile.txt c:\\ `\n  d:\\dir\\\n');
    const copy = df.instructions[1] as CopyInstruction;
    assert.deepEqual(copy.sources, ['testfile.txt', 'c:\\']);
    assert.equal(copy.dest, 'd:\\dir\\');
  });
  test('CRLF line endings and a BOM', () => {
    const df = parse('\ufeffFROM a\r\nRUN b\r\n');
    assert.equal(df.instructions.length, 2);
  });
  test('instructions are case-insensitive; leading whitespace allowed', () => {
    const df = parse('from a as B\n   run x');
    assert.equal(df.instructions[0]!.kind, 'FROM');
    assert.equal(df.instructions[1]!.kind, 'RUN');
  });
});

describe('instructions', () => {
  test('FROM forms and flags', () => {
    const f = parse('FROM --platform=$BUILDPLATFORM golang:1.22 AS build').instructions[0]!;
    assert.equal(f.kind, 'FROM');
    assert.equal(f.kind === 'FROM' && f.image, 'golang:1.22');
    assert.equal(f.kind === 'FROM' && f.stageName, 'build');
    assert.equal(f.kind === 'FROM' && f.platform, '$BUILDPLATFORM');
    parseError('FROM a b', /one or three/);
    parseError('FROM a XS b', /AS/);
    parseError('FROM a AS 1x', /invalid name for build stage/);
  });
  test('exec vs shell form with BuildKit fallback', () => {
    const exec = only<RunInstruction>('FROM a\nRUN ["echo", "hi"]');
    assert.deepEqual(exec.command, { form: 'exec', args: ['echo', 'hi'] });
    const notJson = only<RunInstruction>("FROM a\nRUN ['echo', 'hi']");
    assert.equal(notJson.command.form, 'shell', 'single quotes are not JSON: shell form');
    const mixed = only<RunInstruction>('FROM a\nRUN ["echo", 1]');
    assert.equal(mixed.command.form, 'shell', 'a non-string element means shell form');
    const cmd = only('FROM a\nCMD echo $HOME');
    assert.equal(cmd.kind === 'CMD' && cmd.command.form, 'shell');
  });
  test('ENV and LABEL pairs, quotes kept for expansion, legacy form', () => {
    const env = only('FROM a\nENV A=1 B="two words" C=three\\ words');
    assert.deepEqual(env.kind === 'ENV' && env.pairs, [
      { key: 'A', value: '1' },
      { key: 'B', value: '"two words"' },
      { key: 'C', value: 'three\\ words' },
    ]);
    const legacy = parse('FROM a\nENV NAME some value here');
    assert.deepEqual(legacy.instructions[1]!.kind === 'ENV' && legacy.instructions[1]!.pairs, [{ key: 'NAME', value: 'some value here' }]);
    assert.ok(legacy.warnings.some((w) => w.rule === 'LegacyKeyValueFormat'));
    const label = only('FROM a\nLABEL "com.example.vendor"="ACME" version=1.0 multi="a b"');
    assert.equal(label.kind === 'LABEL' && label.pairs.length, 3);
    parseError('FROM a\nENV A=1 B', /can't find =/);
    parseError('FROM a\nENV A', /two arguments/);
  });
  test('ARG several per line, with and without defaults', () => {
    const a = parse('ARG A B=2 C="x y"\nFROM a').instructions[0]!;
    assert.deepEqual(a.kind === 'ARG' && a.args, [{ name: 'A' }, { name: 'B', default: '2' }, { name: 'C', default: '"x y"' }]);
  });
  test('EXPOSE, VOLUME (JSON and plain), USER, WORKDIR, STOPSIGNAL, SHELL, MAINTAINER', () => {
    const df = parse('FROM a\nEXPOSE 80/tcp 53/udp 8000-8010\nVOLUME ["/data", "/logs"]\nVOLUME /a /b\nUSER app:app\nWORKDIR /my dir\nSTOPSIGNAL SIGTERM\nSHELL ["/bin/bash", "-c"]\nMAINTAINER me <me@x>');
    const [, expose, v1, v2, user, wd, stop, shell, maint] = df.instructions;
    assert.deepEqual(expose!.kind === 'EXPOSE' && expose!.ports, ['80/tcp', '53/udp', '8000-8010']);
    assert.deepEqual(v1!.kind === 'VOLUME' && v1!.paths, ['/data', '/logs']);
    assert.deepEqual(v2!.kind === 'VOLUME' && v2!.paths, ['/a', '/b']);
    assert.equal(user!.kind === 'USER' && user!.user, 'app:app');
    assert.equal(wd!.kind === 'WORKDIR' && wd!.path, '/my dir');
    assert.equal(stop!.kind === 'STOPSIGNAL' && stop!.signal, 'SIGTERM');
    assert.deepEqual(shell!.kind === 'SHELL' && shell!.shell, ['/bin/bash', '-c']);
    assert.equal(maint!.kind === 'MAINTAINER' && maint!.name, 'me <me@x>');
    parseError('FROM a\nSHELL /bin/bash -c', /JSON form/);
    parseError('FROM a\nUSER a b', /exactly one/);
  });
  test('COPY and ADD with every flag', () => {
    const c = only<CopyInstruction>('FROM a\nCOPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dest/');
    assert.equal(c.from, 'build');
    assert.equal(c.chown, 'app:app');
    assert.equal(c.chmod, '0755');
    assert.equal(c.link, true);
    assert.equal(c.parents, true);
    assert.deepEqual(c.exclude, ['*.md', 'tmp']);
    assert.deepEqual(c.sources, ['a', 'b']);
    assert.equal(c.dest, '/dest/');
    const add = only<CopyInstruction>('FROM a\nADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tgz /y');
    assert.equal(add.kind, 'ADD');
    assert.equal(add.checksum, 'sha256:abc');
    assert.equal(add.keepGitDir, true);
    const json = only<CopyInstruction>('FROM a\nCOPY ["a b", "c", "/d e/"]');
    assert.deepEqual(json.sources, ['a b', 'c']);
    assert.equal(json.dest, '/d e/');
    assert.equal(only<CopyInstruction>('FROM a\nCOPY --link=false a b').link, false);
    parseError('FROM a\nCOPY a', /at least two arguments/);
    parseError('FROM a\nADD --from=x a b', /unknown flag: --from/);
    parseError('FROM a\nCOPY --chown a b', /missing a value/);
    parseError('FROM a\nCOPY --link=maybe a b', /boolean/);
    parseError('FROM a\nCOPY --from=a --from=b x y', /duplicate flag/);
  });
  test('unknown flags and instructions are errors with a position', () => {
    const e = parseError('FROM a\nRUN --bogus=1 echo', /unknown flag: --bogus/, 2);
    assert.equal(e.place.column, 5);
    const u = parseError('FROM a\n\n  FORM b', /unknown instruction: FORM/, 3);
    assert.equal(u.place.column, 3);
    assert.match(u.hint ?? '', /FROM/);
    parseError('FROM a\nCMD --x=1 echo', /unknown flag/);
  });
  test('RUN flags: network, security, mounts', () => {
    const r = only<RunInstruction>('FROM a\nRUN --network=none --security=insecure --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=tok,env=TOKEN pip install x');
    assert.equal(r.network, 'none');
    assert.equal(r.security, 'insecure');
    assert.deepEqual(r.mounts[0], { type: 'cache', target: '/root/.cache/pip', id: undefined, source: undefined, from: undefined, sharing: 'locked', readonly: false, mode: undefined, uid: undefined, gid: undefined });
    assert.equal(r.mounts[1]!.type, 'secret');
    assert.equal(r.mounts[1]!.type === 'secret' && r.mounts[1]!.env, 'TOKEN');
    parseError('FROM a\nRUN --network=bridge x', /invalid --network/);
    parseError('FROM a\nRUN --mount=type=cache,target=/x,bogus=1 x', /unexpected key "bogus"/);
    parseError('FROM a\nRUN --mount=type=nfs,target=/x x', /unsupported mount type/);
  });
  test('HEALTHCHECK forms and durations', () => {
    const h = only<HealthcheckInstruction>('FROM a\nHEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/');
    assert.equal(h.none, false);
    assert.equal(h.interval, 30e9);
    assert.equal(h.timeout, 90e9);
    assert.equal(h.startInterval, 500e6);
    assert.equal(h.retries, 3);
    assert.equal(h.command?.form, 'shell');
    assert.equal(only<HealthcheckInstruction>('FROM a\nHEALTHCHECK NONE').none, true);
    parseError('FROM a\nHEALTHCHECK --interval=soon CMD x', /invalid duration/);
    parseError('FROM a\nHEALTHCHECK PING x', /unknown type/);
  });
  test('ONBUILD stores a parsed trigger; chaining and FROM are refused', () => {
    const o = only('FROM a\nONBUILD COPY . /app');
    assert.equal(o.kind === 'ONBUILD' && o.trigger.kind, 'COPY');
    assert.equal(o.kind === 'ONBUILD' && o.expression, 'COPY . /app');
    parseError('FROM a\nONBUILD ONBUILD RUN x', /Chaining ONBUILD/);
    parseError('FROM a\nONBUILD FROM x', /isn't allowed as an ONBUILD trigger/);
  });
});

describe('heredocs', () => {
  test('RUN with a heredoc script', () => {
    const r = only<RunInstruction>('FROM a\nRUN <<EOF\napt-get update\napt-get install -y x\nEOF\nRUN after');
    assert.equal(r.command.form, 'shell');
    if (r.command.form !== 'shell') return;
    assert.equal(r.command.command, '<<EOF');
    assert.deepEqual(r.command.heredocs, [{ name: 'EOF', content: 'apt-get update\napt-get install -y x\n', chomp: false, expand: true }]);
    assert.equal(parse('FROM a\nRUN <<EOF\nx\nEOF\nRUN after').instructions[2]!.kind, 'RUN');
  });
  test('<<- strips leading tabs; quoted delimiters turn off expansion', () => {
    const r = only<RunInstruction>("FROM a\nRUN <<-'END'\n\techo $HOME\n\tEND\n");
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.content, 'echo $HOME\n');
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.expand, false);
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.chomp, true);
  });
  test('several heredocs on one line, in COPY (inline files)', () => {
    const c = only<CopyInstruction>('FROM a\nCOPY <<one.txt <<"two.txt" /dest/\nfirst\none.txt\nsecond $X\ntwo.txt\n');
    assert.deepEqual(c.sources, ['<<one.txt', '<<"two.txt"']);
    assert.deepEqual(c.heredocs.map((h) => [h.name, h.content, h.expand]), [
      ['one.txt', 'first\n', true],
      ['two.txt', 'second $X\n', false],
    ]);
  });
  test('a heredoc inside quotes is not a heredoc; an unterminated one is an error', () => {
    const r = only<RunInstruction>('FROM a\nRUN echo "<<EOF"');
    assert.deepEqual(r.command.form === 'shell' && r.command.heredocs, []);
    parseError('FROM a\nRUN <<EOF\nno end', /unterminated heredoc/, 2);
  });
});
