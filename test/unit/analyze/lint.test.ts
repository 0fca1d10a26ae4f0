import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { lintDockerfile, installedPackages } from '../../../src/analyze/lint/index.js';
import { formatLintSarif, formatLintText } from '../../../src/analyze/lint/format.js';

const rules = (text: string) => lintDockerfile(text).findings.map((f) => `${f.line}:${f.rule}`);
const has = (text: string, rule: string) => lintDockerfile(text).findings.filter((f) => f.rule === rule);

const GOOD = `FROM python:3.12-slim AS build
WORKDIR /src
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

FROM python:3.12-slim
COPY --from=build /usr/local/lib/python3.12/site-packages /usr/local/lib/python3.12/site-packages
USER 10001
CMD ["python", "-m", "app"]
`;

describe('lint', () => {
  test('a clean multi-stage Dockerfile has no findings', () => {
    assert.deepEqual(rules(GOOD), []);
  });

  test('BuildKit checks: casing, stage names, JSON args, multiple CMD, workdir, platform', () => {
    const r = rules(`FROM alpine:3.19 as Base
from alpine:3.19 AS scratch
FROM alpine:3.19 AS base
WORKDIR app
CMD echo one
CMD ["two"]
FROM --platform=$TARGETPLATFORM alpine:3.19 AS p1
FROM --platform=linux/amd64 alpine:3.19 AS p2
USER app
`);
    for (const want of [
      '1:StageNameCasing',
      '1:FromAsCasing',
      '2:ConsistentInstructionCasing',
      '2:ReservedStageName',
      '3:DuplicateStageName',
      '4:WorkdirRelativePath',
      '5:JSONArgsRecommended',
      '5:MultipleInstructionsDisallowed',
      '7:RedundantTargetPlatform',
      '8:FromPlatformFlagConstDisallowed',
    ]) {
      assert.ok(r.includes(want), `missing ${want} in ${r.join(' ')}`);
    }
    assert.ok(!r.includes('6:JSONArgsRecommended'));
  });

  test('shell-form CMD with a custom SHELL is fine (BuildKit skips it)', () => {
    assert.equal(
      has('FROM alpine:3.19\nSHELL ["/bin/bash", "-c"]\nUSER 1\nCMD echo hi\n', 'JSONArgsRecommended').length,
      0,
    );
    assert.equal(has('FROM alpine:3.19\nUSER 1\nENTRYPOINT exec app\n', 'JSONArgsRecommended').length, 1);
  });

  test('secrets through ARG/ENV: a literal value is an error, a bare ARG a warning', () => {
    const f = lintDockerfile(
      'FROM alpine:3.19\nARG GITHUB_TOKEN\nENV DB_PASSWORD=hunter2 PUBLIC_KEY=x AUTHOR=me\nARG SECRET_FILE=/run/s\nUSER 1\n',
    ).findings.filter((x) => x.rule === 'SecretsUsedInArgOrEnv');
    assert.deepEqual(
      f.map((x) => [x.line, x.level, x.message]),
      [
        [2, 'warning', 'Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")'],
        [3, 'error', 'Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")'],
      ],
    );
  });

  test('FROM with undeclared or empty ARGs', () => {
    const r = lintDockerfile('ARG TAG\nFROM alpine:${TAG}\nFROM ${IMAGE}\n');
    assert.ok(r.findings.some((f) => f.rule === 'InvalidDefaultArgInFrom' && f.line === 2));
    assert.ok(
      r.findings.some(
        (f) => f.rule === 'UndefinedArgInFrom' && f.line === 3 && f.message === "FROM argument 'IMAGE' is not declared",
      ),
    );
    assert.ok(r.errors >= 2);
  });

  test('final stage as root', () => {
    assert.equal(has('FROM debian:12\nCMD ["x"]\n', 'RootUserInFinalStage').length, 1);
    assert.equal(has('FROM debian:12\nUSER root\nCMD ["x"]\n', 'RootUserInFinalStage')[0]!.line, 2);
    assert.equal(
      has('FROM debian:12 AS base\nUSER app\nFROM base\nCMD ["x"]\n', 'RootUserInFinalStage').length,
      0,
      'USER inherited from the base stage',
    );
    assert.equal(
      has('FROM debian:12 AS b\nUSER app\nFROM debian:12\nCOPY --from=b /x /x\n', 'RootUserInFinalStage').length,
      1,
      'a COPY --from stage does not give its USER',
    );
    assert.equal(has('FROM scratch\nCOPY app /\n', 'RootUserInFinalStage').length, 0);
  });

  test('build tools, apt lists and caches reaching the final stage (not builder stages)', () => {
    const text = `FROM debian:12 AS build
RUN apt-get update && apt-get install -y gcc make libssl-dev
FROM debian:12
RUN apt-get update && apt-get install -y --no-install-recommends gcc libpq-dev ca-certificates
RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/var/lib/apt/lists apt-get install -y wget
RUN pip install flask
RUN npm ci && npm cache clean --force
RUN npm install
USER 1
`;
    const r = rules(text);
    assert.deepEqual(
      r.filter((x) => /BuildTools|AptLists|PackageCache/.test(x)),
      ['4:AptListsNotCleaned', '4:BuildToolsInFinalStage', '7:PackageCacheInFinalStage', '9:PackageCacheInFinalStage'],
    );
    assert.match(has(text, 'BuildToolsInFinalStage')[0]!.message, /gcc, libpq-dev/);
    assert.equal(
      has('FROM golang:1.22\nUSER 1\nCMD ["app"]\n', 'BuildToolsInFinalStage').length,
      1,
      'toolchain image as the final base',
    );
    assert.equal(
      has('FROM debian:12\nENV PIP_NO_CACHE_DIR=1\nRUN pip install x\nUSER 1\n', 'PackageCacheInFinalStage').length,
      0,
    );
  });

  test('base image without a tag or latest; digests and scratch are fine', () => {
    const r = has(
      'FROM debian AS a\nFROM alpine:latest AS b\nFROM alpine@sha256:' +
        'a'.repeat(64) +
        ' AS c\nFROM scratch\nCOPY --from=a /x /x\nCOPY --from=b /x /y\nCOPY --from=c /x /z\n',
      'BaseImageLatestTag',
    );
    assert.deepEqual(
      r.map((f) => f.line),
      [1, 2],
    );
  });

  test('COPY . . before the dependency install', () => {
    const f = has(
      'FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\nUSER node\nCMD ["node", "."]\n',
      'CopyAllBeforeDependencyInstall',
    );
    assert.equal(f.length, 1);
    assert.equal(f[0]!.line, 4);
    assert.match(f[0]!.message, /on line 3/);
    assert.equal(
      has('FROM node:20\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nUSER node\n', 'CopyAllBeforeDependencyInstall')
        .length,
      0,
    );
  });

  test('BroadCopyFromStage: a whole /usr/local, / or node_modules copied from a stage without --exclude', () => {
    const df = (copy: string) => `FROM node:20 AS build\nRUN make\nFROM debian:12\n${copy}\nUSER 1\n`;
    for (const copy of [
      'COPY --from=build /usr/local/ /usr/local/',
      'COPY --from=build /usr/local /usr/local',
      'COPY --from=build / /',
      'COPY --from=build /app/node_modules /app/node_modules',
    ]) {
      const f = has(df(copy), 'BroadCopyFromStage');
      assert.equal(f.length, 1, copy);
      assert.equal(f[0]!.line, 4);
      assert.match(f[0]!.message, /kiln analyze --copies/);
    }
    for (const copy of [
      'COPY --from=build --exclude=**/include /usr/local/ /usr/local/',
      'COPY --from=build /usr/local/lib /usr/local/lib',
      'COPY /usr/local /usr/local',
      'COPY --from=build /app/dist /app/dist',
    ])
      assert.equal(has(df(copy), 'BroadCopyFromStage').length, 0, copy);
    // Only what reaches the final image: a builder copying from another builder is its own business.
    assert.equal(
      has(
        'FROM debian:12 AS a\nRUN x\nFROM debian:12 AS b\nCOPY --from=a / /\nFROM debian:12\nCOPY --from=b /x /x\nUSER 1\n',
        'BroadCopyFromStage',
      ).length,
      0,
    );
  });

  test('unused stage, honouring --target', () => {
    const text = 'FROM alpine:3.19 AS a\nFROM alpine:3.19 AS b\nUSER 1\n';
    assert.deepEqual(
      has(text, 'UnusedStage').map((f) => f.line),
      [1],
    );
    assert.deepEqual(
      lintDockerfile(text, { target: 'a' })
        .findings.filter((f) => f.rule === 'UnusedStage')
        .map((f) => f.line),
      [2],
    );
  });

  test('# check directive: skip and error=true', () => {
    const text = '# check=skip=JSONArgsRecommended,RootUserInFinalStage;error=true\nFROM alpine\nCMD echo\n';
    const r = lintDockerfile(text);
    assert.deepEqual(
      r.findings.map((f) => [f.rule, f.level]),
      [['BaseImageLatestTag', 'error']],
    );
    assert.equal(r.errors, 1);
  });

  test('parse errors are error findings with their position', () => {
    const r = lintDockerfile('FROM alpine:3.19\nRUN --mount=type=bogus echo\n');
    assert.equal(r.errors, 1);
    assert.equal(r.findings[0]!.rule, 'InvalidDockerfile');
    assert.equal(r.findings[0]!.line, 2);
  });

  test('text and SARIF output', () => {
    const r = lintDockerfile('FROM alpine\nCMD echo\n', { file: 'app/Dockerfile' });
    const text = formatLintText(r);
    assert.match(text, /^app\/Dockerfile:1:1: warning: base image "alpine" has no tag/m);
    assert.match(text, /app\/Dockerfile: 0 errors, 3 warnings/);
    const sarif = JSON.parse(formatLintSarif(r, { name: 'kiln', version: '0.1.0' }));
    assert.equal(sarif.version, '2.1.0');
    const run = sarif.runs[0];
    assert.equal(run.results.length, 3);
    for (const res of run.results) {
      assert.equal(run.tool.driver.rules[res.ruleIndex].id, res.ruleId);
      assert.equal(res.locations[0].physicalLocation.artifactLocation.uri, 'app/Dockerfile');
    }
    assert.equal(
      run.tool.driver.rules.find((x: { id: string }) => x.id === 'JSONArgsRecommended').helpUri,
      'https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
    );
  });

  test('installed package names from install commands', () => {
    assert.deepEqual(
      installedPackages(
        'apt-get update && apt-get install -y --no-install-recommends gcc=4:12 libc6-dev && apk add --no-cache musl-dev',
      ),
      ['gcc', 'libc6-dev', 'musl-dev'],
    );
  });
});

