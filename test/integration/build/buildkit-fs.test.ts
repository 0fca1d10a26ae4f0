/**
 * Differential tests of `kiln build` against a real BuildKit (Debian's dockerd with its own data
 * root, DOCKER_BUILDKIT=1): the same Dockerfile and context built by both, then the FINAL
 * FILESYSTEM (path, type, mode, owner, size, content hash, link target; the mtime of files copied
 * from the context) and the image config and history compared.
 *
 * The reference is Debian's docker.io 20.10, whose embedded Dockerfile frontend (BuildKit 0.8) does
 * not know heredocs, --link, --parents or --exclude and cannot fetch a newer one offline. Those are
 * checked against an equivalent Dockerfile in the syntax it knows (the files must come out the
 * same). Its COPY history omits --chown/--chmod, which current BuildKit writes (and kiln too): they
 * are dropped from kiln's lines before comparing. Deliberate differences are in
 * docs/dockerfile-differences.md and asserted at the end.
 *
 * One engine for the whole file; kiln's and BuildKit's builds of a case run at the same time.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  lstatSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { basesUnavailable } from '../../helpers/bases.js';
import { dockerdUnavailable, startDockerd, type Dockerd } from '../../helpers/dockerd.js';
import { readLayer, readSavedImage, type LayerEntry, type SavedImage } from '../../helpers/image-fs.js';
import { savedImage, Workspace } from './util.js';
import { configOf } from './compare.js';
import { needs } from '../../helpers/prereq.js';
import { cliPath } from '../../helpers/paths.js';

const skip = needs(dockerdUnavailable(), basesUnavailable());
const ws = new Workspace('kiln-bkfs-');
let d: Dockerd | undefined;

/** Every file and directory of a context gets this mtime: copied files must keep it in both images. */
const T0 = 981173106; // 2001-02-03

before(async () => {
  if (skip) return;
  const [engine] = await Promise.all([startDockerd(), ws.importDebian()]);
  d = engine;
  // The very same base in both: kiln's image, saved and loaded into docker.
  const tar = path.join(ws.dir, 'base.tar');
  const s = await ws.kiln(['save', '-o', tar, 'debian-slim:bookworm']);
  assert.equal(s.code, 0, s.stderr);
  const l = d.docker(['load', '-i', tar]);
  assert.equal(l.code, 0, l.stderr);
  rmSync(tar);
});
after(async () => {
  await d?.stop();
  rmSync(ws.dir, { recursive: true, force: true });
});

interface Case {
  name: string;
  files: Record<string, string>;
  /** Extra context setup: symlinks, modes, archives. */
  setup?: (dir: string) => void;
  dockerfile: string;
  /** The same build in the syntax Debian's BuildKit knows (fs and config must match; history is not compared). */
  reference?: string;
  buildArgs?: Record<string, string>;
}

function docker(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/docker', args, { env: d!.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-6000)));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

function stampTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (lstatSync(p).isDirectory()) stampTree(p);
    lutimesSync(p, T0, T0);
  }
  lutimesSync(dir, T0, T0);
}

