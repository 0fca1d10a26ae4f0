/** `kiln build`: a Dockerfile and a context → an image, with docker build's flags. */
import { push, closeIdleConnections, RegistryClient, type ClientOptions } from '../../registry/index.js';
import {
  transferView,
  isProgressMode,
  progressDisplay,
  progressError,
  resolveProgressMode,
  PROGRESS_MODES,
} from '../../ui/index.js';
import { clientOptionsFrom, type RegistryFlags } from '../registry-options.js';
import {
  parseCacheSpec,
  RegistryCacheSink,
  RegistryCacheSource,
  type CacheSink,
  type CacheSource,
  type CacheSpec,
} from '../../cache/index.js';
import type { Command } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  build,
  parseSecretFlag,
  parseSshFlag,
  parseBuildContextFlag,
  isRemoteContext,
  prepareRemoteContext,
  type PreparedContext,
} from '../../engine/index.js';
import { saveImagesToFile, writeFilesystemOutput, type FilesystemOutput } from '../../archive/index.js';
import { normalizeImageName, type Compression } from '../../image/index.js';
import { parseCompression, validLevel } from '../../store/index.js';
import { KilnError } from '../../util/index.js';
import { readDockerfileInput, type DockerfileInput } from '../dockerfile-input.js';
import { checkDirective, lintDockerfile, RULES, type LintFinding, formatLintText } from '../../analyze/index.js';
import { parseDockerfile } from '../../dockerfile/index.js';
import { createPlan, formatOutline, formatTargets, listTargets, outline } from '../../plan/index.js';
import { collect, parseAddHost, parseByteSize, parseKeyValues, parseUlimit } from '../options.js';
import { openStoreFromCli } from '../store.js';

interface BuildFlags extends RegistryFlags {
  file?: string;
  tag?: string[];
  buildArg?: string[];
  target?: string;
  /** commander's --no-cache sets cache=false */
  cache?: boolean;
  /** --no-cache-filter: commander names a `--no-…` option after what follows `no-` (true when not given). */
  cacheFilter?: string[] | boolean;
  cacheFrom?: string[];
  cacheTo?: string[];
  pull?: boolean;
  network: string;
  label?: string[];
  platform: string;
  iidfile?: string;
  quiet?: boolean;
  progress: string;
  output?: string;
  push?: boolean;
  snapshotter?: string;
  backend?: string;
  sourceDateEpoch?: string;
  secret?: string[];
  ssh?: string[];
  buildContext?: string[];
  addHost?: string[];
  shmSize?: string;
  ulimit?: string[];
  call?: string;
  check?: boolean;
}

/** --cache-from / --cache-to: registry cache sources and sinks sharing one registry client. */
function registryCache(
  specs: { from: CacheSpec[]; to: CacheSpec[] },
  opts: ClientOptions,
  warn: (message: string) => void,
): { cacheFrom?: CacheSource[]; cacheTo?: CacheSink[] } {
  if (!specs.from.length && !specs.to.length) return {};
  const client = new RegistryClient(opts);
  return {
    cacheFrom: specs.from.map((s) => new RegistryCacheSource(s.ref, client, warn)),
    cacheTo: specs.to.map((s) => new RegistryCacheSink(s.ref, s.mode, client, { ignoreError: s.ignoreError, warn })),
  };
}

