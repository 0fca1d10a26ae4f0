// The Dockerfile parser, against the Dockerfile reference and BuildKit's parser behaviour.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import type {
  CopyInstruction,
  Instruction,
  RunInstruction,
  HealthcheckInstruction,
  OnbuildInstruction,
} from '../../../src/dockerfile/ast.js';
import { KilnError } from '../../../src/util/errors.js';

const parse = (t: string) => parseDockerfile(t, { file: 'Dockerfile' });
const only = <T extends Instruction>(t: string, i = 1): T => parse(t).instructions[i] as T;
function parseError(t: string, re: RegExp, line?: number, column?: number): KilnError {
  let caught: unknown;
  try {
    parse(t);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KilnError, `expected a KilnError for ${JSON.stringify(t)}, got ${String(caught)}`);
  assert.equal(caught.code, 'PARSE');
  assert.match(caught.message, re);
  if (line !== undefined) assert.equal(caught.place.line, line, 'line');
  if (column !== undefined) assert.equal(caught.place.column, column, 'column');
  assert.equal(caught.place.file, 'Dockerfile');
  assert.equal(caught.place.source, t.split('\n')[caught.place.line! - 1], 'the offending line is attached');
  return caught;
}

describe('parser directives', () => {
  test('syntax, escape and check at the top', () => {
    const df = parse('# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\n');
    assert.equal(df.directives.syntax, 'docker/dockerfile:1');
    assert.equal(df.directives.escape, '`');
    assert.equal(df.directives.check, 'skip=all');
  });
  test('case-insensitive, spaces allowed around # and =, leading whitespace allowed', () => {
    assert.equal(parse('#  ESCAPE = `\nFROM a').directives.escape, '`');
    assert.equal(parse('#escape=`\nFROM a').directives.escape, '`');
    assert.equal(parse('   # escape=`\nFROM a').directives.escape, '`');
  });
  test('a directive after a comment, a blank line or an instruction is a comment', () => {
    assert.equal(parse('# hello\n# escape=`\nFROM a').directives.escape, '\\');
    assert.equal(parse('\n# escape=`\nFROM a').directives.escape, '\\');
    assert.equal(parse('FROM a\n# escape=`\n').directives.escape, '\\');
    assert.equal(parse('# unknown=x\n# escape=`\nFROM a').directives.escape, '\\', 'an unknown directive ends them');
    assert.equal(parse('# escape=\n# syntax=x\nFROM a').directives.syntax, undefined, 'a directive needs a value');
  });
  test('duplicate and invalid directives are errors', () => {
    parseError('# escape=`\n# escape=\\\nFROM a', /only one escape parser directive/, 2);
    parseError('# syntax=a\n# SYNTAX=b\nFROM a', /only one syntax/, 2);
    parseError('# escape=x\nFROM a', /invalid escape token 'x'/, 1);
  });
});

