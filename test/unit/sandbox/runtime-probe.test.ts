import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// A stand-in runtime (crun and runc) that logs its calls and answers the probe as a working runtime
// does (the probe's program is missing in its empty rootfs).
const FAKE_RUNC = `#!/bin/sh
echo "$(basename "$0") $*" >> "$KILN_FAKE_RUNC_LOG"
case "$*" in *" run "*) echo 'exec: "/kiln-probe": no such file or directory' >&2; exit 1;; esac
exit 0
`;

/**
 * Three kiln processes choosing a runtime with stand-in `crun` and `runc` scripts on PATH and a
 * marker dir of their own: what each chose, and the calls the stand-ins logged.
 */
function chooseThrice(dir: string, scripts: { crun: string; runc: string }): { chosen: string[]; calls: string } {
  mkdirSync(path.join(dir, 'bin'));
  for (const [name, text] of Object.entries(scripts)) writeFileSync(path.join(dir, 'bin', name), text, { mode: 0o755 });
  const log = path.join(dir, 'calls.log');
  const runtime = new URL('../../../src/sandbox/runtime.js', import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(runtime)}); const r = await m.selectRunner({ scratch: ${JSON.stringify(dir)} }); console.log(r.kind, r.program.split('/').pop());`;
  const env = {
    ...process.env,
    PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
    XDG_RUNTIME_DIR: path.join(dir, 'xdg'),
    KILN_FAKE_RUNC_LOG: log,
  };
  const chosen: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    chosen.push(r.stdout.trim());
  }
  return { chosen, calls: readFileSync(log, 'utf8') };
}

test('a runtime that works is probed once per boot, not by every kiln process', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-probe-'));
  try {
    const { chosen, calls } = chooseThrice(dir, { crun: FAKE_RUNC, runc: FAKE_RUNC });
    assert.deepEqual(chosen, ['oci crun', 'oci crun', 'oci crun'], 'crun first');
    const runs = calls.split('\n').filter((l) => / run /.test(` ${l} `));
    assert.equal(runs.length, 1, `one probe for three processes:\n${calls}`);
    // crun is asked to make no cgroup (runtime.ts says why).
    assert.match(runs[0]!, /^crun --cgroup-manager=disabled --root /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A stand-in crun that refuses every container, as crun does on a host it cannot run on.
const REFUSING_CRUN = `#!/bin/sh
echo "$(basename "$0") $*" >> "$KILN_FAKE_RUNC_LOG"
case "$*" in *" run "*) echo 'crun: this host is refused' >&2; exit 1;; esac
exit 0
`;

test('a runtime refused where the next one works is probed once per boot too', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-probe-'));
  try {
    const { chosen, calls } = chooseThrice(dir, { crun: REFUSING_CRUN, runc: FAKE_RUNC });
    assert.deepEqual(chosen, ['oci runc', 'oci runc', 'oci runc'], 'crun refused: runc, in every process');
    const runs = (name: string) =>
      calls.split('\n').filter((l) => l.startsWith(`${name} `) && / run /.test(` ${l} `)).length;
    assert.equal(runs('crun'), 1, `crun's refusal probed once for three processes:\n${calls}`);
    assert.equal(runs('runc'), 1, `runc probed once for three processes:\n${calls}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A stand-in mount(8)/umount(8) that logs its calls and succeeds, or fails as a kernel refusing
// overlayfs does (KILN_FAKE_MOUNT_FAIL=1).
const FAKE_MOUNT = `#!/bin/sh
echo "$(basename "$0") $*" >> "$KILN_FAKE_MOUNT_LOG"
if [ "$(basename "$0")" = mount ] && [ -n "$KILN_FAKE_MOUNT_FAIL" ]; then echo "mount: $9: permission denied." >&2; exit 32; fi
exit 0
`;

test('overlayfs that mounts is probed once per boot; a refusal is probed again by the next process', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-probe-'));
  try {
    mkdirSync(path.join(dir, 'bin'));
    mkdirSync(path.join(dir, 'scratch'));
    for (const tool of ['mount', 'umount']) writeFileSync(path.join(dir, 'bin', tool), FAKE_MOUNT, { mode: 0o755 });
    const log = path.join(dir, 'calls.log');
    const rootfs = new URL('../../../src/sandbox/rootfs.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(rootfs)}); console.log(JSON.stringify(await m.overlayRefusal(${JSON.stringify(path.join(dir, 'scratch'))}) ?? 'ok'));`;
    const env = {
      ...process.env,
      PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
      XDG_RUNTIME_DIR: path.join(dir, 'xdg'),
      KILN_FAKE_MOUNT_LOG: log,
    };
    const probes = () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('mount ')).length;
    const run = (extra: Record<string, string>) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...env, ...extra },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim()) as string;
    };
    writeFileSync(log, '');
    for (let i = 0; i < 2; i++) assert.match(run({ KILN_FAKE_MOUNT_FAIL: '1' }), /permission denied/);
    assert.equal(probes(), 2, 'a refusal is not remembered');
    for (let i = 0; i < 3; i++) assert.equal(run({}), 'ok');
    assert.equal(probes(), 3, `one probe for three processes once it mounted:\n${readFileSync(log, 'utf8')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mount and umount through the long-lived shell: words quoted, cwd, output and exit code; kiln exits when idle', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-mount-shell-'));
  try {
    mkdirSync(path.join(dir, 'bin'));
    mkdirSync(path.join(dir, "a dir's"));
    // Says where it runs and its words, one a line; fails when asked to.
    const tool = `#!/bin/sh\npwd >&2\nfor a in "$@"; do echo "[$a]"; done\n[ "$1" = fail ] && exit 3\nexit 0\n`;
    for (const t of ['mount', 'umount']) writeFileSync(path.join(dir, 'bin', t), tool, { mode: 0o755 });
    const shellMod = new URL('../../../src/sandbox/mount-shell.js', import.meta.url).href;
    // In turn (the shell runs both), then two at once (the second is spawned directly meanwhile).
    const script = `const { mountTool } = await import(${JSON.stringify(shellMod)});
      const out = [
        await mountTool('mount', ['-o', "it's a b", '$HOME', '\`x\`'], ${JSON.stringify(path.join(dir, "a dir's"))}),
        await mountTool('umount', ['fail']),
      ];
      const both = await Promise.all([mountTool('umount', ['fail']), mountTool('mount', ['ok'])]);
      console.log(JSON.stringify([...out.map((r) => [r.code, r.stderr]), both.map((r) => r.code)]));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      [0, `${path.join(dir, "a dir's")}\n[-o]\n[it's a b]\n[$HOME]\n[\`x\`]\n`],
      [3, `${process.cwd()}\n[fail]\n`],
      [3, 0],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