/** Build a case with kiln and with BuildKit (at once); both images read back. */
async function buildBoth(c: Case): Promise<{ kiln: SavedImage; ref: SavedImage }> {
  const ctx = ws.context(`ctx-${c.name}`, { ...c.files, Dockerfile: c.dockerfile });
  c.setup?.(ctx);
  stampTree(ctx);
  const refFile = path.join(ws.dir, `${c.name}.reference.Dockerfile`);
  writeFileSync(refFile, c.reference ?? c.dockerfile);
  const args = Object.entries(c.buildArgs ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  const tag = `bkfs-${c.name}:1`;
  const [k, r] = await Promise.all([
    ws.kiln(['build', '-q', '-t', tag, ...args, ctx]),
    docker(['build', '-q', '--network', 'host', '-f', refFile, '-t', tag, ...args, ctx]),
  ]);
  assert.equal(r.code, 0, `BuildKit failed on ${c.name}: ${r.stderr}`);
  assert.equal(k.code, 0, `kiln failed on ${c.name}: ${k.stderr}`);
  const refTar = path.join(ws.dir, `${c.name}.docker.tar`);
  const s = d!.docker(['save', '-o', refTar, tag]);
  assert.equal(s.code, 0, s.stderr);
  try {
    return { kiln: await savedImage(ws, tag), ref: await readSavedImage(refTar) };
  } finally {
    rmSync(refTar, { force: true });
  }
}

/** Differences between the final filesystems, one line each (empty when they are the same). */
function fsDiff(kiln: SavedImage, ref: SavedImage): string[] {
  const out: string[] = [];
  const show = (
    e:
      | { type: string; mode: number; uid: number; gid: number; size: number; sha256?: string; linkname?: string }
      | undefined,
  ) =>
    e
      ? `${e.type} ${e.mode.toString(8)} ${e.uid}:${e.gid} size=${e.size}${e.sha256 ? ` sha=${e.sha256.slice(0, 12)}` : ''}${e.linkname ? ` -> ${e.linkname}` : ''}`
      : 'absent';
  for (const p of [...new Set([...kiln.fs.keys(), ...ref.fs.keys()])].sort()) {
    const a = kiln.fs.get(p);
    const b = ref.fs.get(p);
    if (show(a) !== show(b)) out.push(`${p}: kiln ${show(a)} | buildkit ${show(b)}`);
    // A file copied from the context keeps its mtime in both (directories: see the documented difference).
    else if (a?.type === 'file' && (a.mtime === T0) !== (b!.mtime === T0))
      out.push(`${p}: mtime kiln ${a.mtime} | buildkit ${b!.mtime}`);
  }
  return out;
}

/**
 * Every entry of kiln's layers (above the base) has its parent directory in the same layer, as
 * BuildKit's layers do: an unpacker makes a missing parent root-owned 0755, hiding the real one.
 */
function orphans(img: SavedImage): string[] {
  const out: string[] = [];
  img.layers.slice(1).forEach((layer, i) => {
    const have = new Set(layer.map((e) => e.path));
    for (const e of layer) {
      const dir = path.posix.dirname(e.path);
      if (dir !== '/' && !have.has(dir)) out.push(`layer ${i + 1}: ${e.path} without ${dir}`);
    }
  });
  return out;
}

/**
 * History as [created_by, entries in its layer (null: no layer)]. Normalized where Debian's old
 * BuildKit writes what current BuildKit (and kiln) no longer write: COPY without --chown/--chmod,
 * ARG with the declared rather than the resolved value, EXPOSE as a Go map, HEALTHCHECK as a Go
 * struct. Those lines keep the instruction and what it names.
 */
function historyOf(img: SavedImage): [string, number | null][] {
  let layer = 0;
  return (img.config.history ?? [])
    .map((h) => {
      let by = h.created_by ?? '';
      by = by.replace(/^((?:COPY|ADD)(?: --parents)?) (?:--chown=\S+ )?(?:--chmod=\S+ )?/, '$1 ');
      if (by.startsWith('ARG '))
        by = `ARG ${by
          .slice(4)
          .split(' ')
          .map((a) => a.split('=')[0])
          .join(' ')}`;
      if (by.startsWith('EXPOSE ')) by = `EXPOSE ${(by.match(/\d+\/(?:tcp|udp|sctp)/g) ?? []).sort().join(' ')}`;
      if (by.startsWith('HEALTHCHECK ')) by = 'HEALTHCHECK';
      return [by, h.empty_layer ? null : img.layers[layer++]!.length] as [string, number | null];
    })
    .slice(1);
}

/**
 * The same steps; a step with a layer in kiln has one in BuildKit. A step that changes nothing
 * (WORKDIR of an existing directory, a RUN that writes nothing) gets no layer in kiln where BuildKit
 * commits an empty one: documented.
 */
function historyDiff(kiln: SavedImage, ref: SavedImage): string[] {
  const a = historyOf(kiln);
  const b = historyOf(ref);
  const out: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const [ka, la] = a[i] ?? ['(none)', null];
    const [kb, lb] = b[i] ?? ['(none)', null];
    if (ka !== kb) out.push(`step ${i + 1}: kiln "${ka}" | buildkit "${kb}"`);
    else if ((la === null) !== (lb === null || lb === 0))
      out.push(`step ${i + 1} "${ka}": kiln layer ${la ?? 'none'} | buildkit layer ${lb ?? 'none'}`);
  }
  return out;
}

async function same(c: Case): Promise<{ kiln: SavedImage; ref: SavedImage }> {
  const imgs = await buildBoth(c);
  assert.deepEqual(fsDiff(imgs.kiln, imgs.ref), [], `${c.name}: final filesystems differ`);
  assert.deepEqual(orphans(imgs.kiln), [], `${c.name}: layer entries without their parent directory`);
  assert.deepEqual(configOf(imgs.kiln), configOf(imgs.ref), `${c.name}: config differs`);
  if (!c.reference) assert.deepEqual(historyDiff(imgs.kiln, imgs.ref), [], `${c.name}: history differs`);
  return imgs;
}

