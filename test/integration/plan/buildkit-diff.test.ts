// Differential test: the frontend (parser, expansion, ARG/ENV scoping, stage inheritance) against
// a real Docker engine's BuildKit. Dockerfiles FROM scratch, so nothing is pulled; the image config
// docker writes (Env, Labels, WorkingDir, User, ExposedPorts, Volumes, StopSignal) must equal what
// kiln's plan + StageScope + expandInstruction compute (a scratch stage starts with WorkingDir "/",
// as BuildKit's empty image). Debian's dockerd 20.10 embeds an older
// Dockerfile frontend: only syntax it knows is used here (no heredocs, no ${v-w}, no patterns).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { expandInstruction } from '../../../src/dockerfile/expand-instruction.js';
import { parsePortSpecs } from '../../../src/dockerfile/values.js';
import { createPlan, StageScope, platformArgs } from '../../../src/plan/index.js';
import { dockerdUnavailable, startDockerd, type Dockerd } from '../../helpers/dockerd.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(dockerdUnavailable());
let d: Dockerd | undefined;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-bkdiff-'));
before(async () => {
  if (!skip) d = await startDockerd();
});
after(async () => {
  await d?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

interface Config {
  Env: string[];
  Labels: Record<string, string>;
  WorkingDir: string;
  User: string;
  ExposedPorts: string[];
  Volumes: string[];
  StopSignal: string;
}

/** What BuildKit's image config should be, computed with kiln's frontend (as the engine does). */
function kilnConfig(text: string, buildArgs: Record<string, string>): Config {
  const df = parseDockerfile(text);
  const plan = createPlan(df, { buildArgs });
  const globals = new Map(plan.globalArgs.map((a) => [a.name, a.value]));
  const automatic = platformArgs(plan.platform.target, plan.platform.build);
  const args = new Map(Object.entries(buildArgs));
  const scopes: StageScope[] = [];
  const configs: Config[] = [];
  const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const n of plan.order) {
    const s = plan.stages[n]!;
    assert.notEqual(s.base.kind, 'image', 'FROM scratch or a stage only');
    const scope =
      s.base.kind === 'stage'
        ? scopes[s.base.index]!.child()
        : new StageScope(globals, args, automatic, [[defaultPath.split('=')[0]!, defaultPath.slice(5)]]);
    const c: Config =
      s.base.kind === 'stage'
        ? structuredClone(configs[s.base.index]!)
        : { Env: [], Labels: {}, WorkingDir: '/', User: '', ExposedPorts: [], Volumes: [], StopSignal: '' };
    for (const pi of s.instructions) {
      const ins = pi.instruction;
      if (ins.kind === 'ARG') {
        for (const a of ins.args)
          scope.declareArg(
            a.name,
            a.default === undefined
              ? undefined
              : () =>
                  expandInstruction({ ...ins, args: [a] }, scope.lookup, { escape: df.directives.escape }).args[0]!
                    .default,
          );
        continue;
      }
      const x = expandInstruction(ins, scope.lookup, { escape: df.directives.escape });
      switch (x.kind) {
        case 'ENV':
          for (const p of x.pairs) scope.setEnv(p.key, p.value);
          break;
        case 'LABEL':
          for (const p of x.pairs) c.Labels[p.key] = p.value;
          break;
        case 'WORKDIR':
          c.WorkingDir = path.posix.resolve(c.WorkingDir || '/', x.path);
          break;
        case 'USER':
          c.User = x.user;
          break;
        case 'EXPOSE':
          c.ExposedPorts.push(...parsePortSpecs(x.ports));
          break;
        case 'VOLUME':
          c.Volumes.push(...x.paths);
          break;
        case 'STOPSIGNAL':
          c.StopSignal = x.signal;
          break;
        default:
          throw new Error(`not in this test: ${x.kind}`);
      }
    }
    c.Env = scope.envEntries().map(([k, v]) => `${k}=${v}`);
    scopes[n] = scope;
    configs[n] = c;
  }
  const t = configs[plan.target]!;
  return { ...t, ExposedPorts: [...new Set(t.ExposedPorts)].sort(), Volumes: [...new Set(t.Volumes)].sort() };
}

function dockerConfig(name: string, text: string, buildArgs: Record<string, string>): Config {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'Dockerfile'), text);
  const b = d!.docker([
    'build',
    '-q',
    ...Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
    '-t',
    `kiln-diff:${name}`,
    dir,
  ]);
  assert.equal(b.code, 0, b.stderr);
  const raw = JSON.parse(
    d!.docker(['image', 'inspect', '--format', '{{json .Config}}', `kiln-diff:${name}`]).stdout,
  ) as Record<string, unknown>;
  return {
    Env: (raw.Env as string[] | null) ?? [],
    Labels: (raw.Labels as Record<string, string> | null) ?? {},
    WorkingDir: (raw.WorkingDir as string) ?? '',
    User: (raw.User as string) ?? '',
    ExposedPorts: Object.keys((raw.ExposedPorts as object | null) ?? {}).sort(),
    Volumes: Object.keys((raw.Volumes as object | null) ?? {}).sort(),
    StopSignal: (raw.StopSignal as string) ?? '',
  };
}

