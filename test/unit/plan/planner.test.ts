// The planner: ARG/ENV scoping, the stage graph, errors, fixtures (seeds and hand-made ones).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { createPlan, type BuildPlan, type PlanOptions } from '../../../src/plan/index.js';
import { KilnError } from '../../../src/util/errors.js';
import { fixturesDir, workloadsDir } from '../../helpers/paths.js';

const plan = (t: string, o: PlanOptions = {}) => createPlan(parseDockerfile(t, { file: 'Dockerfile' }), o);
/** The expanded text of instruction i of stage s. */
const ex = (p: BuildPlan, s: number, i: number) => p.stages[s]!.instructions[i]!.expanded;
function planError(t: string, re: RegExp, o: PlanOptions = {}, line?: number): KilnError {
  let caught: unknown;
  try {
    plan(t, o);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KilnError, `expected KilnError, got ${String(caught)}`);
  assert.equal(caught.code, 'PLAN');
  assert.match(caught.message, re);
  if (line !== undefined) {
    assert.equal(caught.place.line, line);
    assert.equal(caught.place.source, t.split('\n')[line - 1], 'the offending line is attached');
  }
  return caught;
}
const fixture = (...p: string[]) => readFileSync(path.join(fixturesDir, ...p), 'utf8');

describe('ARG and ENV scoping', () => {
  test('global ARGs are usable in FROM, not inside a stage until redeclared', () => {
    const p = plan('ARG V=3.11\nARG IMG=python:${V}\nFROM $IMG\nWORKDIR /$V\nARG V\nWORKDIR /$V');
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'python:3.11' });
    // Not redeclared: not the global; it may still come from the base image's ENV, shown as written.
    assert.equal(ex(p, 0, 0), 'WORKDIR /$V');
    assert.equal(ex(p, 0, 2), 'WORKDIR /3.11');
    assert.deepEqual(p.globalArgs, [
      { name: 'V', value: '3.11' },
      { name: 'IMG', value: 'python:3.11' },
    ]);
  });
  test('--build-arg overrides global and stage defaults; an overridden default is not expanded', () => {
    const p = plan('ARG V=1\nFROM a:$V\nARG V\nARG W=x\nENV OUT=$V-$W', { buildArgs: { V: '2', W: 'y' } });
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'a:2' });
    assert.equal(ex(p, 0, 2), 'ENV OUT=2-y');
    assert.equal(
      ex(plan('FROM a\nARG X="${NEED:?set it}"\nWORKDIR /$X', { buildArgs: { X: 'v' } }), 0, 1),
      'WORKDIR /v',
    );
    planError('FROM scratch\nARG X="${NEED:?set it}"', /NEED: set it/, {}, 2);
  });
  test('ENV and ARG: the one set last wins (BuildKit), ENV after ARG as the reference shows', () => {
    const p = plan(
      'FROM scratch\nARG X=arg\nWORKDIR /$X\nENV X=env\nWORKDIR /$X\nARG X=again\nWORKDIR /$X\nARG X\nWORKDIR /$X',
    );
    assert.deepEqual(
      [ex(p, 0, 1), ex(p, 0, 3), ex(p, 0, 5), ex(p, 0, 7)],
      ['WORKDIR /arg', 'WORKDIR /env', 'WORKDIR /again', 'WORKDIR /again'],
    );
    const ref = plan(
      'FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\nWORKDIR /$CONT_IMG_VER',
      { buildArgs: { CONT_IMG_VER: 'v2.0.1' } },
    );
    assert.equal(ex(ref, 0, 3), 'WORKDIR /v1.0.0', 'the Dockerfile reference example: ENV overrides the ARG');
    const dflt = plan(
      'FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nWORKDIR /$CONT_IMG_VER',
      { buildArgs: { CONT_IMG_VER: 'v2.0.1' } },
    );
    assert.equal(ex(dflt, 0, 2), 'WORKDIR /v2.0.1');
  });
  test('ENV values on one line are expanded before any is set; keys are expanded too', () => {
    assert.equal(ex(plan('FROM a\nENV A=1\nENV A=2 B=$A'), 0, 1), 'ENV A=2 B=1');
    assert.equal(ex(plan('FROM scratch\nARG K=name\nENV $K=v'), 0, 1), 'ENV name=v');
  });
  test('a stage based on a stage inherits its ENV and its ARGs', () => {
    const p = plan('FROM a AS one\nENV E=e\nARG A=a\nFROM one\nWORKDIR /$E/$A/$Z');
    assert.equal(ex(p, 1, 0), 'WORKDIR /e/a/$Z');
    const other = plan('FROM a AS one\nARG A=a\nFROM b\nWORKDIR /$A');
    assert.equal(ex(other, 1, 0), 'WORKDIR /$A', "a stage based on an image does not see another stage's ARGs");
    const scratch = plan('ARG V=1\nFROM scratch AS one\nENV E=e\nFROM one\nWORKDIR /$E/$V');
    assert.equal(ex(scratch, 1, 0), 'WORKDIR /e/', 'from scratch every ENV is known: unknown names are empty');
  });
  test('names from the base image stay as written, modifiers included', () => {
    const p = plan('FROM python\nWORKDIR $HOME/app\nENV PATH=/venv/bin:$PATH\nUSER ${APP_USER:-app}');
    assert.deepEqual(
      [ex(p, 0, 0), ex(p, 0, 1), ex(p, 0, 2)],
      ['WORKDIR $HOME/app', 'ENV PATH=/venv/bin:$PATH', 'USER ${APP_USER:-app}'],
    );
  });
  test('global ARG TARGETARCH (BuildKit dockerfile2llb: defaultArgs, buildMetaArgs, dispatchArg)', () => {
    const o = { platform: 'linux/arm64', buildPlatform: 'linux/amd64' };
    const x = { ...o, buildArgs: { TARGETARCH: 'x' } };
    const base = (p: BuildPlan) => p.stages[0]!.base;
    // Declared before FROM without a value: the automatic value, in FROM and once redeclared.
    let p = plan('ARG TARGETARCH\nFROM image-${TARGETARCH}\nARG TARGETARCH\nWORKDIR /$TARGETARCH', o);
    assert.deepEqual(base(p), { kind: 'image', ref: 'image-arm64' });
    assert.deepEqual([ex(p, 0, 0), ex(p, 0, 1)], ['ARG TARGETARCH=arm64', 'WORKDIR /arm64']);
    assert.deepEqual(p.globalArgs, [{ name: 'TARGETARCH' }]);
    // A default replaces the automatic value, in FROM and in the stage that redeclares it.
    p = plan('ARG TARGETARCH=foo\nFROM image-${TARGETARCH}\nARG TARGETARCH\nWORKDIR /$TARGETARCH', o);
    assert.deepEqual(base(p), { kind: 'image', ref: 'image-foo' });
    assert.equal(ex(p, 0, 0), 'ARG TARGETARCH=foo');
    // --build-arg TARGETARCH=x wins everywhere: declared or not (BuildKit's defaultArgs take the
    // build args as overrides), in FROM and in a stage; the stage's platform stays the target's.
    for (const df of [
      'FROM image-${TARGETARCH}\nARG TARGETARCH\nWORKDIR /$TARGETARCH',
      'ARG TARGETARCH\nFROM image-${TARGETARCH}\nARG TARGETARCH\nWORKDIR /$TARGETARCH',
      'ARG TARGETARCH=foo\nFROM image-${TARGETARCH}\nARG TARGETARCH\nWORKDIR /$TARGETARCH',
    ]) {
      p = plan(df, x);
      assert.deepEqual(base(p), { kind: 'image', ref: 'image-x' }, df);
      assert.equal(ex(p, 0, 1), 'WORKDIR /x', df);
      assert.equal(p.stages[0]!.runsOn, 'linux/arm64', df);
      assert.deepEqual(p.unusedBuildArgs, []);
    }
    // Not redeclared in the stage: not visible there (only FROM sees the global scope).
    p = plan('ARG TARGETARCH\nFROM image-${TARGETARCH}\nWORKDIR /$TARGETARCH', o);
    assert.equal(ex(p, 0, 0), 'WORKDIR /$TARGETARCH');
  });
  test('predefined platform ARGs: in FROM without declaration, in a stage once declared', () => {
    const p = plan('FROM --platform=$BUILDPLATFORM img:$TARGETARCH\nARG TARGETOS\nWORKDIR /$TARGETOS/$TARGETARCH', {
      platform: 'linux/arm64',
    });
    assert.equal(p.stages[0]!.platform, 'linux/amd64');
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'img:arm64' });
    assert.equal(ex(p, 0, 1), 'WORKDIR /linux/$TARGETARCH');
    const g = plan('ARG TARGETARCH\nFROM img:$TARGETARCH\nARG TARGETARCH\nWORKDIR /$TARGETARCH', {
      platform: 'linux/arm/v7',
    });
    assert.deepEqual(
      g.stages[0]!.base,
      { kind: 'image', ref: 'img:arm' },
      'a global ARG TARGETARCH without a value keeps the automatic one',
    );
    assert.equal(ex(g, 0, 1), 'WORKDIR /arm');
    assert.equal(
      ex(plan('FROM scratch\nARG TARGETVARIANT\nWORKDIR /x$TARGETVARIANT', { platform: 'linux/arm/v7' }), 0, 1),
      'WORKDIR /xv7',
    );
  });
  test("each stage's platform (runsOn): FROM --platform, else its base stage's, else the target; normalized", () => {
    const p = plan(
      [
        'FROM --platform=$BUILDPLATFORM gcc AS build',
        'FROM build AS tests',
        'FROM debian AS final',
        'FROM --platform=linux/aarch64 debian AS pinned',
        'FROM pinned AS onpinned',
        'FROM --platform=linux/x86_64 scratch AS x',
      ].join('\n'),
      { platform: 'linux/arm64', buildPlatform: 'linux/amd64' },
    );
    assert.deepEqual(
      p.stages.map((s) => s.runsOn),
      ['linux/amd64', 'linux/amd64', 'linux/arm64', 'linux/arm64', 'linux/arm64', 'linux/amd64'],
    );
    assert.equal(p.stages[3]!.platform, 'linux/arm64', 'aarch64 is arm64 (containerd normalizes it)');
    assert.deepEqual(p.platform, { target: 'linux/arm64', build: 'linux/amd64' });
  });
  test('automatic platform ARGs as BuildKit gives them (aliases normalized, arm64 has no variant, arm is v7)', () => {
    const values = (platform: string) => {
      const p = plan(
        'FROM scratch\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\n' +
          'WORKDIR /$TARGETPLATFORM,$TARGETOS,$TARGETARCH,$TARGETVARIANT,$BUILDPLATFORM,$BUILDOS,$BUILDARCH,$BUILDVARIANT',
        { platform, buildPlatform: 'linux/amd64' },
      );
      return ex(p, 0, 1);
    };
    assert.equal(values('linux/arm64'), 'WORKDIR /linux/arm64,linux,arm64,,linux/amd64,linux,amd64,');
    assert.equal(values('linux/aarch64'), 'WORKDIR /linux/arm64,linux,arm64,,linux/amd64,linux,amd64,');
    assert.equal(values('linux/arm64/v8'), 'WORKDIR /linux/arm64,linux,arm64,,linux/amd64,linux,amd64,');
    assert.equal(values('linux/arm'), 'WORKDIR /linux/arm/v7,linux,arm,v7,linux/amd64,linux,amd64,');
    assert.equal(values('linux/x86_64'), 'WORKDIR /linux/amd64,linux,amd64,,linux/amd64,linux,amd64,');
  });
  test('unused build args are reported; predefined ones (proxies, platform, BUILDKIT_*) are not', () => {
    const p = plan('ARG USED\nFROM a\nARG INSTAGE', {
      buildArgs: {
        USED: '1',
        INSTAGE: '2',
        UNUSED: '3',
        HTTP_PROXY: 'x',
        https_proxy: 'y',
        TARGETARCH: 'amd64',
        BUILDKIT_INLINE_CACHE: '1',
        SOURCE_DATE_EPOCH: '0',
      },
    });
    assert.deepEqual(p.unusedBuildArgs, ['UNUSED']);
    assert.ok(p.warnings.some((w) => /UNUSED/.test(w.message)));
    assert.deepEqual(
      plan('FROM a AS x\nARG SKIPPED\nFROM b', { buildArgs: { SKIPPED: '1' } }).unusedBuildArgs,
      [],
      'declared in a skipped stage is still declared',
    );
  });
});