describe('kiln build against BuildKit: final filesystem, config, history', { skip }, () => {
  test('COPY rules: contents vs directory, trailing slash, several sources, wildcards, rename, symlinks followed, .dockerignore, --chown/--chmod, WORKDIR, USER', async () => {
    await same({
      name: 'copy',
      files: {
        'a.txt': 'a\n',
        'b.txt': 'bb\n',
        'dir/sub/y.txt': 'y\n',
        'ldir/f': 'f\n',
        'ldir/in/g': 'g\n',
        'app/node_modules/m/i.js': 'm\n',
        'app/src/s.js': 's\n',
        'app/src/keep.md': 'keep\n',
        'app/README.md': 'r\n',
        '.dockerignore': 'app/node_modules\n**/*.md\n!app/src/keep.md\n',
      },
      setup: (dir) => {
        mkdirSync(path.join(dir, 'dir', 'empty'));
        chmodSync(path.join(dir, 'b.txt'), 0o600);
        chmodSync(path.join(dir, 'ldir', 'in'), 0o700);
        chmodSync(path.join(dir, 'ldir', 'f'), 0o755);
        symlinkSync('a.txt', path.join(dir, 'link'));
        symlinkSync('ldir', path.join(dir, 'linkdir'));
        symlinkSync('../a.txt', path.join(dir, 'dir', 'up'));
      },
      dockerfile: [
        'FROM debian-slim:bookworm',
        'COPY dir /d1',
        'COPY dir /d2/',
        'COPY dir/ /d3',
        'COPY *.txt /t/',
        'COPY a.txt /renamed',
        'COPY a.txt b.txt /multi/',
        'COPY dir ldir /dirs',
        'COPY l* /wild/',
        'COPY b* /one-match',
        'COPY link /links/',
        'COPY link /linkfile',
        'COPY linkdir /ld/',
        'COPY linkdir/f /x',
        'COPY linkdir/in /y',
        'COPY . /all/',
        'COPY app /app2',
        'COPY a.txt /usr/local/bin',
        'COPY a.txt /lib/x.txt',
        'COPY ldir /etc/',
        'COPY ldir/f /var/run/lock/f2',
        'COPY ./ldir/./f ../../f3',
        'RUN useradd -u 1234 app && mkdir -p /pre/in && chmod 711 /pre /pre/in && chown 5:5 /pre/in',
        'COPY ldir /pre',
        'COPY ldir/in /pre/in/',
        'COPY --chown=app:app a.txt /own/a',
        'COPY --chown=app a.txt /own/b',
        'COPY --chown=1234 a.txt /own/c',
        'COPY --chown=7:8 a.txt /own2/x/d',
        'COPY --chown=100:200 ldir /chowned',
        // Into an existing directory: Debian's BuildKit (0.8) makes a missing destination 0755,
        // current BuildKit (and kiln) with --chmod's mode (test/unit/engine/copy.test.ts).
        'RUN mkdir /cm',
        'COPY --chmod=0700 dir /cm',
        'COPY --chmod=0640 ldir/f /chm',
        'WORKDIR rel/wd',
        'USER app',
        'WORKDIR /home/app/x',
        'RUN touch mine && mkdir -p sub',
        '',
      ].join('\n'),
    });
  });

  test('stages and archives: COPY --from a stage (name, index) and an image keeps owners; links followed; ADD unpacks tars; RUN deletions and replacements; config instructions', async () => {
    await same({
      name: 'stages',
      files: { 'src/pkg/file.txt': 'inside\n', 'src/pkg/sub/s': 's\n', 'ctxdir/x': 'x\n' },
      setup: (dir) => {
        symlinkSync('file.txt', path.join(dir, 'src', 'pkg', 'l'));
        const tar = (file: string, ...flags: string[]) =>
          assert.equal(
            spawnSync('tar', ['-c', ...flags, '-f', path.join(dir, file), '-C', path.join(dir, 'src'), 'pkg']).status,
            0,
          );
        tar('t.tar.gz', '-z', '--owner=1000', '--group=1000');
        tar('t.tar.bz2', '-j');
        tar('t.tar.xz', '-J');
        tar('t.tar');
        // A gzip file that is no tar: ADD copies it as it is.
        assert.equal(spawnSync('sh', ['-c', `echo notatar | gzip > ${path.join(dir, 'lone.gz')}`]).status, 0);
      },
      dockerfile: [
        'FROM debian-slim:bookworm AS builder',
        'RUN useradd -u 1500 -m bob && mkdir -p /out/deep && echo built > /out/deep/b.txt && chown -R bob:bob /out && chmod 0750 /out/deep && ln -s deep/b.txt /out/lnk',
        'RUN echo lib > /usr/lib/libfake.so.1 && ln -s libfake.so.1 /usr/lib/libfake.so && mkdir -p /usr/local/lib/app && echo x > /usr/local/lib/app/x && chmod 0775 /usr/local/lib && chown 1500 /usr/local/bin',
        'FROM debian-slim:bookworm AS second',
        'COPY --from=builder /out /o1',
        'COPY --from=builder /out/ /o2/',
        'COPY --from=0 /out/deep/b.txt /o3',
        'COPY --from=builder /usr/lib/libfake.so /libs/',
        'COPY --from=builder /out/lnk /o4',
        'COPY --from=debian-slim:bookworm /etc/os-release /o5/',
        'COPY --from=builder /usr/local /usr/local',
        'ADD t.tar.gz /gz/',
        'ADD --chmod=0640 t.tar.gz /gzmod/',
        'ADD t.tar.bz2 /bz',
        'ADD t.tar.xz t.tar /multi/',
        'ADD lone.gz /lone/',
        'ADD ctxdir /addctx',
        'RUN rm -rf /usr/share/doc /var/cache/debconf && rm /etc/debian_version && mkdir /etc/debian_version && rm -rf /usr/share/man && echo f > /usr/share/man && touch /etc/passwd-new && chmod 600 /etc/issue && rm -rf /gz/pkg/sub',
        'RUN rm /o3 && echo again > /o1/deep/b.txt && echo hi > /newfile && ln /newfile /hard',
        'FROM second',
        'ENV A=1 B="two words"',
        'LABEL org.example=yes other="x y"',
        'EXPOSE 8000 53/udp',
        'VOLUME /data',
        'STOPSIGNAL SIGINT',
        'HEALTHCHECK --interval=5s --retries=2 CMD curl -f http://localhost/ || exit 1',
        'SHELL ["/bin/bash", "-c"]',
        'RUN echo "$BASH_VERSION" > /bashver',
        'ENTRYPOINT ["/bin/echo"]',
        '',
      ].join('\n'),
    });
  });

  test('users, groups and WORKDIR owners; ARGs in RUN and history; ENTRYPOINT/CMD inheritance across stages', async () => {
    await same({
      name: 'users',
      files: { a: 'a\n', 'd/b': 'b\n' },
      buildArgs: { OTHER: 'cli' },
      dockerfile: [
        'ARG VER=1.0',
        'FROM debian-slim:bookworm AS base',
        'ARG VER',
        'ARG OTHER=o',
        'RUN groupadd -g 2000 grp && useradd -u 1600 -g grp -m alice && useradd -u 1700 -U bob && echo "$VER $OTHER" > /ver',
        'ENTRYPOINT ["/bin/sh", "-c"]',
        'CMD ["echo base"]',
        'WORKDIR /srv',
        'USER alice',
        'WORKDIR data/sub',
        'RUN touch f && mkdir g && ln -s f lf',
        'COPY a d ./',
        'COPY --chown=alice a /own/alice',
        'COPY --chown=bob:grp a /own/bobgrp',
        'COPY --chown=alice:0 a /own/alice0',
        'COPY --chown=1700:2000 d /own/numdir',
        'USER 1700:2000',
        'WORKDIR /numeric',
        'USER 4242',
        'WORKDIR /nouser',
        'RUN id > /nouser/id.txt',
        'USER root',
        'RUN chown -R 4242 /srv/data && chmod -R g+w /srv',
        'FROM base AS child',
        'CMD ["child"]',
        'FROM base AS child2',
        'ENTRYPOINT echo shell form',
        'FROM child',
        'ENV X=1',
        '',
      ].join('\n'),
    });
    await same({
      name: 'entrypoint',
      files: {},
      dockerfile: [
        'FROM debian-slim:bookworm AS base',
        'CMD ["from-base"]',
        'FROM base',
        'ENTRYPOINT echo shell form',
        '',
      ].join('\n'),
    });
  });

  test("syntax Debian's BuildKit lacks (heredocs, --link, --parents, --exclude) gives the files its equivalent gives", async () => {
    const files = {
      'a.txt': 'hello\n',
      'src/x/f.txt': '1\n',
      'src/y/f.txt': '2\n',
      'src/y/g.md': '3\n',
      'hello.txt': 'hello world\n',
    };
    for (const dir of ['dir2', 'dir2ex'])
      Object.assign(files, { [`${dir}/keep.txt`]: 'k\n', [`${dir}/sub/s.txt`]: 's\n' });
    Object.assign(files, { 'dir2/doc.md': 'm\n', 'dir2/sub/skip': 'skip\n' });
    await same({
      name: 'modern',
      files,
      dockerfile: [
        'FROM debian-slim:bookworm',
        'ARG NAME=world',
        'COPY --link a.txt /linked/',
        'COPY --link --chmod=0755 a.txt /usr/local/bin/tool',
        'COPY --parents src/*/f.txt /p/',
        'COPY --exclude=*.md --exclude=sub/skip dir2 /ex/',
        'COPY <<EOF /h/hello.txt',
        'hello $NAME',
        'EOF',
        'RUN <<EOF',
        'echo hi > /h/run',
        'EOF',
        '',
      ].join('\n'),
      reference: [
        'FROM debian-slim:bookworm',
        'ARG NAME=world',
        'COPY a.txt /linked/',
        'COPY --chmod=0755 a.txt /usr/local/bin/tool',
        'COPY src/x/f.txt /p/src/x/',
        'COPY src/y/f.txt /p/src/y/',
        'COPY dir2ex /ex/',
        'RUN mkdir /h && echo "hello $NAME" > /h/hello.txt',
        'RUN echo hi > /h/run',
        '',
      ].join('\n'),
    });
  });

  test('optional sources (a wildcard matching nothing), directories .dockerignore empties, WORKDIR as written, ENV replaced in place', async () => {
    await same({
      name: 'fidelity',
      files: {
        'a.txt': 'a\n',
        'ign/f1': '1\n',
        'ign/sub/f2': '2\n',
        'ign2/x': 'x\n',
        'ign3/deep/y': 'y\n',
        'docs/only.md': 'm\n',
        'docs/sub/also.md': 'm\n',
        'mixed/keep.txt': 'k\n',
        'mixed/drop.log': 'd\n',
        'reinc/a': 'a\n',
        'reinc/keep': 'k\n',
        'whole/a': 'a\n',
        'whole/keep': 'k\n',
        'whole2/sub/keep': 'k\n',
        'whole2/sub/no': 'n\n',
        'whole2/other/no': 'n\n',
        '.dockerignore':
          'ign/*\nign2/**\nign3/deep/*\n**/*.md\nmixed/*.log\nreinc/*\n!reinc/keep\nwhole\n!whole/keep\nwhole2\n!whole2/sub/keep\n',
      },
      dockerfile: [
        'FROM debian-slim:bookworm',
        'ENV A=1 B=2',
        'COPY nomatch* a.txt /g1/',
        'COPY package*.json yarn.lock* /g2/',
        'COPY package*.json ./',
        'COPY . /all/',
        'COPY ign /ign-itself',
        'COPY docs /docs-itself/',
        'WORKDIR /w2/',
        'RUN pwd > /pwd1',
        'WORKDIR rel/',
        'RUN pwd > /pwd2',
        'WORKDIR /x//y/.',
        'ENV A=changed PATH=/x:$PATH HOME=/h C=3',
        'ENV B=again',
        '',
      ].join('\n'),
    });
  });

  test("kiln's umask does not leak: cache mount mode= as given (BuildKit; dockerd's own BuildKit applies its umask 022), directories an archive implies are 0755", async () => {
    // BuildKit's daemon clears its umask, so mode=0770 makes a 0770 directory; the BuildKit inside
    // dockerd runs under dockerd's umask 022 and makes 0750 (moby/moby#48258, moby/buildkit#6801:
    // "dockerd sets the umask of the process to 022 and buildkit clears the umask"). kiln follows
    // BuildKit, under any umask of its own: this kiln runs under 027.
    const ctx = ws.context('cache-mode', {
      'src/p/q/f': 'f\n',
      Dockerfile:
        'FROM debian-slim:bookworm\nRUN --mount=type=cache,id=cm,target=/cache,mode=0770 --mount=type=cache,id=cm2,target=/c2,mode=0777,uid=5 stat -c %a /cache /c2 > /modes\nADD nodirs.tar /u/\n',
    });
    // An archive with a file and no entries for its directories: the unpacker makes them.
    assert.equal(
      spawnSync('tar', ['--no-recursion', '-cf', path.join(ctx, 'nodirs.tar'), '-C', path.join(ctx, 'src'), 'p/q/f'])
        .status,
      0,
    );
    const old = process.umask(0o027);
    let k: Awaited<ReturnType<typeof ws.kiln>>;
    let r: { code: number; stderr: string };
    try {
      [k, r] = await Promise.all([
        ws.kiln(['build', '-q', '-t', 'cache-mode:1', ctx]),
        docker(['build', '-q', '--network', 'host', '-t', 'cache-mode:1', ctx]),
      ]);
    } finally {
      process.umask(old);
    }
    assert.equal(k.code, 0, k.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await ws.sh('cache-mode:1', 'cat /modes'), '770\n777\n');
    const modes = 'stat -c "%n %a %u:%g" /u /u/p /u/p/q /u/p/q/f';
    const unpacked = d!.docker(['run', '--rm', '--network', 'host', 'cache-mode:1', 'sh', '-c', modes]);
    assert.equal(unpacked.stdout, '/u 755 0:0\n/u/p 755 0:0\n/u/p/q 755 0:0\n/u/p/q/f 644 0:0\n', 'BuildKit');
    assert.equal(await ws.sh('cache-mode:1', modes), unpacked.stdout, 'kiln as BuildKit');
    const ref = d!.docker(['run', '--rm', '--network', 'host', 'cache-mode:1', 'cat', '/modes']);
    assert.equal(
      ref.stdout,
      '750\n755\n',
      "dockerd's BuildKit applies its umask 022 (if this changes, the reference has caught up)",
    );
  });

  test('outputs of files, not an image: -o type=local,dest=DIR (and -o DIR), type=tar,dest=FILE, -o - (stdout), with --target artifacts', async () => {
    const ctx = ws.context('outputs', {
      'a.txt': 'a\n',
      'old/keep.txt': 'k\n',
      Dockerfile: [
        'FROM debian-slim:bookworm AS build',
        'RUN mkdir -p /wheels/sub && echo w > /wheels/x.whl && chown 1000:1000 /wheels/x.whl && chmod 600 /wheels/x.whl && ln -s x.whl /wheels/link && echo y > /wheels/sub/y && chmod 750 /wheels/sub && echo gone > /wheels/gone',
        'RUN rm /wheels/gone',
        'FROM scratch AS artifacts',
        'COPY --from=build /wheels /',
        'COPY a.txt /',
        'FROM debian-slim:bookworm',
        'RUN echo not-the-target > /x',
        '',
      ].join('\n'),
    });
    stampTree(ctx);
    const out = (name: string) => path.join(ws.dir, name);
    // A directory that exists: what is in it stays unless the output has its path.
    for (const dir of [out('k-merge'), out('d-merge')]) {
      mkdirSync(path.join(dir, 'sub'), { recursive: true });
      writeFileSync(path.join(dir, 'mine.txt'), 'mine\n');
      writeFileSync(path.join(dir, 'a.txt'), 'replaced\n');
      writeFileSync(path.join(dir, 'sub', 'also-mine'), 'm\n');
    }
    const runs = await Promise.all([
      ws.kiln(['build', '-q', '--target', 'artifacts', '-o', `type=local,dest=${out('k-local')}`, ctx]),
      docker([
        'build',
        '-q',
        '--network',
        'host',
        '--target',
        'artifacts',
        '-o',
        `type=local,dest=${out('d-local')}`,
        ctx,
      ]),
      ws.kiln(['build', '-q', '--target', 'artifacts', '-o', `type=tar,dest=${out('k.tar')}`, ctx]),
      docker(['build', '-q', '--network', 'host', '--target', 'artifacts', '-o', `type=tar,dest=${out('d.tar')}`, ctx]),
      ws.kiln(['build', '-q', '--target', 'artifacts', '-o', out('k-merge'), ctx]),
      docker(['build', '-q', '--network', 'host', '--target', 'artifacts', '-o', out('d-merge'), ctx]),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    assert.equal((runs[0] as { stdout: string }).stdout, '', 'no image ID: the files are the output');
    // Both directories' files as tar entries (tar of the directory, then read as a layer).
    const entriesOf = async (file: string, fromDir?: string): Promise<string[]> => {
      let tarFile = file;
      if (fromDir) {
        tarFile = `${fromDir}.as.tar`;
        assert.equal(spawnSync('tar', ['-cf', tarFile, '-C', fromDir, '.']).status, 0);
      }
      const show = (e: LayerEntry) =>
        `${e.path} ${e.type} ${e.mode.toString(8)} ${e.uid}:${e.gid} size=${e.size}${e.sha256 ? ` ${e.sha256.slice(0, 12)}` : ''}${e.linkname ? ` -> ${e.linkname}` : ''}${e.type === 'file' && e.mtime === T0 ? ' T0' : ''}`;
      return (await readLayer(tarFile))
        .filter((e) => e.path !== '/')
        .map(show)
        .sort();
    };
    const kLocal = await entriesOf('', out('k-local'));
    assert.deepEqual(
      kLocal,
      await entriesOf('', out('d-local')),
      'type=local: the same files, modes, owners (the user building), link targets, context mtimes',
    );
    assert.ok(
      kLocal.some((l) => l.startsWith('/x.whl file 600 0:0')),
      kLocal.join('\n'),
    );
    assert.ok(!kLocal.some((l) => l.startsWith('/gone')), 'a file deleted in the stage is not there');
    assert.equal(
      statSync(out('k-local')).mode & 0o777,
      statSync(out('d-local')).mode & 0o777,
      "a directory made for the output has docker's mode (0700)",
    );
    assert.deepEqual(
      await entriesOf(out('k.tar')),
      await entriesOf(out('d.tar')),
      "type=tar: the same entries, the image's owners",
    );
    assert.ok((await entriesOf(out('k.tar'))).some((l) => l.startsWith('/x.whl file 600 1000:1000')));
    assert.deepEqual(
      await entriesOf('', out('k-merge')),
      await entriesOf('', out('d-merge')),
      'an existing directory: merged as BuildKit merges',
    );
    assert.equal(readFileSync(path.join(out('k-merge'), 'mine.txt'), 'utf8'), 'mine\n');
    assert.equal(readFileSync(path.join(out('k-merge'), 'a.txt'), 'utf8'), 'a\n');
    assert.ok(existsSync(path.join(out('k-merge'), 'sub', 'also-mine')));
    // -o - : the tar on stdout (stdout is the tar only: no image ID).
    const piped = spawnSync(process.execPath, [cliPath, 'build', '-q', '--target', 'artifacts', '-o', '-', ctx], {
      env: { ...process.env, KILN_ROOT: ws.root },
      maxBuffer: 1 << 26,
    });
    assert.equal(piped.status, 0, piped.stderr?.toString());
    writeFileSync(out('k-stdout.tar'), piped.stdout);
    assert.deepEqual(await entriesOf(out('k-stdout.tar')), await entriesOf(out('d.tar')));
    // Usage errors.
    const bad = await ws.kiln(['build', '-o', 'type=local,dest=-', ctx]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /type=local needs a directory/);
    const json = await ws.kiln(['build', '--progress', 'json', '-o', '-', ctx]);
    assert.equal(json.code, 2);
    assert.match(json.stderr, /--progress json writes to stdout/);
  });

  test('RUN sandbox flags: --add-host as BuildKit (its lines last in /etc/hosts); --shm-size and --ulimit as documented; all three in the cache key', async () => {
    // Debian's BuildKit (0.8) takes --add-host; --shm-size and --ulimit reach BuildKit's RUN from
    // docker 23 (BuildKit 0.11) on ("--shm-size: size of /dev/shm", "--ulimit: ulimit options",
    // docs.docker.com/reference/cli/docker/buildx/build/); the old one ignores them.
    const ctx = ws.context('sandbox-flags', {
      Dockerfile:
        "FROM debian-slim:bookworm\nRUN tail -2 /etc/hosts > /hosts && df -k /dev/shm | tail -1 | awk '{print $2}' > /shm && (ulimit -Sn; ulimit -Hn) > /ul\n",
    });
    const flags = [
      '--add-host',
      'myhost:10.1.2.3',
      '--add-host',
      'other:10.9.9.9',
      '--shm-size',
      '128m',
      '--ulimit',
      'nofile=1024:2048',
    ];
    const [k, r] = await Promise.all([
      ws.kiln(['build', '-q', '-t', 'sandbox-flags:1', ...flags, ctx]),
      docker(['build', '-q', '--network', 'host', '-t', 'sandbox-flags:1', ...flags, ctx]),
    ]);
    assert.equal(k.code, 0, k.stderr);
    assert.equal(r.code, 0, r.stderr);
    const ref = d!.docker(['run', '--rm', '--network', 'host', 'sandbox-flags:1', 'cat', '/hosts']);
    assert.equal(ref.stdout, '10.1.2.3\tmyhost\n10.9.9.9\tother\n', 'BuildKit');
    assert.equal(await ws.sh('sandbox-flags:1', 'cat /hosts'), ref.stdout, 'kiln as BuildKit');
    assert.equal(await ws.sh('sandbox-flags:1', 'cat /shm /ul'), '131072\n1024\n2048\n');
    // Another value of any of them runs RUN again; the same ones hit the cache.
    const step = async (extra: string[]) => {
      const b = await ws.kiln(['build', '--progress', 'plain', ...extra, ctx]);
      assert.equal(b.code, 0, b.stderr);
      return /#\d+ CACHED/.test(b.stderr) ? 'cached' : 'ran';
    };
    assert.equal(await step(flags), 'cached');
    assert.equal(await step(['--add-host', 'myhost:10.1.2.4']), 'ran');
    assert.equal(await step([...flags.slice(0, 4), '--shm-size', '256m', ...flags.slice(6)]), 'ran');
    assert.equal(await step([...flags.slice(0, 6), '--ulimit', 'nofile=1000:2048']), 'ran');
  });

  test('COPY and WORKDIR destinations read from the layers (no view): whiteouts, opaque directories, links in and out of the root, --chown/--chmod, WORKDIR through a link', async () => {
    await same({
      name: 'layered-dest',
      files: { 'a.txt': 'a\n' },
      dockerfile: [
        'FROM debian-slim:bookworm',
        'RUN mkdir -p /data/old /keep/sub /w/in /afile.d && echo x > /data/old/f && touch /w/in/f /afile && ln -s /keep /abslink && ln -s ../../../../keep /uplink && ln -s keep/sub /rellink && chmod 750 /keep/sub && chown 5:6 /keep/sub',
        // /data opaque (replaced whole), /w and /afile.d whiteouts
        'RUN rm -rf /data /w /afile.d && mkdir -p /data/new',
        'COPY a.txt /data/old/',
        'COPY a.txt /w/in/',
        'COPY a.txt /afile.d',
        'COPY a.txt /abslink/viaabs',
        'COPY a.txt /uplink/viaup',
        'COPY a.txt /rellink/',
        // (--chmod into an existing directory: Debian's BuildKit makes missing parents 0755, kiln
        // as current BuildKit with --chmod's mode, a documented difference)
        'COPY --chown=7:8 --chmod=0640 a.txt /keep/sub/x',
        'COPY --chown=7:8 a.txt /keep/sub/deep/',
        'WORKDIR /rellink/wd',
        'COPY a.txt in-wd',
        'WORKDIR /abslink/sub',
        'COPY a.txt .',
        'WORKDIR /data/new/made',
        'USER 5:6',
        'WORKDIR /w/owned',
        '',
      ].join('\n'),
    });
  });

  test('errors both builders give: a missing source, a link out of the context or to nothing', async () => {
    const bad: [string, Record<string, string>, (dir: string) => void, string, RegExp][] = [
      ['missing', {}, () => undefined, 'FROM debian-slim:bookworm\nCOPY nope.txt /\n', /"nope\.txt" not found/],
      [
        'escape',
        {},
        (dir) => symlinkSync('/etc/passwd', path.join(dir, 'abslink')),
        'FROM debian-slim:bookworm\nCOPY abslink /x\n',
        /"abslink" is a symbolic link to "\/etc\/passwd", which is not found/,
      ],
      [
        'dangling',
        {},
        (dir) => symlinkSync('nowhere', path.join(dir, 'dangling')),
        'FROM debian-slim:bookworm\nCOPY dangling /x\n',
        /"dangling" is a symbolic link to "\/nowhere"/,
      ],
    ];
    for (const [name, files, setup, text, message] of bad) {
      const ctx = ws.context(`bad-${name}`, { ...files, Dockerfile: text });
      setup(ctx);
      const [k, r] = await Promise.all([
        ws.kiln(['build', '-q', ctx]),
        docker(['build', '-q', '--network', 'host', ctx]),
      ]);
      assert.notEqual(r.code, 0, `BuildKit refuses ${name}`);
      assert.equal(k.code, 1, `kiln refuses ${name}: ${k.stdout}`);
      assert.match(k.stderr, /Dockerfile:2:1: /, name);
      assert.match(k.stderr, message, name);
    }
  });
});

describe('documented differences (docs/dockerfile-differences.md)', { skip: needs(basesUnavailable()) }, () => {
  before(async () => {
    if (skip) await ws.importDebian();
  });

  test('directories copied from the context keep their mtime; --link does not resolve the destination in the image; a step that changes nothing adds no layer; ADD --chown of an archive; several files need a directory destination', async () => {
    const ctx = ws.context('diff-doc', {
      'dir/sub/f': 'f\n',
      'a.txt': 'a\n',
      'b.txt': 'b\n',
      Dockerfile:
        'FROM debian-slim:bookworm\nCOPY dir /d\nCOPY --link a.txt /usr/local/bin\nCOPY --link a.txt /var/run/x.txt\nWORKDIR /tmp\nRUN true\n',
    });
    stampTree(ctx);
    await ws.build(ctx, 'diff-doc:1');
    const img = await savedImage(ws, 'diff-doc:1');
    assert.equal(img.fs.get('/d/sub')?.mtime, T0, 'a copied directory keeps the mtime it has in the context');
    assert.equal(img.fs.get('/d/sub/f')?.mtime, T0);
    // --link copies onto an empty root (BuildKit's reference, "Incompatibilities with --link=false"):
    // the image's directory or symlink at the destination is not looked at.
    assert.equal(img.fs.get('/usr/local/bin')?.type, 'file', '--link: no existing directory to copy into');
    assert.equal(img.fs.get('/var/run')?.type, 'directory', '--link: a symlinked parent is not followed');
    assert.equal(img.fs.get('/var/run/x.txt')?.type, 'file');
    assert.equal(img.fs.get('/run/x.txt'), undefined);
    const hist = (img.config.history ?? []).slice(-2);
    assert.deepEqual(
      hist.map((h) => [h.created_by, h.empty_layer ?? false]),
      [
        ['WORKDIR /tmp', true],
        ['RUN /bin/sh -c true # buildkit', true],
      ],
    );
    assert.equal(img.layers.length, 4, 'base and three COPY layers, no empty ones');
    // Not a difference from current BuildKit (0.23 and later): ADD --chown applies to an archive's
    // members. Debian's BuildKit keeps the archive's owners.
    const tgz = ws.context('diff-add-chown', {
      'pkg/f': 'f\n',
      Dockerfile: 'FROM debian-slim:bookworm\nADD --chown=1500:1600 --chmod=0600 pkg.tar.gz /opt/\n',
    });
    assert.equal(
      spawnSync('tar', ['-czf', path.join(tgz, 'pkg.tar.gz'), '--owner=1000', '--group=1000', '-C', tgz, 'pkg']).status,
      0,
    );
    await ws.build(tgz, 'diff-add-chown:1');
    const added = await savedImage(ws, 'diff-add-chown:1');
    assert.deepEqual(
      [added.fs.get('/opt/pkg')?.uid, added.fs.get('/opt/pkg')?.gid, added.fs.get('/opt/pkg')?.mode],
      [1500, 1600, 0o755],
      'owner from --chown, mode from the archive',
    );
    assert.deepEqual([added.fs.get('/opt/pkg/f')?.uid, added.fs.get('/opt/pkg/f')?.mode], [1500, 0o644]);
    const many = await ws.kiln([
      'build',
      '-q',
      ws.context('diff-many', {
        'a.txt': 'a',
        'b.txt': 'b',
        Dockerfile: 'FROM debian-slim:bookworm\nCOPY a.txt b.txt /file\n',
      }),
    ]);
    assert.equal(many.code, 1);
    assert.match(
      many.stderr,
      /Dockerfile:2:1: when using COPY with more than one source file, the destination must be a directory and end with a \//,
    );
  });
});