export function register(program: Command): Command {
  return program
    .command('build')
    .description('build an image from a Dockerfile and a context directory')
    .argument(
      '<context>',
      'build context: a directory, a git repository (https://host/repo.git#ref:subdir, git@host:repo.git), an http(s) URL of a tarball or of a Dockerfile, or - (a tar of the context, or a Dockerfile, on stdin)',
    )
    .option('-f, --file <file>', 'Dockerfile ("-" reads stdin; default CONTEXT/Dockerfile)')
    .option('-t, --tag <name:tag>', 'name the image (repeatable)', collect)
    .option('--build-arg <key=value>', 'set a build-time variable (repeatable)', collect)
    .option('--target <stage>', 'build this stage (and what it needs) only')
    .option('--no-cache', 'do not use the build cache: run every step (results are still recorded for later builds)')
    .option(
      '--no-cache-filter <stages>',
      'do not use the build cache for these stages (names or indexes, comma-separated; repeatable)',
      (v: string, prev: unknown) => [...(Array.isArray(prev) ? (prev as string[]) : []), v],
    )
    .option(
      '--cache-from <spec>',
      'also take build-cache records from a registry: type=registry,ref=REF (or just REF); repeatable',
      collect,
    )
    .option(
      '--cache-to <spec>',
      'export the build cache to a registry: type=registry,ref=REF[,mode=min|max][,ignore-error=true] (min: the final stage line, max: every stage)',
      collect,
    )
    .option(
      '--pull',
      'always look for newer versions of the images the build reads (FROM, COPY --from) on their registries',
    )
    .option('--network <mode>', 'network for RUN steps: host or none', 'host')
    .option('--label <key=value>', 'set a label on the image (repeatable)', collect)
    .option('--platform <os/arch>', 'target platform', 'linux/amd64')
    .option('--iidfile <file>', 'write the image ID to this file')
    .option('-q, --quiet', 'print only the image ID (no progress)')
    .option(
      '--progress <mode>',
      `progress display: ${PROGRESS_MODES.join(', ')} (auto: tty on a terminal, else plain; json: JSON lines on stdout, see docs/progress-json.md)`,
      'auto',
    )
    .option(
      '-o, --output <spec>',
      "type=store (default), type=docker,dest=FILE, type=oci,dest=FILE, type=registry[,name=REF] (push); compression=uncompressed|gzip|zstd[,compression-level=N][,force-compression=true]; or the final stage's files, not an image: type=local,dest=DIR (or just DIR), type=tar,dest=FILE (dest=- or just -: stdout)",
    )
    .option(
      '--push',
      'push the image to its registry (-t names it): --output type=registry, as docker buildx build --push',
    )
    .option('--snapshotter <kind>', 'overlay or native (default: overlay when it can be mounted)')
    .option(
      '--backend <kind>',
      'oci, chroot or bare (chroot alone, no namespaces: unprivileged containers) (default: oci when a runtime works, else chroot, else bare)',
    )
    .option('--insecure-registry <host>', 'allow plain HTTP and unverified TLS for this registry (repeatable)', collect)
    .option('--tls-verify [bool]', 'verify registry TLS certificates (default true)')
    .option('--cert-dir <dir>', 'per-registry CA certificates (default /etc/docker/certs.d)')
    .option('--source-date-epoch <seconds>', 'pin timestamps for reproducible images (default: $SOURCE_DATE_EPOCH)')
    .option(
      '--secret <spec>',
      'a secret for RUN --mount=type=secret: id=ID[,src=FILE|,env=VAR] (only id: the variable ID if set, else the file ID); repeatable',
      collect,
    )
    .option(
      '--build-context <name=value>',
      'a named context for FROM NAME, COPY --from=NAME, RUN --mount from=NAME (it also replaces an image or a stage of that name): NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG|@DIGEST]; repeatable',
      collect,
    )
    .option(
      '--call <request>',
      "answer without building, as BuildKit's subrequests: build (default), check (BuildKit's build checks: kiln lint's with BuildKit's names; exit 1 when any), outline (the target's build args, secrets, ssh), targets (the stages)",
    )
    .option('--check', 'shorthand for --call=check')
    .option('--add-host <name:ip>', 'add a line to /etc/hosts of RUN steps (repeatable)', collect)
    .option('--shm-size <size>', 'size of /dev/shm for RUN steps (e.g. 128m, 1g; default 64m)')
    .option(
      '--ulimit <name=soft[:hard]>',
      'a resource limit for RUN steps, e.g. nofile=1024:2048 (repeatable)',
      collect,
    )
    .option(
      '--ssh <spec>',
      'an SSH agent for RUN --mount=type=ssh: ID[=SOCKET] ("default": $SSH_AUTH_SOCK); repeatable',
      collect,
    )
    .action(async (context: string, f: BuildFlags, cmd: Command) => {
      if (f.network !== 'host' && f.network !== 'none' && f.network !== 'default')
        throw new KilnError('USAGE', `unknown --network "${f.network}": use host or none`);
      if (f.platform !== 'linux/amd64' && f.platform !== 'linux/x86_64')
        throw new KilnError('USAGE', `--platform ${f.platform}: kiln builds for linux/amd64 only so far`);
      for (const t of f.tag ?? []) normalizeImageName(t);
      if (!isProgressMode(f.progress))
        throw new KilnError(
          'USAGE',
          `unknown --progress "${f.progress}"`,
          {},
          { hint: `use one of ${PROGRESS_MODES.join(', ')}` },
        );
      let output: {
        type: string;
        dest?: string;
        name?: string;
        compression?: Compression;
        forceCompression?: boolean;
        compressionLevel?: number;
      } = { type: 'store' };
      if (f.push) {
        if (f.output && !/(^|,)type=(registry|image)(,|$)/.test(f.output))
          throw new KilnError('USAGE', `--push and --output "${f.output}" name two outputs: use one`);
        if (!f.output) f.output = 'type=registry';
      }
      if (f.output) {
        // docker's shorthands: `-o DIR` is type=local,dest=DIR, `-o -` a tar on stdout.
        const spec =
          f.output === '-' ? 'type=tar,dest=-' : !f.output.includes('=') ? `type=local,dest=${f.output}` : f.output;
        const kv = Object.fromEntries(spec.split(',').map((p) => p.split('=', 2) as [string, string]));
        if (!['store', 'docker', 'oci', 'registry', 'image', 'local', 'tar'].includes(kv.type ?? ''))
          throw new KilnError(
            'USAGE',
            `unsupported --output "${f.output}": use type=store, type=docker,dest=FILE, type=oci,dest=FILE, type=registry[,name=REF], type=local,dest=DIR or type=tar,dest=FILE`,
          );
        if (kv.type === 'local' && kv.dest === '-')
          throw new KilnError(
            'USAGE',
            '--output type=local needs a directory, not "-"',
            {},
            { hint: 'type=tar,dest=- writes the files as a tar on stdout' },
          );
        if (kv.type === 'image' && kv.push !== 'true') kv.type = 'store';
        if (kv.type === 'image') kv.type = 'registry';
        if (kv.type !== 'store' && kv.type !== 'registry' && !kv.dest)
          throw new KilnError('USAGE', `--output type=${kv.type} needs dest=${kv.type === 'local' ? 'DIR' : 'FILE'}`);
        if (kv.type === 'registry' && !kv.name && !f.tag?.length)
          throw new KilnError('USAGE', '--output type=registry needs a name: -t REF or name=REF');
        output = { type: kv.type!, dest: kv.dest, name: kv.name };
        if (kv.compression !== undefined) {
          output.compression = parseCompression(kv.compression);
          if (!output.compression)
            throw new KilnError(
              'USAGE',
              `unknown compression "${kv.compression}" in --output`,
              {},
              { hint: 'use compression=uncompressed, gzip or zstd' },
            );
        }
        if (kv['force-compression'] !== undefined && !['true', 'false'].includes(kv['force-compression']))
          throw new KilnError(
            'USAGE',
            `invalid force-compression "${kv['force-compression']}" in --output: true or false`,
          );
        output.forceCompression = kv['force-compression'] === 'true';
        if (kv['compression-level'] !== undefined) output.compressionLevel = Number(kv['compression-level']);
      }
      // The store keeps layers as plain tars (a push compresses them); a registry or an archive
      // gets gzip unless told otherwise, as with BuildKit.
      const layerCompression: Compression =
        output.compression ?? (['store', 'local', 'tar'].includes(output.type) ? 'none' : 'gzip');
      if (output.compressionLevel !== undefined && !validLevel(layerCompression, output.compressionLevel))
        throw new KilnError(
          'USAGE',
          `invalid compression-level in --output for ${layerCompression === 'none' ? 'uncompressed layers' : layerCompression}`,
          {},
          { hint: 'gzip takes 1-9, zstd 1-19' },
        );
      if (f.snapshotter && f.snapshotter !== 'overlay' && f.snapshotter !== 'native')
        throw new KilnError('USAGE', `unknown --snapshotter "${f.snapshotter}": use overlay or native`);
      if (f.backend && f.backend !== 'oci' && f.backend !== 'chroot' && f.backend !== 'bare')
        throw new KilnError('USAGE', `unknown --backend "${f.backend}": use oci, chroot or bare`);
      // A context to fetch (`-`, a git repository, a URL) lands in a directory under the store first.
      let remote: PreparedContext | undefined;
      let early: Awaited<ReturnType<typeof openStoreFromCli>> | undefined;
      let contextDir = context;
      let input: DockerfileInput;
      if (isRemoteContext(context)) {
        if (context === '-' && f.file === '-')
          throw new KilnError(
            'USAGE',
            'stdin cannot be both the build context and the Dockerfile',
            {},
            { hint: 'give the context as a directory, or the Dockerfile with -f FILE' },
          );
        early = await openStoreFromCli(cmd);
        remote = await prepareRemoteContext(context, { tmpDir: early.tmpDir, stdin: process.stdin });
        const fetched = remote;
        process.once('exit', () => fetched.cleanup());
        contextDir = remote.dir;
        // -f names a file inside a fetched context (docker's rule); stdin or a URL may be the Dockerfile itself.
        if (remote.dockerfileText !== undefined && f.file === undefined)
          input = { display: 'Dockerfile', text: remote.dockerfileText };
        else
          input = readDockerfileInput(
            f.file === undefined || f.file === '-' ? f.file : path.join(remote.dir, f.file),
            remote.dir,
          );
      } else {
        if (!existsSync(context))
          throw new KilnError(
            'NOT_FOUND',
            'build context does not exist',
            { path: context },
            {
              hint: 'give a directory, a git repository URL, an http(s) URL of a tarball or a Dockerfile, or - (a tar on stdin)',
            },
          );
        input = readDockerfileInput(f.file, path.resolve(context));
      }
      const call = f.check ? 'check' : (f.call ?? 'build');
      if (!['build', 'check', 'outline', 'targets'].includes(call))
        throw new KilnError('USAGE', `unknown --call "${f.call}": use build, check, outline or targets`);
      if (call !== 'build') {
        const args = parseKeyValues(f.buildArg, '--build-arg', (k) => process.env[k]);
        if (call === 'check') {
          // BuildKit's checks only (kiln lint adds its own multi-stage rules on top).
          const r = lintDockerfile(input.text, { file: input.display, target: f.target, buildArgs: args });
          const findings = r.findings.filter((x) => RULES[x.rule]?.origin !== 'kiln' || x.rule === 'InvalidDockerfile');
          const shown = {
            ...r,
            findings,
            errors: findings.filter((x) => x.level === 'error').length,
            warnings: findings.filter((x) => x.level === 'warning').length,
          };
          process.stdout.write(formatLintText(shown));
          if (findings.length) process.exitCode = 1;
          return;
        }
        const plan = createPlan(parseDockerfile(input.text, { file: input.display }), {
          buildArgs: args,
          target: f.target,
          namedContexts: (f.buildContext ?? []).map((c) => parseBuildContextFlag(c).name),
        });
        process.stdout.write(
          call === 'targets' ? formatTargets(listTargets(plan, input.text)) : formatOutline(outline(plan, input.text)),
        );
        return;
      }
      const buildArgs = parseKeyValues(f.buildArg, '--build-arg', (k) => process.env[k]);
      const labels = Object.fromEntries(parseKeyValues(f.label, '--label'));
      const secrets = (f.secret ?? []).map(parseSecretFlag);
      const ssh = (f.ssh ?? []).map(parseSshFlag);
      const namedContexts = (f.buildContext ?? []).map(parseBuildContextFlag);
      const extraHosts = (f.addHost ?? []).map(parseAddHost);
      const shmSize = f.shmSize !== undefined ? parseByteSize(f.shmSize, '--shm-size') : undefined;
      const ulimits = (f.ulimit ?? []).map(parseUlimit);
      // SOURCE_DATE_EPOCH as BuildKit takes it: the flag, a --build-arg, the environment (empty:
      // unset); it is also a build arg then, so a stage with `ARG SOURCE_DATE_EPOCH` shows it to RUN.
      const sde = [f.sourceDateEpoch, buildArgs.get('SOURCE_DATE_EPOCH'), process.env.SOURCE_DATE_EPOCH].find(
        (v) => v !== undefined && v !== '',
      );
      if (sde !== undefined && !buildArgs.has('SOURCE_DATE_EPOCH')) buildArgs.set('SOURCE_DATE_EPOCH', sde);
      const cacheSpecs = {
        from: (f.cacheFrom ?? []).map((s) => parseCacheSpec(s, '--cache-from')),
        to: (f.cacheTo ?? []).map((s) => parseCacheSpec(s, '--cache-to')),
      };
      if (sde !== undefined && !/^\d+$/.test(sde))
        throw new KilnError('USAGE', `invalid SOURCE_DATE_EPOCH "${sde}": expected seconds since 1970`);
      // BuildKit runs its build checks with every build: warnings, or a failed build when the
      // Dockerfile says `# check=error=true` (skip= honoured in both).
      const checks = buildChecks(input.text, input.display, f.target, buildArgs);
      const store = early ?? (await openStoreFromCli(cmd));
      // Progress on stderr (stdout keeps the image id), JSON lines on stdout (for tools: the id is
      // in the `done` event); -q shows nothing but the id.
      const mode = f.quiet ? 'quiet' : resolveProgressMode(f.progress, process.stderr);
      const filesOut: FilesystemOutput | undefined =
        output.type === 'local'
          ? { type: 'local', dest: output.dest! }
          : output.type === 'tar'
            ? output.dest === '-'
              ? { type: 'tar', stream: process.stdout }
              : { type: 'tar', dest: output.dest! }
            : undefined;
      if (filesOut && 'stream' in filesOut) {
        if (mode === 'json')
          throw new KilnError(
            'USAGE',
            '--progress json writes to stdout, where --output dest=- writes the tar',
            {},
            { hint: 'write the tar to a file (dest=FILE) or use --progress plain' },
          );
        if (process.stdout.isTTY)
          throw new KilnError(
            'USAGE',
            'refusing to write a tar to a terminal',
            {},
            { hint: 'redirect stdout or use dest=FILE' },
          );
      }
      const quiet = mode === 'quiet';
      const display = progressDisplay(mode, mode === 'json' ? process.stdout : process.stderr);
      const pushView = transferView('push', process.stderr, { tty: false });
      const ac = new AbortController();
      const onSig = () => {
        ac.abort();
        // The live view stops (and shows the cursor again) at once, not when the steps have ended.
        display.finish({ message: 'build interrupted', code: 'INTERRUPTED' });
      };
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      for (const c of checks.findings)
        display.onEvent({ type: 'warning', message: `${c.file}:${c.line}: ${c.message} [${c.rule}]` });
      if (checks.fail && checks.all.length) {
        const rules = [...new Set(checks.all.map((c) => c.rule))].join(', ');
        const first = checks.all[0]!;
        display.finish();
        throw new KilnError(
          'BUILD',
          `lint violation found for rules: ${rules}`,
          { file: first.file, line: first.line, column: first.column, source: first.source },
          { hint: 'fix them, or skip rules with # check=skip=RULE (error=true makes every check an error)' },
        );
      }
      try {
        const r = await build(
          {
            store,
            contextDir,
            dockerfileText: input.text,
            dockerfileName: input.display,
            dockerfilePath: input.path,
            buildArgs,
            target: f.target,
            // The files are the product, not an image: nothing is tagged (as BuildKit).
            tags: filesOut ? undefined : f.tag,
            labels,
            network: f.network === 'none' ? 'none' : 'host',
            platform: 'linux/amd64',
            snapshotter: f.snapshotter as 'overlay' | 'native' | undefined,
            layerCompression,
            forceCompression: output.forceCompression,
            compressionLevel: output.compressionLevel,
            backend: f.backend as 'oci' | 'chroot' | 'bare' | undefined,
            signal: ac.signal,
            sourceDateEpoch: sde !== undefined ? Number(sde) : undefined,
            noCache: f.cache === false,
            noCacheFilter: (Array.isArray(f.cacheFilter) ? f.cacheFilter : [])
              .flatMap((s) => s.split(','))
              .filter(Boolean),
            pull: f.pull,
            registry: clientOptionsFrom(f),
            secrets,
            ssh,
            namedContexts,
            extraHosts,
            shmSize,
            ulimits,
            ...registryCache(cacheSpecs, clientOptionsFrom(f), (message) =>
              display.onEvent({ type: 'warning', message }),
            ),
          },
          (e) => display.onEvent(e),
        );
        display.finish();
        if (output.type === 'registry') {
          const names = output.name ? output.name.split(/[,;]/).filter(Boolean) : (f.tag ?? []);
          for (const n of names) {
            const pushed = await push(store, r.descriptor.digest, n, {
              ...clientOptionsFrom(f),
              compression: layerCompression,
              compressionLevel: output.compressionLevel,
              onProgress: quiet ? undefined : (e) => pushView.onEvent(e),
            });
            pushView.finish();
            if (!quiet) process.stderr.write(`pushed ${pushed.ref}@${pushed.digest}\n`);
          }
        } else if (filesOut) {
          await writeFilesystemOutput(store, await store.resolveImage(r.descriptor.digest), filesOut);
        } else if (output.type !== 'store') {
          const img = await store.resolveImage(r.descriptor.digest);
          await saveImagesToFile(
            store,
            [{ ...img, name: f.tag?.[0] ? normalizeImageName(f.tag[0]) : undefined }],
            output.type as 'docker' | 'oci',
            output.dest!,
          );
        }
        if (f.iidfile) writeFileSync(f.iidfile, r.imageId);
        // With files as the output, docker prints no image ID (and stdout may be the tar).
        if (mode !== 'json' && !filesOut) process.stdout.write(`${r.imageId}\n`);
      } catch (e) {
        display.finish(progressError(e));
        if (ac.signal.aborted) {
          process.stderr.write('build interrupted\n');
          process.exitCode = 130;
          return;
        }
        throw e;
      } finally {
        display.finish();
        remote?.cleanup();
        closeIdleConnections();
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });
}

/** BuildKit's checks of a Dockerfile (not kiln lint's own rules) and whether `# check=error=true` makes them fatal. */
function buildChecks(
  text: string,
  file: string,
  target: string | undefined,
  buildArgs: Map<string, string>,
): { findings: LintFinding[]; all: LintFinding[]; fail: boolean } {
  const r = lintDockerfile(text, { file, target, buildArgs });
  // A file that does not parse or plan fails the build with its own error.
  // The parser's own warnings (NoEmptyContinuation, MaintainerDeprecated, LegacyKeyValueFormat)
  // come with the build's events already.
  const fromParser = new Set<string>();
  try {
    for (const w of parseDockerfile(text, { file }).warnings) if (w.rule) fromParser.add(w.rule);
  } catch {
    // reported by the build
  }
  const all = r.findings.filter((x) => RULES[x.rule]?.origin === 'buildkit');
  const findings = all.filter((x) => !fromParser.has(x.rule));
  let fail: boolean;
  try {
    fail = checkDirective(parseDockerfile(text, { file })).error;
  } catch {
    fail = false;
  }
  return { findings, all, fail };
}