describe('expanded instructions', () => {
  test('only the words BuildKit expands', () => {
    const p = plan(
      'FROM scratch\nARG V=1 P="80 443" S=TERM\nRUN echo $V\nCMD echo $V\nEXPOSE $P 9000-9001/udp\nLABEL a=$V "b c"="d $V"\nVOLUME /v$V\nUSER u$V\nSTOPSIGNAL SIG$S\nCOPY --chown=$V:$V --chmod=07$V$V a$V /d$V/',
    );
    assert.equal(ex(p, 0, 1), 'RUN echo $V');
    assert.equal(ex(p, 0, 2), 'CMD echo $V');
    assert.equal(ex(p, 0, 3), 'EXPOSE 80 443 9000-9001/udp');
    assert.equal(ex(p, 0, 4), 'LABEL a=1 "b c"="d 1"');
    assert.equal(ex(p, 0, 5), 'VOLUME ["/v1"]');
    assert.equal(ex(p, 0, 6), 'USER u1');
    assert.equal(ex(p, 0, 7), 'STOPSIGNAL SIGTERM');
    assert.equal(ex(p, 0, 8), 'COPY --chown=1:1 --chmod=0711 a1 /d1/');
  });
  test('RUN mounts and COPY heredocs are expanded; quoted heredocs and RUN bodies are not', () => {
    const p = plan(
      "FROM scratch\nARG ID=pip\nRUN --mount=type=cache,id=$ID,target=/root/.cache/$ID pip install x\nCOPY <<A <<'B' /d/\n$ID\nA\n$ID\nB\nRUN <<EOF\necho $ID\nEOF",
    );
    assert.equal(ex(p, 0, 1), 'RUN --mount=type=cache,target=/root/.cache/pip,id=pip pip install x');
    assert.equal(ex(p, 0, 2), "COPY <<A <<'B' /d/\npip\nA\n$ID\nB");
    assert.equal(ex(p, 0, 3), 'RUN <<EOF\necho $ID\nEOF');
  });
  test('expansion errors point at the instruction', () => {
    planError('FROM scratch\nWORKDIR ${X:?needs X}', /X: needs X/, {}, 2);
    planError('FROM a\nENV A=${B', /missing '}'/, {}, 2);
    assert.equal(
      ex(plan('FROM a\nWORKDIR ${X:?needs X}'), 0, 0),
      'WORKDIR ${X:?needs X}',
      'X may come from the base image',
    );
    planError(
      'FROM scratch\nARG U=me\nRUN --mount=type=cache,target=/c,uid=$U true',
      /invalid value me for uid/,
      {},
      3,
    );
  });
  test('values BuildKit checks are checked when known', () => {
    planError('FROM scratch\nEXPOSE 80/xtp', /invalid proto: xtp/, {}, 2);
    planError('FROM scratch\nARG P=99999\nEXPOSE $P', /invalid containerPort: 99999/, {}, 3);
    planError('FROM scratch\nEXPOSE 90-80', /invalid containerPort/, {}, 2);
    planError('FROM scratch\nSTOPSIGNAL SIGNOPE', /invalid signal: SIGNOPE/, {}, 2);
    planError('FROM scratch\nARG E\nVOLUME $E', /VOLUME specified can not be an empty string/, {}, 3);
    for (const ok of ['SIGKILL', 'term', '9', 'SIGRTMIN+3']) plan(`FROM scratch\nSTOPSIGNAL ${ok}`);
    plan('FROM python\nEXPOSE $PORT', {}); // unknown until the base image's ENV is known
    planError('ARG P=linux//x\nFROM --platform=$P a', /invalid platform/, {}, 2);
    planError('ARG P\nFROM --platform=$P a', /empty platform value/, {}, 2);
    planError('FROM UPPER/Case:tag', /invalid base image reference/, {}, 1);
    planError(
      'FROM scratch\nADD --checksum=sha256:abc local.tgz /x',
      /--checksum can't be used with the local source "local.tgz"/,
      {},
      2,
    );
    plan('FROM scratch\nADD --checksum=sha256:abc https://example.com/a.tgz /x');
  });
});

