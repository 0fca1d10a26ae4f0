/**
 * The pure config/history dispatcher (engine/config-step.ts) and the one reading of each
 * instruction (engine/expand-step.ts): every config instruction kind, with BuildKit's config and
 * history results (the texts test/integration/build/buildkit-fs.test.ts and realworld.test.ts
 * compare with a real BuildKit).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../../src/dockerfile/parser.js';
import { StageScope, platformArgs } from '../../../src/plan/scope.js';
import {
  applyConfig,
  isConfigInstruction,
  type ConfigState,
  type ConfigStepResult,
} from '../../../src/engine/config-step.js';
import { expandStep, type Step } from '../../../src/engine/expand-step.js';
import type { SourceRef } from '../../../src/plan/types.js';
import { KilnError } from '../../../src/util/errors.js';

const created = '2024-01-02T03:04:05.000Z';
const place = { file: 'Dockerfile', line: 2 };

function scopeOf(
  o: { buildArgs?: Record<string, string>; globals?: Record<string, string>; env?: [string, string][] } = {},
) {
  return new StageScope(
    new Map(Object.entries(o.globals ?? {})),
    new Map(Object.entries(o.buildArgs ?? {})),
    platformArgs('linux/arm64', 'linux/amd64'),
    o.env ?? [],
  );
}

function emptyState(): ConfigState {
  return {
    config: {
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    },
    cmdSet: false,
    shell: ['/bin/sh', '-c'],
    argNames: [],
  };
}

/** The steps of `FROM scratch\n<lines>`, each read with the scope as the engine leaves it. */
function steps(
  lines: string,
  scope = scopeOf(),
  resolveFrom = (v: string): SourceRef => ({ kind: 'image', ref: v }),
): Step[] {
  const df = parseDockerfile(`FROM scratch\n${lines}\n`, { file: 'Dockerfile' });
  return df.instructions.slice(1).map((instruction) => {
    const step = expandStep({ instruction }, scope, {
      escape: '\\',
      place,
      globals: () => undefined,
      resolveFrom,
    });
    // What the walker does with the stage's variables after reading a step.
    if (step.ins.kind === 'ENV') for (const p of step.ins.pairs) scope.setEnv(p.key, p.value);
    if (step.ins.kind === 'ARG') {
      const x = step.ins;
      x.args.forEach((a, i) => scope.setArg(a.name, x.values[i]));
    }
    return step;
  });
}

/** Apply every step of `lines` in order; the final state and each step's history entry. */
function run(lines: string, state = emptyState(), scope = scopeOf()) {
  const results: ConfigStepResult[] = [];
  for (const s of steps(lines, scope)) {
    assert.ok(isConfigInstruction(s.ins), s.ins.kind);
    const r = applyConfig(state, s.ins, { created, place });
    results.push(r);
    state = r.state;
  }
  return { state, history: results.map((r) => r.history?.created_by), results };
}

