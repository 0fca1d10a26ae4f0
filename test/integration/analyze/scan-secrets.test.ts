/**
 * `kiln scan --secrets` on an image built (real build) with planted credentials: each pattern is
 * found with its path, line, layer and step, masked; a key a later layer deleted is found with
 * the layer that deleted it; the config's env and history are searched; exit 1 on findings,
 * `--exit-code 0`, JSON; the clean base has none.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { basesUnavailable } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';
import { Workspace } from '../build/util.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-scan-secrets-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const NPM = 'npm_abcdefghijklmnopqrstuvwxyz0123456789';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const GH = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789';
const KEY = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  '-----END OPENSSH PRIVATE KEY-----',
  '',
].join('\n');

describe('kiln scan --secrets', { skip }, () => {
  before(async () => {
    await ws.importDebian();
    const ctx = ws.context('planted', {
      id_rsa: KEY,
      npmrc: `registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=${NPM}\n`,
      'sa.json':
        '{\n  "type": "service_account",\n  "project_id": "p",\n  "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n"\n}\n',
      Dockerfile: [
        'FROM debian-slim:bookworm',
        'COPY id_rsa /root/.ssh/id_rsa',
        'COPY npmrc /root/.npmrc',
        'COPY sa.json /app/sa.json',
        `RUN mkdir -p /root/.aws /root/.docker && printf '[default]\\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\\naws_secret_access_key = ${AWS_SECRET}\\n' > /root/.aws/credentials && printf 'https://bob:hunter2secret@github.com\\n' > /root/.git-credentials && printf 'machine example.com login bob password s3cretpw\\n' > /root/.netrc && printf '[pypi]\\nusername = __token__\\npassword = pypi-AgEIcHlwaS5vcmc\\n' > /root/.pypirc && printf '{"auths":{"r.example.com":{"auth":"Ym9iOmh1bnRlcjI="}}}\\n' > /root/.docker/config.json`,
        'RUN rm /root/.ssh/id_rsa',
        `ENV GITHUB_TOKEN=${GH}`,
      ].join('\n'),
    });
    await ws.build(ctx, 'planted:1');
  });

  test('finds each planted credential with its file, line, layer and step, masked; exit 1', async () => {
    const r = await ws.kiln(['scan', '--secrets', 'planted:1']);
    assert.equal(r.code, 1, r.stderr);
    const out = r.stdout;
    const has = (re: RegExp) => assert.match(out, re);
    has(
      /^\/root\/\.ssh\/id_rsa:1: private key \[private-key\]: OPENSSH PRIVATE KEY\n {4}layer 2 \(sha256:[0-9a-f]{12}\) — deleted by layer 6, still in the image's blobs\n {4}step: COPY id_rsa \/root\/.ssh\/id_rsa/m,
    );
    has(/^\/root\/\.npmrc:2: \.npmrc registry credential \[npmrc-auth\]: npm_\*+\n {4}layer 3 /m);
    has(/^\/root\/\.npmrc:2: npm access token \[npm-token\]/m);
    has(/^\/app\/sa\.json:2: GCP service-account key \(JSON\) \[gcp-service-account\]/m);
    has(/^\/app\/sa\.json:4: private key \[private-key\]: PRIVATE KEY/m);
    has(
      /^\/root\/\.aws\/credentials:2: AWS access key id with a secret access key nearby \[aws-access-key\]: AKIA\*+\n {4}layer 5 .*\n {4}step: RUN \/bin\/sh -c mkdir/m,
    );
    has(/^\/root\/\.aws\/credentials:3: AWS secret access key \[aws-secret-key\]/m);
    has(/^\/root\/\.git-credentials:1: \.git-credentials password \[git-credentials\]: hunt\*+$/m);
    has(/^\/root\/\.netrc:1: \.netrc password \[netrc-password\]: \*{8}$/m);
    has(/^\/root\/\.pypirc:3: \.pypirc password \[pypirc-password\]/m);
    has(/^\/root\/\.docker\/config\.json:1: registry credential in a docker config\.json \[docker-config-auth\]/m);
    has(/^config: Env:2: GitHub token \[github-token\]: ghp_\*+$/m);
    has(/^config: history\[\d+\]:1: AWS secret access key/m);
    for (const s of [NPM, AWS_SECRET, GH, 'hunter2secret', 's3cretpw', 'Ym9iOmh1bnRlcjI=', 'AKIAIOSFODNN7EXAMPLE'])
      assert.ok(!out.includes(s), `${s} is shown unmasked`);
    has(/^\d+ credential\(s\) found in .*planted:1$/m);
  });

  test('--format json, --exit-code 0', async () => {
    const r = await ws.kiln(['scan', '--secrets', '--format', 'json', '--exit-code', '0', 'planted:1']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      findings: { rule: string; path: string; line?: number; layer?: number; deletedIn?: number; step?: string }[];
      skipped: unknown[];
    };
    const key = j.findings.find((f) => f.path === '/root/.ssh/id_rsa')!;
    assert.deepEqual([key.rule, key.line, key.layer, key.deletedIn], ['private-key', 1, 1, 5]);
    assert.match(key.step!, /^COPY id_rsa/);
    assert.ok(j.findings.some((f) => f.rule === 'docker-config-auth'));
  });

  test('the clean base has none: exit 0', async () => {
    const r = await ws.kiln(['scan', '--secrets', 'debian-slim:bookworm']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^no credential found in .*debian-slim:bookworm\n$/);
  });

  test('usage: --db or --secrets, not both; a bad --exit-code', async () => {
    const none = await ws.kiln(['scan', 'planted:1']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /kiln scan needs --db DIR \(an OSV database\) or --secrets/);
    const bad = await ws.kiln(['scan', '--secrets', '--exit-code', 'x', 'planted:1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --exit-code "x"/);
  });
});
