/**
 * RUN --mount as BuildKit has it: cache (kept between builds, never in a layer, sharing modes),
 * bind (context, stage, image; rw writes discarded; .dockerignore and symlinks), tmpfs, secret
 * (file and env; the bytes nowhere in the store afterwards), ssh (the caller's agent forwarded).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as net from 'node:net';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { savedImage, Workspace } from './util.js';
import { needs } from '../../helpers/prereq.js';

const skip = needs(basesUnavailable());
const ws = new Workspace('kiln-mounts-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

/** Every path a layer of the image adds (bottom to top). */
async function layerPaths(name: string): Promise<string[]> {
  const img = await savedImage(ws, name);
  return img.layers.flat().map((e) => e.path);
}

/** Files under dir (recursively) whose bytes, or gunzipped bytes, contain needle. */
function filesContaining(dir: string, needles: Buffer[]): string[] {
  const hits: string[] = [];
  const visit = (p: string) => {
    let st;
    try {
      st = statSync(p, { throwIfNoEntry: false });
    } catch {
      return;
    }
    if (!st) return;
    if (st.isDirectory()) {
      for (const c of readdirSync(p)) visit(path.join(p, c));
      return;
    }
    if (!st.isFile()) return;
    const b = readFileSync(p);
    const views = [b];
    if (b.length > 2 && b[0] === 0x1f && b[1] === 0x8b) {
      try {
        views.push(gunzipSync(b));
      } catch {
        // not gzip after all
      }
    }
    if (views.some((v) => needles.some((n) => v.includes(n)))) hits.push(p);
  };
  visit(dir);
  return hits;
}