describe('config dispatcher: each instruction kind as BuildKit', () => {
  test('ENV: a variable set again keeps its place, a new one goes last; one history entry per line', () => {
    const { state, history, results } = run(
      'ENV A=1 B=2\nENV PATH=/x:$PATH A=$B',
      emptyState(),
      scopeOf({ env: [['PATH', '/usr/bin']] }),
    );
    assert.deepEqual(state.config.config?.Env, ['PATH=/x:/usr/bin', 'A=2', 'B=2']);
    assert.deepEqual(history, ['ENV A=1 B=2', 'ENV PATH=/x:/usr/bin A=2']);
    assert.deepEqual(results[0]!.history, {
      created,
      created_by: 'ENV A=1 B=2',
      comment: 'buildkit.dockerfile.v0',
      empty_layer: true,
    });
  });

  test('LABEL: keys and values expanded, merged into the inherited labels', () => {
    const s = emptyState();
    s.config.config!.Labels = { old: 'o' };
    const { state, history } = run('ENV V=1\nLABEL a=$V "b c"="d $V"', s);
    assert.deepEqual(state.config.config?.Labels, { old: 'o', a: '1', 'b c': 'd 1' });
    assert.equal(history[1], 'LABEL a=1 b c=d 1');
  });

  test('ARG: history shows the value each name takes (build arg, default, global, automatic), none for unset', () => {
    const scope = scopeOf({ buildArgs: { B: 'from-cli' }, globals: { G: 'glob' } });
    const { state, history } = run('ARG A=1 C=$A-2 B=${NOPE:?never}\nARG G TARGETARCH U', emptyState(), scope);
    assert.deepEqual(history, ['ARG A=1 C=1-2 B=from-cli', 'ARG G=glob TARGETARCH=arm64 U']);
    assert.deepEqual(state.argNames, ['A', 'C', 'B', 'G', 'TARGETARCH', 'U']);
    assert.equal(state.config.config?.Env?.length, 1, 'ARG values never reach the config');
    assert.equal(scope.lookup('C'), '1-2');
  });

  test('ARG after ENV of the same name without a value: the history has no value (BuildKit)', () => {
    const { history } = run('ENV X=env\nARG X');
    assert.equal(history[1], 'ARG X');
  });

  test('MAINTAINER sets the author', () => {
    const { state, history } = run('MAINTAINER Jane <j@example.org>');
    assert.equal(state.config.author, 'Jane <j@example.org>');
    assert.deepEqual(history, ['MAINTAINER Jane <j@example.org>']);
  });

  test('EXPOSE: ports with their protocol, ranges spread, split from one variable; history as a Go list', () => {
    const { state, history } = run('ARG P="80 443"\nEXPOSE $P 53/udp 9000-9001/udp');
    assert.deepEqual(state.config.config?.ExposedPorts, {
      '80/tcp': {},
      '443/tcp': {},
      '53/udp': {},
      '9000/udp': {},
      '9001/udp': {},
    });
    assert.equal(history[1], 'EXPOSE [80/tcp 443/tcp 53/udp 9000/udp 9001/udp]');
  });

  test('EXPOSE: an invalid port is a build error at the instruction', () => {
    const [s] = steps('EXPOSE 99999');
    assert.throws(
      () => applyConfig(emptyState(), s!.ins as never, { created, place }),
      (e: unknown) => e instanceof KilnError && /EXPOSE: .*99999/.test(e.message) && e.place?.line === 2,
    );
  });

  test('VOLUME, USER, STOPSIGNAL', () => {
    const { state, history } = run('ARG V=1\nVOLUME /v$V /data\nUSER u$V:g\nSTOPSIGNAL SIGINT');
    const c = state.config.config!;
    assert.deepEqual(c.Volumes, { '/v1': {}, '/data': {} });
    assert.equal(c.User, 'u1:g');
    assert.equal(c.StopSignal, 'SIGINT');
    assert.deepEqual(history.slice(1), ['VOLUME [/v1 /data]', 'USER u1:g', 'STOPSIGNAL SIGINT']);
  });

  test('WORKDIR: absolute kept as written, relative joined to the current one', () => {
    const { state, history } = run('WORKDIR /w2/\nWORKDIR sub/../x\nWORKDIR /a\nWORKDIR b');
    assert.equal(state.config.config?.WorkingDir, '/a/b');
    assert.deepEqual(history, ['WORKDIR /w2/', 'WORKDIR /w2/x', 'WORKDIR /a', 'WORKDIR /a/b']);
  });

  test('SHELL changes the shell form of later CMD and ENTRYPOINT', () => {
    const { state, history } = run('SHELL ["/bin/bash", "-c"]\nCMD echo hi');
    assert.deepEqual(state.shell, ['/bin/bash', '-c']);
    assert.deepEqual(state.config.config?.Shell, ['/bin/bash', '-c']);
    assert.deepEqual(state.config.config?.Cmd, ['/bin/bash', '-c', 'echo hi']);
    assert.deepEqual(history, ['SHELL [/bin/bash -c]', 'CMD ["/bin/bash" "-c" "echo hi"]']);
  });

  test('CMD: exec form as given, `CMD []` unsets it (null)', () => {
    assert.deepEqual(run('CMD ["a", "b c"]').state.config.config?.Cmd, ['a', 'b c']);
    const { state, history } = run('CMD []');
    assert.equal(state.config.config?.Cmd, null);
    assert.deepEqual(history, ['CMD []']);
    assert.equal(state.cmdSet, true);
  });

  test('ENTRYPOINT clears an inherited CMD, keeps one given in this stage', () => {
    const inherited = emptyState();
    inherited.config.config!.Cmd = ['old'];
    const a = run('ENTRYPOINT ["cat"]', inherited);
    assert.equal(a.state.config.config?.Cmd, null);
    assert.deepEqual(a.state.config.config?.Entrypoint, ['cat']);
    assert.deepEqual(a.history, ['ENTRYPOINT ["cat"]']);
    const b = run('CMD ["x"]\nENTRYPOINT /bin/echo');
    assert.deepEqual(b.state.config.config?.Cmd, ['x']);
    assert.deepEqual(b.state.config.config?.Entrypoint, ['/bin/sh', '-c', '/bin/echo']);
  });

  test('HEALTHCHECK: CMD-SHELL with durations in ns; history as BuildKit formats the Go struct; NONE', () => {
    const { state, history } = run('HEALTHCHECK --interval=5s --retries=2 CMD curl -f http://localhost/ || exit 1');
    assert.deepEqual(state.config.config?.Healthcheck, {
      Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'],
      Interval: 5e9,
      Retries: 2,
    });
    assert.equal(
      history[0],
      'HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/ || exit 1] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}',
    );
    const none = run('HEALTHCHECK NONE');
    assert.deepEqual(none.state.config.config?.Healthcheck, { Test: ['NONE'] });
    assert.equal(
      none.history[0],
      'HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}',
    );
  });

  test('ONBUILD: the trigger stored as written, no history entry', () => {
    const { state, results } = run('ONBUILD COPY $X /y\nONBUILD RUN true');
    assert.deepEqual(state.config.config?.OnBuild, ['COPY $X /y', 'RUN true']);
    assert.equal(results[0]!.history, undefined);
  });

  test('pure: the input state is not changed', () => {
    const s = emptyState();
    const before = structuredClone(s);
    for (const step of steps('ENV A=1\nLABEL l=1\nUSER u\nCMD x\nARG Z=1'))
      applyConfig(s, step.ins as never, { created, place });
    assert.deepEqual(s, before);
  });

  test('RUN, COPY, ADD and FROM are not config instructions', () => {
    const kinds = steps('RUN true\nCOPY a b\nADD a b\nUSER u').map((s) => [s.ins.kind, isConfigInstruction(s.ins)]);
    assert.deepEqual(kinds, [
      ['RUN', false],
      ['COPY', false],
      ['ADD', false],
      ['USER', true],
    ]);
  });
});