describe('stage graph', () => {
  test('stages by name (case-insensitive) and index; bases and dependencies; external images', () => {
    const p = plan(
      'FROM a AS Build\nRUN x\nFROM b AS other\nFROM build AS t\nCOPY --from=OTHER /x /x\nCOPY --from=0 /y /y\nCOPY --from=nginx:1 /z /z\nRUN --mount=type=bind,from=other,target=/m --mount=type=cache,from=busybox,target=/c true',
    );
    const t = p.stages[2]!;
    assert.deepEqual(t.base, { kind: 'stage', index: 0 });
    assert.deepEqual(t.dependsOn, [0, 1]);
    assert.deepEqual(t.images, ['nginx:1', 'busybox']);
    assert.deepEqual(
      t.instructions.map((i) => i.sources),
      [
        [{ kind: 'stage', index: 1 }],
        [{ kind: 'stage', index: 0 }],
        [{ kind: 'image', ref: 'nginx:1' }],
        [
          { kind: 'stage', index: 1 },
          { kind: 'image', ref: 'busybox' },
        ],
      ],
    );
    assert.deepEqual(p.order, [0, 1, 2]);
    assert.deepEqual(p.waves, [[0, 1], [2]]);
  });
  test('a bare image name close to a stage name gets a warning (a misspelt stage?)', () => {
    const p = plan('FROM golang AS builder\nFROM alpine\nCOPY --from=biulder /app /app\nCOPY --from=nginx /x /x');
    assert.deepEqual(p.stages[1]!.images, ['biulder', 'nginx']);
    assert.deepEqual(
      p.warnings.map((w) => [w.rule, w.line]),
      [['StageNameTypo', 3]],
    );
    assert.match(p.warnings[0]!.message, /did you mean stage "builder"/);
  });
  test("FROM a stage's own name is an image (FROM nginx AS nginx), as BuildKit", () => {
    const p = plan('FROM nginx AS nginx\nFROM nginx AS two');
    assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'nginx' });
    assert.deepEqual(p.stages[1]!.base, { kind: 'stage', index: 0 });
  });
  test('--target keeps only what the target needs, the rest is skipped', () => {
    const p = plan('FROM a AS one\nFROM b AS two\nFROM one AS three\nFROM c AS four', { target: 'THREE' });
    assert.equal(p.target, 2);
    assert.deepEqual(
      p.stages.map((s) => s.needed),
      [true, false, true, false],
    );
    assert.deepEqual(p.order, [0, 2]);
    assert.deepEqual(p.waves, [[0], [2]]);
  });
  test('independent stages share a wave (fixture parallel.Dockerfile)', () => {
    const p = createPlan(
      parseDockerfile(fixture('dockerfiles', 'parallel.Dockerfile'), { file: 'parallel.Dockerfile' }),
    );
    const names = (w: number[]) => w.map((n) => p.stages[n]!.name);
    assert.deepEqual(p.waves.map(names), [['assets', 'deps'], ['app'], ['final']]);
    assert.equal(p.stages.find((s) => s.name === 'unused')!.needed, false);
    assert.deepEqual(p.stages.find((s) => s.name === 'final')!.dependsOn, [1, 3]);
  });
  test('stage-scoped ARG in COPY --from and --mount from= is resolved at plan time (beyond BuildKit)', () => {
    const df =
      'FROM a AS clear-code\nFROM a AS obfuscated-code\nFROM a\nARG SRC=obfuscated\nCOPY --from=${SRC}-code /app /app';
    assert.deepEqual(plan(df).stages[2]!.dependsOn, [1]);
    assert.deepEqual(plan(df, { buildArgs: { SRC: 'clear' } }).stages[2]!.dependsOn, [0]);
    assert.deepEqual(
      plan(df, { buildArgs: { SRC: 'clear' } }).stages.map((s) => s.needed),
      [true, false, true],
    );
    const g = plan('ARG S=one\nFROM a AS one\nFROM b\nCOPY --from=$S /x /x');
    assert.deepEqual(g.stages[1]!.dependsOn, [0], 'a global ARG works in --from without redeclaring it');
    const m = plan('FROM a AS deps\nFROM b\nENV FROMSTAGE=deps\nRUN --mount=from=$FROMSTAGE,target=/d true');
    assert.deepEqual(m.stages[1]!.dependsOn, [0]);
    const f = fixture('dockerfiles', 'copy-from-arg.Dockerfile');
    const clear = createPlan(parseDockerfile(f), { buildArgs: { SRC_FORMAT: 'clear' } });
    assert.deepEqual(
      clear.stages.map((s) => [s.name, s.needed]),
      [
        ['base', true],
        ['clear-code', true],
        ['obfuscated-code', false],
        ['final', true],
      ],
    );
  });
  test('errors: unknown target, self reference, later stage, duplicates, bad index, empty --from', () => {
    const t = planError('FROM a AS x\nFROM b AS y', /target stage "nope" could not be found/, { target: 'nope' });
    assert.match(t.hint ?? '', /stages: x, y/);
    planError('FROM a AS x\nFROM x AS X', /duplicate stage name "X"/, {}, 2);
    planError(
      'FROM a AS x\nFROM b AS y\nCOPY --from=y /a /a',
      /circular dependency: --from=y refers to its own stage "y"/,
      {},
      3,
    );
    planError('FROM a\nCOPY --from=0 /a /b', /refers to its own stage 0/, {}, 2);
    planError('FROM later AS x\nFROM a AS later', /stage "later" is defined later/, {}, 1);
    planError('FROM a AS x\nCOPY --from=y /a /a\nFROM b AS y', /stage "y" is defined later/, {}, 2);
    planError('FROM a\nCOPY --from=1 /a /b\nFROM b', /stage 1 is defined later/, {}, 2);
    planError('FROM a\nRUN --mount=from=x,target=/m true\nFROM b AS x', /stage "x" is defined later/, {}, 2);
    planError('FROM a\nFROM b\nCOPY --from=7 /a /b', /invalid stage index 7/, {}, 3);
    planError('FROM a\nARG S\nCOPY --from=$S /a /b', /expands to an empty value/, {}, 3);
    planError('FROM a\nCOPY --from=Bad:Ref /a /b', /neither a stage nor a valid image reference/, {}, 2);
  });
  test('errors: empty Dockerfile, no FROM first, empty image name', () => {
    planError('', /empty/);
    planError('# just a comment\n\n', /empty/);
    planError('RUN x\nFROM a', /RUN before the first FROM/, {}, 1);
    planError('ARG A\n', /no FROM/);
    planError('ARG IMG\nFROM $IMG', /base name \(\$IMG\) should not be blank/, {}, 2);
  });
  test('ONBUILD triggers of a base stage are planned in the stages built on it', () => {
    const p = createPlan(parseDockerfile(fixture('dockerfiles', 'onbuild.Dockerfile')));
    const app = p.stages.find((s) => s.name === 'app')!;
    assert.deepEqual(
      app.onbuild?.map((i) => i.expanded),
      ['COPY --from=tools /tools.txt /opt/', 'ARG FLAVOR=plain'],
    );
    assert.deepEqual(app.dependsOn, [0, 1]);
    assert.deepEqual(p.waves, [[0, 1], [2]]);
    assert.equal(
      p.stages.find((s) => s.name === 'template')!.onbuild,
      undefined,
      'a stage does not run its own triggers',
    );
  });
  test('the plan is JSON and deterministic', () => {
    const t = fixture('dockerfiles', 'kitchen-sink.Dockerfile');
    const a = JSON.stringify(createPlan(parseDockerfile(t)));
    assert.equal(a, JSON.stringify(createPlan(parseDockerfile(t))));
    assert.deepEqual(JSON.parse(a).schemaVersion, 1);
  });
});