describe('lines, comments, continuations', () => {
  test('comment and empty lines inside a continuation are dropped (with a warning for empty ones)', () => {
    const df = parse('FROM a\nRUN echo a \\\n  # a comment\n\n  b \\\n  c\nRUN x\n');
    const run = df.instructions[1] as RunInstruction;
    assert.equal(
      run.command.form === 'shell' && run.command.command,
      'echo a   b   c',
      'continuation lines keep their leading whitespace',
    );
    assert.equal(run.range.start.line, 2);
    assert.equal(run.range.endLine, 6);
    assert.equal(df.instructions[2]!.range.start.line, 7);
    assert.deepEqual(
      df.warnings.filter((w) => w.rule === 'NoEmptyContinuation').map((w) => w.line),
      [4],
    );
  });
  test('an escaped escape at the end of a line is not a continuation', () => {
    const df = parse('FROM a\nRUN echo a\\\\\nRUN b');
    assert.equal(df.instructions.length, 3);
    assert.equal(
      (df.instructions[1] as RunInstruction).command.form === 'shell' &&
        (df.instructions[1] as RunInstruction & { command: { command: string } }).command.command,
      'echo a\\\\',
    );
  });
  test('a continuation may end the file; a line of only the escape joins the next', () => {
    assert.equal(
      only<RunInstruction>('FROM a\nRUN echo \\').command.form === 'shell' &&
        (only<RunInstruction>('FROM a\nRUN echo \\').command as { command: string }).command,
      'echo',
    );
    const df = parse('FROM a\nRUN echo \\\n\\\nb');
    assert.equal((df.instructions[1] as RunInstruction & { command: { command: string } }).command.command, 'echo b');
  });
  test('backtick escape: continues lines and leaves backslashes alone (Windows paths)', () => {
    const df = parse('# escape=`\nFROM windows\nCOPY testfile.txt c:\\ `\n  d:\\dir\\\nRUN dir c:\\');
    const copy = df.instructions[1] as CopyInstruction;
    assert.deepEqual(copy.sources, ['testfile.txt', 'c:\\']);
    assert.equal(copy.dest, 'd:\\dir\\');
    assert.equal(df.instructions.length, 3);
  });
  test('CRLF line endings, a BOM, comments with leading whitespace', () => {
    const df = parse('\ufeffFROM a\r\n   # indented comment\r\nRUN b\r\n');
    assert.equal(df.instructions.length, 2);
    assert.equal((df.instructions[1] as RunInstruction & { command: { command: string } }).command.command, 'b');
  });
  test('instructions are case-insensitive; leading whitespace allowed; positions', () => {
    const df = parse('from a as B\n   run x');
    assert.equal(df.instructions[0]!.kind, 'FROM');
    assert.equal(df.instructions[1]!.kind, 'RUN');
    assert.deepEqual(df.instructions[1]!.range.start, { line: 2, column: 4 });
  });
  test('unknown instructions are errors with the position and a suggestion', () => {
    const u = parseError('FROM a\n\n  FORM b', /unknown instruction: FORM/, 3, 3);
    assert.match(u.hint ?? '', /FROM/);
    parseError('FROM a\nCOPYY a b', /unknown instruction/, 2, 1);
  });
});

describe('flags', () => {
  test('quotes in values are removed, backslashes escape, -- ends the flags', () => {
    const c = only<CopyInstruction>('FROM a\nCOPY --chown="app user:app" --chmod=\'0755\' a b');
    assert.equal(c.chown, 'app user:app');
    assert.equal(c.chmod, '0755');
    const r = only<RunInstruction>('FROM a\nRUN -- --not-a-flag');
    assert.equal(r.command.form === 'shell' && r.command.command, '--not-a-flag');
    assert.equal(
      only<CopyInstruction>('FROM a\nCOPY --from=$STAGE a b').from,
      '$STAGE',
      'variables stay for the planner',
    );
  });
  test('unknown, duplicate, missing-value and non-boolean flags are errors at the flag', () => {
    parseError('FROM a\nRUN --bogus=1 echo', /unknown flag: --bogus/, 2, 5);
    parseError('FROM a\nCMD --x=1 echo', /unknown flag: --x/, 2, 5);
    parseError('FROM a\nADD --from=x a b', /unknown flag: --from/);
    parseError('FROM a\nCOPY --chown a b', /missing a value on flag: --chown/);
    parseError('FROM a\nCOPY --link=maybe a b', /expecting boolean value for flag link/);
    parseError('FROM a\nCOPY --link= a b', /missing a value on flag: --link/);
    parseError('FROM a\nCOPY --from=a --from=b x y', /duplicate flag specified: --from/, 2, 15);
    parseError('FROM --platform=a --platform=b img', /duplicate flag/);
  });
  test('repeatable flags keep their order', () => {
    const c = only<CopyInstruction>('FROM a\nCOPY --exclude=*.md --exclude=tmp a b');
    assert.deepEqual(c.exclude, ['*.md', 'tmp']);
    const r = only<RunInstruction>('FROM a\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b x');
    assert.deepEqual(
      r.mounts.map((m) => m.type),
      ['cache', 'tmpfs'],
    );
    assert.deepEqual(r.mountFlags, ['type=cache,target=/a', 'type=tmpfs,target=/b']);
  });
});