describe('expandStep: each instruction read once', () => {
  test('COPY: sources, dest, flags and heredoc bodies expanded; heredoc markers and quoted bodies kept', () => {
    const [, s] = steps("ARG V=1\nCOPY --chown=$V:$V --chmod=07$V$V a$V <<A <<'B' /d$V/\n$V\nA\n$V\nB");
    assert.equal(s!.ins.kind, 'COPY');
    if (s!.ins.kind !== 'COPY') return;
    assert.deepEqual(s!.ins.sources, ['a1', '<<A', "<<'B'"]);
    assert.equal(s!.ins.dest, '/d1/');
    assert.equal(s!.ins.chown, '1:1');
    assert.equal(s!.ins.chmod, '0711');
    assert.deepEqual(
      s!.ins.heredocs.map((h) => h.content),
      ['1\n', '$V\n'],
    );
  });

  test('RUN: --mount values expanded and parsed, the command never', () => {
    const [, s] = steps('ARG ID=pip\nRUN --mount=type=cache,id=$ID,target=/c/$ID echo $ID');
    if (s!.ins.kind !== 'RUN') return assert.fail('RUN');
    assert.deepEqual(
      s!.ins.mounts.map((m) => [m.type, m.target, 'id' in m ? m.id : undefined]),
      [['cache', '/c/pip', 'pip']],
    );
    assert.equal(s!.ins.command.form === 'shell' && s!.ins.command.command, 'echo $ID');
  });

  test('--from / from= the planner did not see are resolved once, in order; planned sources are kept', () => {
    const seen: string[] = [];
    const resolve = (v: string): SourceRef => (seen.push(v), { kind: 'image', ref: `img-${v}` });
    const got = steps(
      'ARG S=x\nCOPY --from=$S /a /b\nRUN --mount=type=bind,from=$S-1,target=/m --mount=type=tmpfs,target=/t --mount=type=cache,from=c,target=/c true',
      scopeOf(),
      resolve,
    );
    assert.deepEqual(got[1]!.sources, [{ kind: 'image', ref: 'img-x' }]);
    assert.deepEqual(got[2]!.sources, [
      { kind: 'image', ref: 'img-x-1' },
      { kind: 'image', ref: 'img-c' },
    ]);
    assert.deepEqual(seen, ['x', 'x-1', 'c']);
    const df = parseDockerfile('FROM scratch\nCOPY --from=st /a /b\n', { file: 'Dockerfile' });
    const planned = expandStep(
      { instruction: df.instructions[1]!, sources: [{ kind: 'stage', index: 0 }] },
      scopeOf(),
      {
        escape: '\\',
        place,
        globals: () => undefined,
        resolveFrom: () => assert.fail('a planned source is not resolved again'),
      },
    );
    assert.deepEqual(planned.sources, [{ kind: 'stage', index: 0 }]);
  });

  test('--from falls back to the global ARGs after the stage variables (as the planner)', () => {
    const df = parseDockerfile('FROM scratch\nCOPY --from=$G /a /b\n', { file: 'Dockerfile' });
    const s = expandStep({ instruction: df.instructions[1]! }, scopeOf(), {
      escape: '\\',
      place,
      globals: (n) => (n === 'G' ? 'global-stage' : undefined),
      resolveFrom: (v) => ({ kind: 'image', ref: v }),
    });
    assert.deepEqual(s.sources, [{ kind: 'image', ref: 'global-stage' }]);
  });

  test('an expansion error is a build error at the instruction, from one place', () => {
    for (const line of [
      'WORKDIR ${NEED:?set it}',
      'ARG X="${NEED:?set it}"',
      'RUN --mount=type=bind,target=${NEED:?set_it} true',
    ]) {
      assert.throws(
        () => steps(line),
        (e: unknown) =>
          e instanceof KilnError && e.code === 'BUILD' && /NEED: set.it/.test(e.message) && e.place?.line === 2,
        line,
      );
    }
  });

  test('expanding does not change the scope (the walker does)', () => {
    const scope = scopeOf();
    const df = parseDockerfile('FROM scratch\nARG A=1\nENV B=2\n', { file: 'Dockerfile' });
    for (const instruction of df.instructions.slice(1))
      expandStep({ instruction }, scope, {
        escape: '\\',
        place,
        globals: () => undefined,
        resolveFrom: () => assert.fail(),
      });
    assert.equal(scope.has('A') || scope.has('B'), false);
  });
});