describe('fixtures', () => {
  test('kitchen-sink: every instruction and flag plans', () => {
    const p = createPlan(parseDockerfile(fixture('dockerfiles', 'kitchen-sink.Dockerfile')), {
      platform: 'linux/arm64',
    });
    const build = p.stages[0]!;
    assert.deepEqual(build.base, { kind: 'image', ref: 'debian:bookworm-slim' });
    assert.equal(build.platform, 'linux/amd64');
    assert.equal(build.instructions[2]!.expanded, 'ENV GOOS=linux GOARCH=arm64 OUT=/out/app-1.2.3');
    assert.match(
      build.instructions[4]!.expanded,
      /^RUN --mount=type=cache,target=\/var\/cache\/apt,id=apt-arm64,sharing=locked --mount=type=secret,id=token,env=TOKEN --mount=type=ssh --network=none apt-get/,
    );
    assert.equal(p.stages[1]!.instructions.at(-1)!.expanded, 'CMD ["--serve"]');
    assert.deepEqual(p.stages[1]!.dependsOn, [0]);
  });
  test('windows: the backtick escape', () => {
    const p = createPlan(parseDockerfile(fixture('dockerfiles', 'windows.Dockerfile')));
    assert.deepEqual(
      p.stages[0]!.instructions.map((i) => i.expanded),
      [
        'ENV APP_HOME=C:\\app',
        'WORKDIR C:\\app\\bin',
        'COPY testfile.txt c:\\ d:\\dest\\',
        'RUN dir c:\\ &&     echo done',
      ],
    );
  });
});