// BuildKit's checks, with its names and messages (docs.docker.com/reference/build-checks/:
// expose-proto-casing, expose-invalid-format, invalid-definition-description — the last one
// experimental: only with `# check=experimental=…`).
describe('lint: EXPOSE and definition descriptions, as BuildKit', () => {
  test('ExposeProtoCasing and ExposeInvalidFormat, words with variables left to the build', () => {
    const text = 'FROM alpine:3.19\nUSER 1\nEXPOSE 80/TCP 8080:80 127.0.0.1:53:53/udp $P/UDP 443/tcp 53/udp\n';
    const found = lintDockerfile(text)
      .findings.filter((f) => f.rule.startsWith('Expose'))
      .map((f) => `${f.rule}: ${f.message}`);
    assert.deepEqual(found, [
      "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '8080:80'",
      "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:53:53/udp'",
      "ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
    ]);
    assert.equal(
      has(text, 'ExposeProtoCasing')[0]!.url,
      'https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/',
    );
    assert.deepEqual(has('# check=skip=ExposeProtoCasing\nFROM alpine:3.19\nEXPOSE 80/TCP\n', 'ExposeProtoCasing'), []);
  });

  // BuildKit's testCopyIgnoredFiles (frontend/dockerfile/dockerfile_lint_test.go): experimental,
  // "Copy"/"Add" in the message, reported even under skip=all when asked for by name, never for --from.
  test('CopyIgnoredFile (experimental): a COPY/ADD source the context ignores, or under an ignored directory', () => {
    const ignored = (rel: string) => rel === 'Dockerfile' || rel === 'secret' || rel === 'foobar';
    const lint = (text: string) =>
      lintDockerfile(text, { ignored })
        .findings.filter((f) => f.rule === 'CopyIgnoredFile')
        .map((f) => `${f.line}: ${f.message} ${f.url}`);
    const body = 'FROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\nCOPY ./secret/key ok.txt /d/\nCOPY $X /x\n';
    assert.deepEqual(lint(body), [], 'experimental: off by default');
    const url = 'https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/';
    const expected = [
      `3: Attempting to Copy file "Dockerfile" that is excluded by .dockerignore ${url}`,
      `4: Attempting to Add file "Dockerfile" that is excluded by .dockerignore ${url}`,
      `5: Attempting to Copy file "./secret/key" that is excluded by .dockerignore ${url}`,
    ];
    assert.deepEqual(lint(`# check=experimental=CopyIgnoredFile\n${body}`), expected);
    assert.deepEqual(lint(`# check=skip=all;experimental=CopyIgnoredFile\n${body}`), expected);
    assert.deepEqual(lint(`# check=experimental=all;skip=CopyIgnoredFile\n${body}`), []);
    assert.deepEqual(
      lint(
        '# check=experimental=CopyIgnoredFile\nFROM scratch AS base\nCOPY Dockerfile /foobar\nFROM base\nCOPY --from=base /foobar /Dockerfile\n',
      ),
      ['3: Attempting to Copy file "Dockerfile" that is excluded by .dockerignore ' + url],
    );
    assert.equal(
      lintDockerfile(`# check=experimental=CopyIgnoredFile;error=true\n${body}`, { ignored }).findings.find(
        (f) => f.rule === 'CopyIgnoredFile',
      )?.level,
      'error',
    );
  });

  test('InvalidDefinitionDescription only when asked (experimental); "# NAME …" is a description, a blank line ends the block, directives are no comments', () => {
    const body = [
      '# GO_VERSION the Go version',
      'ARG GO_VERSION=1.22',
      '# just a note',
      'ARG OTHER',
      '',
      '# unrelated, then a blank line',
      '',
      'FROM alpine:3.19 AS base',
      '# builder compiles the app',
      'FROM base AS builder',
      '# a note about the release',
      'FROM base AS release',
      'USER 1',
      '',
    ].join('\n');
    assert.deepEqual(has(body, 'InvalidDefinitionDescription'), [], 'experimental: off by default');
    const on = lintDockerfile(`# check=experimental=InvalidDefinitionDescription\n${body}`).findings.filter(
      (f) => f.rule === 'InvalidDefinitionDescription',
    );
    assert.deepEqual(
      on.map((f) => `${f.line}: ${f.message}`),
      [
        '5: Comment for build argument should follow the format: `# OTHER <description>`',
        '13: Comment for build stage should follow the format: `# release <description>`',
      ],
    );
    assert.equal(
      lintDockerfile('# check=experimental=all\nARG A\nFROM alpine:3.19\nUSER 1\n').findings.filter(
        (f) => f.rule === 'InvalidDefinitionDescription',
      ).length,
      0,
      'the directive above is no description',
    );
  });
});