describe('RUN --mount', { skip }, () => {
  before(() => ws.importDebian());

  test('type=cache persists between builds, is never in the image, and honours uid/gid/mode and sharing', async () => {
    const ctx = ws.context('cache', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        `RUN --mount=type=cache,target=/var/cache/app sh -c 'n=$(cat /var/cache/app/n 2>/dev/null || echo 0); echo $((n+1)) > /var/cache/app/n; cp /var/cache/app/n /count'`,
        `RUN --mount=type=cache,id=owned,target=/c2,uid=1000,gid=1001,mode=0710 stat -c %u:%g:%a /c2 > /owner.txt`,
        `RUN --mount=type=cache,id=sh,target=/a --mount=type=cache,id=sh,target=/b sh -c 'touch /a/x && test -e /b/x' && echo shared-same > /shared.txt`,
        `RUN --mount=type=cache,id=pv,target=/a,sharing=private --mount=type=cache,id=pv,target=/b,sharing=private sh -c 'touch /a/x && test ! -e /b/x' && echo private-apart > /private.txt`,
      ].join('\n'),
    });
    await ws.build(ctx, 'cache:1');
    assert.equal(
      await ws.sh('cache:1', 'cat /count /owner.txt /shared.txt /private.txt'),
      '1\n1000:1001:710\nshared-same\nprivate-apart\n',
    );
    // A second build that runs the step again (--no-cache) finds what the first left in the cache.
    await ws.build(ctx, 'cache:2', ['--no-cache']);
    assert.equal(await ws.sh('cache:2', 'cat /count'), '2\n');
    assert.equal(
      await ws.sh('cache:2', 'ls -A /var/cache/app | wc -l'),
      '0\n',
      'the image has only the (empty) mount point, if anything',
    );
    const paths = await layerPaths('cache:2');
    assert.ok(
      !paths.some((p) => /var\/cache\/app\/n$|(^|\/)c2\/|^\/?a\/x$/.test(p)),
      `cache content in a layer: ${paths.filter((p) => /cache|c2|a\/x/.test(p)).join(' ')}`,
    );
    assert.ok(existsSync(path.join(ws.root, 'cache-mounts')), 'cache mounts live in the store');
  });

  test('type=cache sharing=locked: parallel stages use the cache one after the other', async () => {
    const ctx = ws.context('locked', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS one',
        `RUN --mount=type=cache,id=lk,target=/c,sharing=locked sh -c 'echo start >> /c/log; sleep 1; echo end >> /c/log' && touch /one`,
        'FROM debian-slim:bookworm AS two',
        `RUN --mount=type=cache,id=lk,target=/c,sharing=locked sh -c 'echo start >> /c/log; sleep 1; echo end >> /c/log' && touch /two`,
        'FROM debian-slim:bookworm',
        'COPY --from=one /one /one',
        'COPY --from=two /two /two',
        `RUN --mount=type=cache,id=lk,target=/c,sharing=locked cp /c/log /log`,
      ].join('\n'),
    });
    await ws.build(ctx, 'locked:1');
    assert.equal(await ws.sh('locked:1', 'cat /log'), 'start\nend\nstart\nend\n');
  });

  test('type=bind from the context, a stage and an image; rw writes are discarded; .dockerignore and symlinks respected', async () => {
    const ctx = ws.context('bind', {
      Dockerfile: [
        'FROM debian-slim:bookworm AS src',
        'RUN mkdir -p /data && echo from-stage > /data/s.txt',
        'FROM debian-slim:bookworm',
        "RUN --mount=type=bind,from=src,source=/data,target=/mnt/s --mount=type=bind,target=/mnt/ctx --mount=type=bind,from=debian-slim:bookworm,source=/etc/debian_version,target=/mnt/dv sh -c 'cat /mnt/s/s.txt /mnt/ctx/c.txt > /out.txt; test -s /mnt/dv && echo dv-ok >> /out.txt; test ! -e /mnt/ctx/ignored.txt && echo ignored-absent >> /out.txt'",
        `RUN --mount=type=bind,source=dir,target=/mnt/rw,rw sh -c 'echo changed > /mnt/rw/f.txt; touch /mnt/rw/new; cat /mnt/rw/f.txt > /rw.txt'`,
        `RUN --mount=type=bind,source=dir,target=/mnt/rw sh -c 'cat /mnt/rw/f.txt; test ! -e /mnt/rw/new && echo new-gone; if touch /mnt/rw/x 2>/dev/null; then echo writable; else echo readonly; fi' > /ro.txt`,
        `RUN --mount=type=bind,source=dir/f.txt,target=/one-file.txt cat /one-file.txt > /file.txt`,
      ].join('\n'),
      'c.txt': 'ctx\n',
      'dir/f.txt': 'original\n',
      'ignored.txt': 'nope\n',
      '.dockerignore': 'ignored.txt\n',
    });
    await ws.build(ctx, 'bind:1');
    assert.equal(await ws.sh('bind:1', 'cat /out.txt'), 'from-stage\nctx\ndv-ok\nignored-absent\n');
    assert.equal(
      await ws.sh('bind:1', 'cat /rw.txt /ro.txt /file.txt'),
      'changed\noriginal\nnew-gone\nreadonly\noriginal\n',
    );
    assert.equal(readFileSync(path.join(ctx, 'dir/f.txt'), 'utf8'), 'original\n', 'the context is untouched');
    const paths = await layerPaths('bind:1');
    assert.ok(
      !paths.some((p) => /^\/?mnt\/(s|ctx|rw|dv)\/./.test(p) || /one-file/.test(p)),
      `mounted content in a layer: ${paths.filter((p) => p.includes('mnt')).join(' ')}`,
    );

    // A symlink in the context pointing out of it is resolved inside the context, never on the host.
    const esc = ws.context('bind-escape', {
      Dockerfile: 'FROM debian-slim:bookworm\nRUN --mount=type=bind,source=escape/passwd,target=/p cat /p\n',
    });
    symlinkSync('/etc', path.join(esc, 'escape'));
    const r = await ws.kiln(['build', esc]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Dockerfile:2.*bind source "escape\/passwd" not found in the build context/);
  });

  test('type=tmpfs: a fresh tmpfs, nothing of it in the layer', async () => {
    const ctx = ws.context('tmpfs', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        `RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c 'echo x > /scratch/f; grep " /scratch " /proc/mounts | cut -d" " -f3 > /t.txt'`,
      ].join('\n'),
    });
    await ws.build(ctx, 'tmpfs:1');
    assert.equal(await ws.sh('tmpfs:1', 'cat /t.txt'), 'tmpfs\n');
    assert.ok(!(await layerPaths('tmpfs:1')).some((p) => /scratch\/f/.test(p)));
  });

  test('type=secret from a file and from the environment reaches RUN; its bytes are nowhere in the store', async () => {
    const fileSecret = `file-secret-${randomBytes(12).toString('hex')}`;
    const envSecret = `env-secret-${randomBytes(12).toString('hex')}`;
    const idSecret = `id-secret-${randomBytes(12).toString('hex')}`;
    const sha = (s: string) => spawnSync('sha256sum', { input: s }).stdout.toString().slice(0, 64);
    const secretFile = path.join(ws.dir, 'secret.txt');
    writeFileSync(secretFile, fileSecret);
    const ctx = ws.context('secret', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        `RUN --mount=type=secret,id=tok sh -c 'sha256sum < /run/secrets/tok | cut -c1-64 > /h1; stat -c %a:%u:%g /run/secrets/tok > /m1'`,
        `RUN --mount=type=secret,id=tok2,env=TOK sh -c 'printf %s "$TOK" | sha256sum | cut -c1-64 > /h2; test ! -e /run/secrets/tok2 && echo no-file > /m2'`,
        `RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0440,uid=1,gid=2 sh -c 'stat -c %a:%u:%g /etc/tok > /m3'`,
        `RUN --mount=type=secret,id=KILN_ID_SECRET sh -c 'sha256sum < /run/secrets/KILN_ID_SECRET | cut -c1-64 > /h3'`,
        `RUN --mount=type=secret,id=absent sh -c 'test ! -e /run/secrets/absent && echo skipped > /m4'`,
      ].join('\n'),
    });
    const env = { MY_TOKEN: envSecret, KILN_ID_SECRET: idSecret };
    await ws.build(
      ctx,
      'secret:1',
      ['--secret', `id=tok,src=${secretFile}`, '--secret', 'id=tok2,env=MY_TOKEN', '--secret', 'id=KILN_ID_SECRET'],
      env,
    );
    assert.equal(
      await ws.sh('secret:1', 'cat /h1 /h2 /h3'),
      `${sha(fileSecret)}\n${sha(envSecret)}\n${sha(idSecret)}\n`,
    );
    assert.equal(await ws.sh('secret:1', 'cat /m1 /m2 /m3 /m4'), '400:0:0\nno-file\n440:1:2\nskipped\n');
    const paths = await layerPaths('secret:1');
    assert.ok(
      !paths.some((p) => /run\/secrets\/|etc\/tok$/.test(p)),
      `secret mount points in a layer: ${paths.filter((p) => /secret|tok/.test(p)).join(' ')}`,
    );
    // History shows RUN as BuildKit writes it: the command, no mount flags, no secret.
    const hist = (await ws.inspect('secret:1')).History.map((h) => h.created_by);
    assert.ok(
      hist.includes(
        `RUN /bin/sh -c sh -c 'printf %s "$TOK" | sha256sum | cut -c1-64 > /h2; test ! -e /run/secrets/tok2 && echo no-file > /m2' # buildkit`,
      ),
      hist.join('\n'),
    );
    // Every file of the store — blobs (gunzipped too), configs, cache records, snapshots, cache
    // mounts — is searched for the secrets' bytes; a saved archive of the image as well.
    const needles = [fileSecret, envSecret, idSecret].map((s) => Buffer.from(s));
    // The search finds what is there (plain and gzipped): it is not vacuous.
    writeFileSync(path.join(ws.dir, 'control.gz'), gzipSync(Buffer.from(`x${envSecret}x`)));
    assert.deepEqual(filesContaining(ws.dir, needles).sort(), [path.join(ws.dir, 'control.gz'), secretFile].sort());
    rmSync(path.join(ws.dir, 'control.gz'));
    assert.deepEqual(filesContaining(ws.root, needles), []);
    const saved = path.join(ws.dir, 'secret-save.tar');
    const s = await ws.kiln(['save', '-o', saved, 'secret:1']);
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(filesContaining(saved, needles), []);
    // A rebuild hits the cache (the key holds no secret; a changed secret does not change it, as BuildKit).
    writeFileSync(secretFile, `${fileSecret}-changed`);
    const again = await ws.kiln(
      [
        'build',
        '-t',
        'secret:2',
        '--progress',
        'plain',
        '--secret',
        `id=tok,src=${secretFile}`,
        '--secret',
        'id=tok2,env=MY_TOKEN',
        '--secret',
        'id=KILN_ID_SECRET',
        ctx,
      ],
      { env },
    );
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /CACHED/);
  });

  test('type=secret,required with no such secret: an error naming the Dockerfile line', async () => {
    const ctx = ws.context('secret-req', {
      Dockerfile:
        'FROM debian-slim:bookworm\nRUN echo before\nRUN --mount=type=secret,id=needed,required cat /run/secrets/needed\n',
    });
    const r = await ws.kiln(['build', ctx]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Dockerfile:3.*secret "needed" is required but was not given/);
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
    const bad = await ws.kiln(['build', '--secret', `id=x,src=${path.join(ws.dir, 'no-such-file')}`, ctx]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /secret "x": cannot read/);
  });

  test("type=ssh forwards the caller's agent socket (SSH_AUTH_SOCK set in RUN)", async () => {
    const sock = path.join(ws.dir, 'agent.sock');
    let agent: ChildProcess | undefined;
    let server: net.Server | undefined;
    const haveAgent = spawnSync('sh', ['-c', 'command -v ssh-agent']).status === 0;
    if (haveAgent) {
      agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
      for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    } else {
      // No ssh-agent here: a socket that answers an identities request with an empty list, as an agent does.
      server = net.createServer((c) => c.once('data', () => c.end(Buffer.from([0, 0, 0, 5, 12, 0, 0, 0, 0]))));
      await new Promise<void>((r) => server!.listen(sock, r));
    }
    try {
      assert.ok(existsSync(sock), 'the agent socket is there');
      // Asks the agent for its identities (SSH2_AGENTC_REQUEST_IDENTITIES, 11) and prints the answer's type (12).
      const ask = (envVar: string) =>
        `perl -MIO::Socket::UNIX -e '$s=IO::Socket::UNIX->new(Peer=>$ENV{${envVar}}) or die "connect: $!"; print $s pack("NC",1,11); read($s,$l,4)==4 or die "short"; read($s,$b,unpack("N",$l)); print unpack("C",$b),"\\n"'`;
      const ctx = ws.context('ssh', {
        Dockerfile: [
          'FROM debian-slim:bookworm',
          `RUN --mount=type=ssh sh -c 'echo $SSH_AUTH_SOCK > /sock.txt; ${ask('SSH_AUTH_SOCK').replace(/'/g, `'"'"'`)} > /answer.txt'`,
          `RUN --mount=type=ssh,id=other,target=/tmp/other.sock,mode=0666 sh -c 'stat -c %a /tmp/other.sock > /mode.txt; AGENT=/tmp/other.sock ${ask('AGENT').replace(/'/g, `'"'"'`)} >> /answer.txt'`,
        ].join('\n'),
      });
      await ws.build(ctx, 'ssh:1', ['--ssh', 'default', '--ssh', `other=${sock}`], { SSH_AUTH_SOCK: sock });
      assert.equal(
        await ws.sh('ssh:1', 'cat /sock.txt /answer.txt /mode.txt'),
        '/run/buildkit/ssh_agent.0\n12\n12\n666\n',
      );
      assert.ok(!(await layerPaths('ssh:1')).some((p) => /ssh_agent|other\.sock/.test(p)));
      const req = ws.context('ssh-req', {
        Dockerfile: 'FROM debian-slim:bookworm\nRUN --mount=type=ssh,id=gone,required true\n',
      });
      const r = await ws.kiln(['build', req]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Dockerfile:2.*ssh agent "gone" is required/);
    } finally {
      agent?.kill();
      server?.close();
    }
  });
});