describe('the seeds plan', () => {
  const seeds = readdirSync(path.join(fixturesDir, 'seeds')).filter((f) => f.endsWith('.Dockerfile'));
  test('the four seeds are all there', () => {
    assert.deepEqual([...new Set(seeds.map((f) => f.slice(0, 3)))], ['000', '001', '002', '003']);
  });
  for (const f of seeds) {
    test(f, () => {
      const p = createPlan(parseDockerfile(fixture('seeds', f), { file: f }));
      assert.ok(p.stages.length >= 1);
      assert.ok(p.stages[p.target]!.needed);
      assert.deepEqual(
        p.warnings.filter((w) => w.rule !== 'LegacyKeyValueFormat'),
        [],
      );
    });
  }
  test('seed 000: SRC_FORMAT=clear keeps clear-code and skips obfuscated-code', () => {
    const text = fixture('seeds', '000-obfuscated.Dockerfile');
    const byName = (p: BuildPlan, n: string) => p.stages.find((s) => s.name === n)!;
    const clear = plan(text, { buildArgs: { SRC_FORMAT: 'clear' } });
    assert.equal(byName(clear, 'clear-code').needed, true);
    assert.equal(byName(clear, 'obfuscated-code').needed, false);
    assert.deepEqual(byName(clear, 'copy-src').base, { kind: 'stage', index: 1 });
    const obf = plan(text);
    assert.equal(byName(obf, 'clear-code').needed, false);
    assert.equal(byName(obf, 'obfuscated-code').needed, true);
  });
  test('seed 002 (wheels): the global WHEEL_DIST redeclared in both stages', () => {
    const p = plan(fixture('seeds', '002-wheels.Dockerfile'));
    assert.equal(p.stages[1]!.instructions[1]!.expanded, 'COPY --from=builder /tmp/wheels /tmp/wheels');
    assert.equal(p.stages[1]!.instructions[2]!.expanded, 'WORKDIR /tmp/wheels');
  });
  const workloads = workloadsDir;
  test('the bench workloads plan (bench/workloads)', () => {
    for (const w of readdirSafe(workloads)) {
      const text = readFileSync(path.join(workloads, w, 'Dockerfile'), 'utf8');
      const p = plan(text, w === 'py-obfuscate' ? { buildArgs: { SRC_FORMAT: 'clear' } } : {});
      assert.ok(p.stages[p.target]!.needed, w);
      if (w === 'py-obfuscate') {
        assert.equal(p.stages.find((s) => s.name === 'obfuscated-code')!.needed, false);
        assert.equal(p.stages.find((s) => s.name === 'clear-code')!.needed, true);
      }
    }
  });
});

function readdirSafe(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

describe('named build contexts (--build-context)', () => {
  test('a name replaces a stage of that name and an image named so (familiar form, without :latest), in FROM, --from and from=', () => {
    const text = [
      'FROM debian AS deps',
      'RUN exit 1',
      'FROM docker.io/library/alpine:latest AS app',
      'COPY --from=deps /a /a',
      'RUN --mount=from=tools,target=/t true',
      'FROM deps',
      '',
    ].join('\n');
    const p = plan(text, { namedContexts: ['deps', 'alpine', 'tools'] });
    assert.deepEqual(p.stages[1]!.base, { kind: 'image', ref: 'docker.io/library/alpine:latest' });
    assert.deepEqual(p.stages[1]!.instructions[0]!.sources, [{ kind: 'image', ref: 'deps' }]);
    assert.deepEqual(p.stages[1]!.instructions[1]!.sources, [{ kind: 'image', ref: 'tools' }]);
    assert.deepEqual(p.stages[2]!.base, { kind: 'image', ref: 'deps' });
    assert.equal(p.stages[0]!.needed, false, 'the replaced stage is not built');
    const without = plan(text);
    assert.deepEqual(without.stages[2]!.base, { kind: 'stage', index: 0 });
  });
});