const same = (name: string, text: string, buildArgs: Record<string, string> = {}) => {
  const want = dockerConfig(name, text, buildArgs);
  const got = kilnConfig(text, buildArgs);
  assert.deepEqual({ ...got, Env: [...got.Env].sort() }, { ...want, Env: [...want.Env].sort() });
};

test('ARG/ENV scoping and stage inheritance match BuildKit', { skip }, () => {
  same(
    'scoping',
    [
      'ARG BASE=scratch',
      'ARG GV=global',
      'FROM ${BASE} AS one',
      'ARG GV',
      'ARG A1=a1',
      'ENV E1=$GV-$A1 PATH=/bin',
      'LABEL l1="$A1 x" "l 2"=${A1:+yes}',
      'WORKDIR /w/$A1',
      'WORKDIR sub',
      'FROM one AS two',
      'ENV E2=$A1/$E1',
      'ARG A1=override',
      'ENV E3=$A1 X=1',
      'ARG X=2',
      'ENV E4=$X',
      'ARG X',
      'ENV E5=$X',
      'USER u$X:g',
      'EXPOSE 80 8000-8002/udp $X',
      'VOLUME /v/$X /w',
      'VOLUME ["/json $X"]',
      'STOPSIGNAL SIGINT',
      'FROM scratch AS unrelated',
      'ENV NOT=built',
      'FROM two',
      'ENV LAST=$GV',
      '',
    ].join('\n'),
    { GV: 'cli' },
  );
});

test('word expansion, quotes and escapes match BuildKit', { skip }, () => {
  const words = [
    '$A',
    '${A}',
    'x${A}y',
    '$NOPE',
    'a$',
    '$-x',
    '$1abc',
    '${A:-dflt}',
    '${NOPE:-dflt}',
    '${E:-dflt}',
    '${A:+alt}',
    '${E:+alt}',
    "'$A'",
    '"$A w"',
    '"a\\"b"',
    '"a\\$A"',
    '"a\\nb"',
    '\\$A',
    'a\\ b',
    '"it\'s"',
    '\'say "hi"\'',
    '${NOPE:-"q w"}',
    '${NOPE:-${A}}',
    '"${NOPE:-x}"',
    'C:\\\\path',
    '$$',
    '"\\\\"',
    "''",
    '""',
  ];
  const text = ['FROM scratch', 'ARG A=hello', 'ARG E=', ...words.map((w, i) => `ENV W${i}=${w}`), ''].join('\n');
  same('words', text);
});

test('the backtick escape matches BuildKit', { skip }, () => {
  same(
    'backtick',
    [
      '# escape=`',
      'FROM scratch',
      'ARG A=x',
      'ENV P=C:\\dir\\$A Q=`$A R="a`"b" `',
      '    S=done',
      'WORKDIR C:\\w',
      '',
    ].join('\n'),
  );
});

test('continuations, comments, legacy ENV/LABEL forms and multi-ARG lines match BuildKit', { skip }, () => {
  same(
    'syntax',
    [
      '# syntax-like comment, not a directive: ignored',
      'FROM scratch',
      'ARG A=1 B="two words" C',
      'ENV LEGACY value with  spaces',
      'LABEL legacy label value',
      'ENV K1=$A \\',
      '    # a comment inside the continuation',
      '    K2="$B" \\',
      '',
      '    K3=${C:-none}',
      '   workdir   rel',
      'WORKDIR ../abs/./x',
      'EXPOSE 53/UDP 8080/tcp',
      '',
    ].join('\n'),
  );
});

test(
  "the automatic platform ARGs match BuildKit's (global scope, stage scope once declared, FROM --platform)",
  { skip },
  () => {
    const all = [
      'TARGETPLATFORM',
      'TARGETOS',
      'TARGETARCH',
      'TARGETVARIANT',
      'BUILDPLATFORM',
      'BUILDOS',
      'BUILDARCH',
      'BUILDVARIANT',
    ];
    const labels = (prefix: string) => all.map((a) => `${prefix}${a.toLowerCase()}="$${a}"`).join(' ');
    same(
      'platform-args',
      [
        'ARG BUILDOS=global-default',
        'FROM --platform=$BUILDPLATFORM scratch AS builder',
        `LABEL ${labels('undeclared_')}`,
        `ARG ${all.join(' ')}`,
        `LABEL ${labels('declared_')}`,
        'FROM builder',
        'ARG BUILDPLATFORM=overridden',
        'LABEL child="$TARGETARCH-$BUILDPLATFORM"',
        '',
      ].join('\n'),
    );
  },
);