describe('instructions', () => {
  test('FROM forms and flags', () => {
    const f = parse('FROM --platform=$BUILDPLATFORM golang:1.22 AS build').instructions[0]!;
    assert.equal(f.kind === 'FROM' && f.image, 'golang:1.22');
    assert.equal(f.kind === 'FROM' && f.stageName, 'build');
    assert.equal(f.kind === 'FROM' && f.platform, '$BUILDPLATFORM');
    assert.equal(
      parse('FROM a as Build.2-x_y').instructions[0]!.kind === 'FROM' &&
        (parse('FROM a as Build.2-x_y').instructions[0] as { stageName: string }).stageName,
      'Build.2-x_y',
    );
    parseError('FROM a b', /one or three/);
    parseError('FROM a XS b', /one or three/);
    parseError('FROM a AS b c', /one or three/);
    parseError('FROM a AS 1x', /invalid name for build stage: "1x"/, 1, 11);
    parseError('FROM a AS b$c', /invalid name for build stage/);
    parseError('FROM', /FROM requires either one or three arguments/);
  });
  test('exec vs shell form with BuildKit fallback', () => {
    assert.deepEqual(only<RunInstruction>('FROM a\nRUN ["echo", "hi"]').command, {
      form: 'exec',
      args: ['echo', 'hi'],
    });
    assert.deepEqual(only<RunInstruction>('FROM a\nRUN   [ "a b" ]  ').command, { form: 'exec', args: ['a b'] });
    assert.equal(
      only<RunInstruction>("FROM a\nRUN ['echo', 'hi']").command.form,
      'shell',
      'single quotes are not JSON',
    );
    assert.equal(
      only<RunInstruction>('FROM a\nRUN [ "echo", "hi" ').command.form,
      'shell',
      'invalid JSON is the shell form',
    );
    assert.equal(only<RunInstruction>('FROM a\nRUN [abc] && x').command.form, 'shell');
    assert.deepEqual(only('FROM a\nCMD []'), { ...only('FROM a\nCMD []'), command: { form: 'exec', args: [] } });
    parseError('FROM a\nRUN ["echo", 1]', /arrays must be comprised of strings only/, 2, 5);
    parseError('FROM a\nCMD ["a", null]', /strings only/);
    parseError('FROM a\nCOPY ["a", 1, "/b"]', /strings only/);
    assert.equal(
      only('FROM a\nCMD echo $HOME').kind === 'CMD' &&
        (only('FROM a\nCMD echo $HOME') as { command: { form: string } }).command.form,
      'shell',
    );
  });
  test('ENV and LABEL: pairs (quotes kept for expansion), legacy form', () => {
    const env = only('FROM a\nENV A=1 B="two words" C=three\\ words D=');
    assert.deepEqual(env.kind === 'ENV' && env.pairs, [
      { key: 'A', value: '1' },
      { key: 'B', value: '"two words"' },
      { key: 'C', value: 'three\\ words' },
      { key: 'D', value: '' },
    ]);
    const legacy = parse('FROM a\nENV NAME some value  here');
    assert.deepEqual(legacy.instructions[1]!.kind === 'ENV' && legacy.instructions[1]!.pairs, [
      { key: 'NAME', value: 'some value  here' },
    ]);
    assert.ok(legacy.warnings.some((w) => w.rule === 'LegacyKeyValueFormat' && w.line === 2));
    const label = only('FROM a\nLABEL "com.example.vendor"="ACME" version=1.0 multi="a b"');
    assert.deepEqual(label.kind === 'LABEL' && label.pairs.map((p) => p.key), [
      '"com.example.vendor"',
      'version',
      'multi',
    ]);
    parseError('FROM a\nENV A=1 B', /can't find = in "B"/, 2, 9);
    parseError('FROM a\nENV A', /ENV must have two arguments/);
    parseError('FROM a\nLABEL a', /LABEL must have two arguments/);
    parseError('FROM a\nENV =x', /ENV names can not be blank/);
    parseError('FROM a\nENV', /ENV requires at least one argument/);
  });
  test('ARG: several per line, with and without defaults', () => {
    const a = parse('ARG A B=2 C="x y" D=\nFROM a').instructions[0]!;
    assert.deepEqual(a.kind === 'ARG' && a.args, [
      { name: 'A' },
      { name: 'B', default: '2' },
      { name: 'C', default: '"x y"' },
      { name: 'D', default: '' },
    ]);
    parseError('ARG =x\nFROM a', /ARG names can not be blank/);
    parseError('ARG\nFROM a', /ARG requires at least one argument/);
  });
  test('EXPOSE, VOLUME (JSON and plain), USER, WORKDIR, STOPSIGNAL, SHELL, MAINTAINER', () => {
    const df = parse(
      'FROM a\nEXPOSE 80/tcp 53/udp 8000-8010\nVOLUME ["/data", "/logs"]\nVOLUME /a /b\nUSER app:app\nWORKDIR /my dir\nSTOPSIGNAL SIGTERM\nSHELL ["/bin/bash", "-c"]\nMAINTAINER me <me@x>',
    );
    const [, expose, v1, v2, user, wd, stop, shell, maint] = df.instructions;
    assert.deepEqual(expose!.kind === 'EXPOSE' && expose!.ports, ['80/tcp', '53/udp', '8000-8010']);
    assert.deepEqual(v1!.kind === 'VOLUME' && v1!.paths, ['/data', '/logs']);
    assert.deepEqual(v2!.kind === 'VOLUME' && v2!.paths, ['/a', '/b']);
    assert.equal(user!.kind === 'USER' && user!.user, 'app:app');
    assert.equal(wd!.kind === 'WORKDIR' && wd!.path, '/my dir');
    assert.equal(stop!.kind === 'STOPSIGNAL' && stop!.signal, 'SIGTERM');
    assert.deepEqual(shell!.kind === 'SHELL' && shell!.shell, ['/bin/bash', '-c']);
    assert.equal(maint!.kind === 'MAINTAINER' && maint!.name, 'me <me@x>');
    assert.ok(df.warnings.some((w) => w.rule === 'MaintainerDeprecated'));
    assert.equal(
      only('FROM a\nUSER a b').kind === 'USER' && (only('FROM a\nUSER a b') as { user: string }).user,
      'a b',
      'USER takes the rest of the line, as BuildKit',
    );
    parseError('FROM a\nSHELL /bin/bash -c', /SHELL requires the arguments to be in JSON form/);
    parseError('FROM a\nSHELL []', /SHELL requires at least one argument/);
    parseError('FROM a\nVOLUME [""]', /VOLUME specified can not be an empty string/);
    parseError('FROM a\nWORKDIR', /WORKDIR requires at least one argument/);
    parseError('FROM a\nEXPOSE', /EXPOSE requires at least one argument/);
  });
  test('COPY and ADD with every flag; JSON form; shell form splits on whitespace only', () => {
    const c = only<CopyInstruction>(
      'FROM a\nCOPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md a b /dest/',
    );
    assert.equal(c.from, 'build');
    assert.equal(c.chown, 'app:app');
    assert.equal(c.chmod, '0755');
    assert.equal(c.link, true);
    assert.equal(c.parents, true);
    assert.deepEqual(c.sources, ['a', 'b']);
    assert.equal(c.dest, '/dest/');
    const add = only<CopyInstruction>(
      'FROM a\nADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link=false https://x/y.tgz /y',
    );
    assert.equal(add.kind, 'ADD');
    assert.equal(add.checksum, 'sha256:abc');
    assert.equal(add.keepGitDir, true);
    assert.equal(add.unpack, false);
    assert.equal(add.link, false);
    const json = only<CopyInstruction>('FROM a\nCOPY ["a b", "c", "/d e/"]');
    assert.deepEqual(json.sources, ['a b', 'c']);
    assert.equal(json.dest, '/d e/');
    const quoted = only<CopyInstruction>('FROM a\nCOPY "a b" /c');
    assert.deepEqual(quoted.sources, ['"a', 'b"'], 'as BuildKit: a path with spaces needs the JSON form');
    parseError('FROM a\nCOPY a', /at least two arguments/);
    parseError('FROM a\nCOPY a <<EOF\nx\nEOF', /cannot accept a heredoc as a destination/);
  });
  test('RUN flags: network, security, mounts (typed, BuildKit defaults and aliases)', () => {
    const r = only<RunInstruction>(
      'FROM a\nRUN --network=none --security=insecure --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=tok,env=TOKEN pip install x',
    );
    assert.equal(r.network, 'none');
    assert.equal(r.security, 'insecure');
    assert.deepEqual(r.mounts[0], {
      type: 'cache',
      target: '/root/.cache/pip',
      id: undefined,
      source: undefined,
      from: undefined,
      sharing: 'locked',
      readonly: false,
      mode: undefined,
      uid: undefined,
      gid: undefined,
    });
    assert.deepEqual(r.mounts[1], {
      type: 'secret',
      id: 'tok',
      target: undefined,
      env: 'TOKEN',
      required: false,
      mode: undefined,
      uid: undefined,
      gid: undefined,
    });
    const m = only<RunInstruction>(
      'FROM a\nRUN --mount=dst=/src,from=build,source=/out,rw --mount=type=tmpfs,dst=/t,size=64m --mount=type=ssh,required --mount=type=cache,target=/c,mode=0700,uid=1000,ro x',
    ).mounts;
    assert.deepEqual(m[0], { type: 'bind', target: '/src', source: '/out', from: 'build', readwrite: true });
    assert.deepEqual(m[1], { type: 'tmpfs', target: '/t', size: 64 * 1024 * 1024 });
    assert.equal(m[2]!.type === 'ssh' && m[2]!.required, true);
    assert.equal(m[3]!.type === 'cache' && m[3]!.mode, 0o700);
    assert.equal(m[3]!.type === 'cache' && m[3]!.readonly, true);
    assert.equal(
      only<RunInstruction>('FROM a\nRUN --mount=type=bind,target=/x x').mounts[0]!.type === 'bind' &&
        (only<RunInstruction>('FROM a\nRUN --mount=type=bind,target=/x x').mounts[0] as { readwrite: boolean })
          .readwrite,
      false,
      'bind mounts are read-only by default',
    );
    assert.equal(
      only<RunInstruction>('FROM a\nRUN --mount=type=cache,target=$DIR,uid=$UID x').mounts[0]!.type,
      'cache',
      'values with variables are checked once expanded',
    );
  });
  test('RUN flag errors name the option', () => {
    parseError('FROM a\nRUN --network=bridge x', /unsupported network mode "bridge"/, 2, 5);
    parseError('FROM a\nRUN --security=x y', /unsupported security mode/);
    parseError('FROM a\nRUN --mount=type=cache,target=/x,bogus=1 x', /unexpected key 'bogus'/, 2, 5);
    parseError('FROM a\nRUN --mount=type=nfs,target=/x x', /unsupported mount type "nfs"/);
    parseError('FROM a\nRUN --mount=type=cache x', /requires a target/);
    parseError('FROM a\nRUN --mount=type=bind,target=/x,mode=0755 y', /mode not allowed for "bind"/);
    parseError('FROM a\nRUN --mount=type=bind,target=/x,sharing=locked y', /invalid cache sharing/);
    parseError('FROM a\nRUN --mount=type=cache,target=/x,sharing=sometimes y', /unsupported sharing value "sometimes"/);
    parseError('FROM a\nRUN --mount=type=cache,target=/x,uid=me y', /invalid value me for uid/);
    parseError('FROM a\nRUN --mount=type=cache,target=/x,mode=999 y', /invalid value 999 for mode/);
    parseError('FROM a\nRUN --mount=type=tmpfs,target=/x,size=lots y', /invalid value "lots" for 'size'/);
    parseError(
      'FROM a\nRUN --mount=type=cache,target=/x,required y',
      /unexpected key 'required' for mount type 'cache'/,
    );
    parseError('FROM a\nRUN --mount=type=secret,id=a,source=b y', /both source and id/);
    parseError('FROM a\nRUN --mount=type=secret,from=x,id=a y', /secret mount should not have a from/);
    parseError('FROM a\nRUN --mount=type=cache,target=/x,readonly=perhaps y', /invalid value "perhaps" for 'readonly'/);
    parseError('FROM a\nRUN --mount=type=bind,target=/x,foo y', /invalid field 'foo' must be a key=value pair/);
    parseError('FROM a\nRUN --mount= y', /--mount needs options/);
  });
  test('HEALTHCHECK forms and Go durations', () => {
    const h = only<HealthcheckInstruction>(
      'FROM a\nHEALTHCHECK --interval=30s --timeout=1m30s --start-period=.5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/',
    );
    assert.equal(h.none, false);
    assert.equal(h.interval, 30e9);
    assert.equal(h.timeout, 90e9);
    assert.equal(h.startPeriod, 0.5e9);
    assert.equal(h.startInterval, 500e6);
    assert.equal(h.retries, 3);
    assert.deepEqual(h.command, { form: 'shell', command: 'curl -f http://localhost/', heredocs: [] });
    assert.deepEqual(only<HealthcheckInstruction>('FROM a\nHEALTHCHECK CMD ["true"]').command, {
      form: 'exec',
      args: ['true'],
    });
    assert.equal(only<HealthcheckInstruction>('FROM a\nHEALTHCHECK NONE').none, true);
    assert.equal(only<HealthcheckInstruction>('FROM a\nHEALTHCHECK --interval=0 CMD x').interval, 0);
    // Go's two spellings of micro (micro sign, Greek mu): 1,500,000 µs is 1.5 s.
    assert.equal(only<HealthcheckInstruction>('FROM a\nHEALTHCHECK --interval=1500000\u00b5s CMD x').interval, 1.5e9);
    assert.equal(only<HealthcheckInstruction>('FROM a\nHEALTHCHECK --interval=1000000\u03bcs CMD x').interval, 1e9);
    parseError('FROM a\nHEALTHCHECK --interval=soon CMD x', /invalid duration for --interval/, 2, 13);
    parseError('FROM a\nHEALTHCHECK --interval=10us CMD x', /cannot be less than 1ms/);
    parseError('FROM a\nHEALTHCHECK --interval=-1s CMD x', /cannot be less than 1ms/);
    parseError('FROM a\nHEALTHCHECK --retries=-1 CMD x', /--retries cannot be negative/);
    parseError('FROM a\nHEALTHCHECK --retries=x CMD x', /invalid --retries/);
    parseError('FROM a\nHEALTHCHECK PING x', /Unknown type "PING" in HEALTHCHECK/);
    parseError('FROM a\nHEALTHCHECK CMD', /Missing command after HEALTHCHECK CMD/);
    parseError('FROM a\nHEALTHCHECK NONE x', /HEALTHCHECK NONE takes no arguments/);
    parseError('FROM a\nHEALTHCHECK --bogus=1 CMD x', /unknown flag: --bogus/);
  });
  test('ONBUILD stores a parsed trigger; chaining, FROM and MAINTAINER are refused', () => {
    const o = only<OnbuildInstruction>('FROM a\nONBUILD COPY --chown=1:1 . /app');
    assert.equal(o.trigger.kind, 'COPY');
    assert.equal(o.trigger.kind === 'COPY' && o.trigger.chown, '1:1');
    assert.equal(o.expression, 'COPY --chown=1:1 . /app');
    parseError('FROM a\nONBUILD ONBUILD RUN x', /Chaining ONBUILD/);
    parseError('FROM a\nonbuild from x', /FROM isn't allowed as an ONBUILD trigger/);
    parseError('FROM a\nONBUILD MAINTAINER x', /MAINTAINER isn't allowed/);
    parseError('FROM a\nONBUILD RUN --bogus=1 x', /unknown flag: --bogus/, 2, 13);
    parseError('FROM a\nONBUILD FOO x', /unknown instruction: FOO/);
  });
});

describe('heredocs', () => {
  test('RUN with a heredoc script; the body is not an instruction', () => {
    const df = parse('FROM a\nRUN <<EOF\napt-get update\nFROM x\nEOF\nRUN after');
    const r = df.instructions[1] as RunInstruction;
    assert.equal(r.command.form, 'shell');
    if (r.command.form !== 'shell') return;
    assert.equal(r.command.command, '<<EOF');
    assert.deepEqual(r.command.heredocs, [
      { name: 'EOF', content: 'apt-get update\nFROM x\n', chomp: false, expand: true },
    ]);
    assert.deepEqual(
      df.instructions.map((i) => i.kind),
      ['FROM', 'RUN', 'RUN'],
    );
    assert.equal(df.instructions[2]!.range.start.line, 6);
  });
  test('<<- strips leading tabs of the body and the delimiter; quoted delimiters turn off expansion', () => {
    const r = only<RunInstruction>("FROM a\nRUN <<-'END'\n\techo $HOME\n\t\tx\n\tEND\n");
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.content, 'echo $HOME\nx\n');
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.expand, false);
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.chomp, true);
    parseError('FROM a\nRUN <<END\n\tEND\n', /unterminated heredoc/, 2, 1);
  });
  test('several heredocs on one line, with flags and redirections, in RUN and COPY/ADD', () => {
    const r = only<RunInstruction>(
      'FROM a\nRUN --mount=type=cache,target=/c python3 <<PY > /out 3<<"CFG"\nprint(1)\nPY\n$NOT_EXPANDED\nCFG\nRUN next',
    );
    assert.equal(r.command.form === 'shell' && r.command.command, 'python3 <<PY > /out 3<<"CFG"');
    assert.deepEqual(
      r.command.form === 'shell' && r.command.heredocs.map((h) => [h.name, h.content, h.expand, h.fileDescriptor]),
      [
        ['PY', 'print(1)\n', true, undefined],
        ['CFG', '$NOT_EXPANDED\n', false, 3],
      ],
    );
    const c = only<CopyInstruction>('FROM a\nCOPY <<one.txt <<"two.txt" /dest/\nfirst\none.txt\nsecond $X\ntwo.txt\n');
    assert.deepEqual(c.sources, ['<<one.txt', '<<"two.txt"']);
    assert.deepEqual(
      c.heredocs.map((h) => [h.name, h.content, h.expand]),
      [
        ['one.txt', 'first\n', true],
        ['two.txt', 'second $X\n', false],
      ],
    );
    const add = only<CopyInstruction>('FROM a\nADD --chmod=0755 <<-EOF /usr/bin/hello\n\t#!/bin/sh\n\techo hi\nEOF\n');
    assert.equal(add.heredocs[0]!.content, '#!/bin/sh\necho hi\n');
  });
  test('not heredocs: inside quotes, in JSON form, without a name, other instructions', () => {
    assert.deepEqual(
      (only<RunInstruction>('FROM a\nRUN echo "<<EOF"').command as { heredocs: unknown[] }).heredocs,
      [],
    );
    assert.deepEqual(only<RunInstruction>('FROM a\nRUN ["cat", "<<EOF"]').command, {
      form: 'exec',
      args: ['cat', '<<EOF'],
    });
    assert.deepEqual((only<RunInstruction>('FROM a\nRUN echo a<<b').command as { heredocs: unknown[] }).heredocs, []);
    assert.equal(parse('FROM a\nCMD cat <<EOF\nRUN x').instructions.length, 3, 'CMD takes no heredoc');
  });
  test('bodies keep CRLF and blank lines; an unterminated heredoc is an error at its instruction', () => {
    const r = only<RunInstruction>('FROM a\r\nRUN <<EOF\r\nline 1\r\n\r\nEOF\r\n');
    assert.equal(r.command.form === 'shell' && r.command.heredocs[0]!.content, 'line 1\r\n\r\n');
    parseError('FROM a\nRUN <<EOF\nno end', /unterminated heredoc/, 2);
    parseError('FROM a\nRUN <<EOF\nEOF \n', /unterminated heredoc/, 2);
  });
  test('ONBUILD with a heredoc keeps the body in its expression', () => {
    const df = parse('FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nRUN after');
    const o = df.instructions[1] as OnbuildInstruction;
    assert.equal(o.expression, 'RUN <<EOF\necho hi\nEOF');
    assert.equal(
      o.trigger.kind === 'RUN' && o.trigger.command.form === 'shell' && o.trigger.command.heredocs[0]!.content,
      'echo hi\n',
    );
    assert.equal(df.instructions[2]!.kind, 'RUN');
    const again = parse(o.expression).instructions[0] as RunInstruction;
    assert.deepEqual(
      again.command,
      o.trigger.kind === 'RUN' ? o.trigger.command : undefined,
      'the expression parses back to the trigger',
    );
  });
});
