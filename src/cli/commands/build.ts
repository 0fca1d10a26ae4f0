/** `kiln build`: a Dockerfile and a context → an image, with docker build's flags. */
import { closeIdleConnections, RegistryClient, type ClientOptions } from '../../registry/index.js';
import {
  transferView,
  isProgressMode,
  progressDisplay,
  ExplainTable,
  progressError,
  resolveProgressMode,
  PROGRESS_MODES,
} from '../../ui/index.js';
import { clientOptionsFrom, type RegistryFlags } from '../registry-options.js';
import { parseCacheSpec, RegistryCacheSink, RegistryCacheSource, type CacheSpec } from '../../cache/index.js';
import {
  type CacheSink,
  type CacheSource,
  isFilesOutput,
  parseOutputSpec,
  type OutputSpec,
  parseSecretFlag,
  parseSshFlag,
  parseBuildContextFlag,
  isRemoteContext,
  prepareRemoteContext,
  parsePlatforms,
  type PreparedContext,
} from '../../engine/index.js';
import type { Command } from 'commander';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { BuildContext } from '../../context/index.js';
import * as path from 'node:path';
import { readDockerfileInput, type BuildResult, type DockerfileInput, build, debug } from '../../api/index.js';
import { formatPlatform, hostPlatform, normalizeImageName } from '../../image/index.js';
import { type Digest, formatError, KilnError, mark, joinPath } from '../../util/index.js';
import {
  formatLintText,
  cachedBuildChecks,
  checkCall,
  cachedBaseImageFacts,
  baseImageRefs,
  type BaseImageFacts,
} from '../../analyze/index.js';
import { defaultStoreRoot, type Store } from '../../store/index.js';
import { parseDockerfile } from '../../dockerfile/index.js';
import { createPlan, formatOutline, formatTargets, listTargets, outline } from '../../plan/index.js';
import { collect, globalOptions, parseAddHost, parseByteSize, parseKeyValues, parseUlimit } from '../options.js';
import { MemoRecorder, type MemoState } from '../noop-memo.js';
import { openStoreFromCli } from '../store.js';

interface BuildFlags extends RegistryFlags {
  file?: string;
  tag?: string[];
  buildArg?: string[];
  target?: string;
  /** commander's --no-cache sets cache=false */
  cache?: boolean;
  /** --no-memo sets memo=false */
  memo?: boolean;
  /** --no-cache-filter: commander names a `--no-…` option after what follows `no-` (true when not given). */
  cacheFilter?: string[] | boolean;
  cacheFrom?: string[];
  cacheTo?: string[];
  pull?: boolean;
  network: string;
  label?: string[];
  platform?: string;
  iidfile?: string;
  quiet?: boolean;
  progress: string;
  output?: string;
  push?: boolean;
  snapshotter?: string;
  backend?: string;
  runtime?: string;
  sourceDateEpoch?: string;
  secret?: string[];
  ssh?: string[];
  buildContext?: string[];
  addHost?: string[];
  shmSize?: string;
  ulimit?: string[];
  call?: string;
  check?: boolean;
  allowSecretInImage?: boolean;
  verifyReproducible?: boolean;
  explain?: boolean;
  onError?: string;
  squash?: boolean;
  squashAll?: boolean;
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
      '--no-memo',
      'do not answer a rebuild of nothing changed from its no-op memo, nor record one (a --no-cache -q build records that of its run without --no-cache; also KILN_NO_MEMO=1; see docs/cache.md)',
    )
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
    .option(
      '--platform <os/arch[,os/arch…]>',
      "target platform(s); several (comma-separated) build one image each and an OCI index of them under the tags (see docs/multi-platform.md); default: this machine's",
    )
    .option('--iidfile <file>', 'write the image ID to this file')
    .option('-q, --quiet', 'print only the image ID (no progress)')
    .option(
      '--explain',
      'after the build, say for each step why it ran (what changed since its last build on this store) or which cache record it came from',
    )
    .option(
      '--progress <mode>',
      `progress display: ${PROGRESS_MODES.join(', ')} (auto: tty on a terminal, else plain; json: JSON lines on stdout, see docs/progress-json.md)`,
      'auto',
    )
    .option(
      '-o, --output <spec>',
      "type=store (default), type=docker,dest=FILE (one platform), type=oci,dest=FILE (several platforms: their index), type=registry[,name=REF] (push); compression=uncompressed|gzip|zstd[,compression-level=N][,force-compression=true]; or the final stage's files, not an image: type=local,dest=DIR (or just DIR), type=tar,dest=FILE (dest=- or just -: stdout)",
    )
    .option(
      '--push',
      'push the image to its registry (-t names it): --output type=registry, as docker buildx build --push',
    )
    .option(
      '--snapshotter <kind>',
      'overlay, fuse-overlayfs or native (default: overlay when it can be mounted, else fuse-overlayfs when it can, else native; the sandbox line says why each was refused); one that cannot be mounted here fails with the reason',
    )
    .option(
      '--backend <kind>',
      'oci, chroot, bare (chroot alone, no namespaces: unprivileged containers) or host-root (no chroot: RUN in the / of this container, only in a container) (default: oci when a runtime works, else chroot, else bare, else host-root in a container)',
    )
    .option('--runtime <path>', 'OCI runtime of RUN steps (default: crun, else runc, whichever works here first)')
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
      'a named context for FROM NAME, COPY --from=NAME, RUN --mount from=NAME (it also replaces an image or a stage of that name): NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://PATH[:TAG|@DIGEST], NAME=https://…/x.tar.gz (unpacked) or NAME=GIT-URL#REF:SUBDIR; repeatable',
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
    .option(
      '--squash',
      "merge the layers the build adds above the final stage's base image into one (podman's --squash)",
    )
    .option('--squash-all', "merge all of the image's layers, the base image's too, into one (podman's --squash-all)")
    .option(
      '--allow-secret-in-image',
      'keep an image (and a --cache-to export) in which a --secret value was found (a warning instead of an error; see docs/security.md)',
    )
    .option(
      '--verify-reproducible',
      'build the target twice, each on a clean scratch store, with the same SOURCE_DATE_EPOCH (given, else chosen and printed); exit 1 naming the first differing file, its layer and step when the images differ (see docs/reproducible.md)',
    )
    .option(
      '--on-error <mode>',
      'when a RUN fails: fail (default), keep (keep the step for kiln debug), shell (keep it and open a shell in it when stdin is a terminal); see docs/debug.md',
    )
    .action(async (context: string, f: BuildFlags, cmd: Command) => {
      // The no-op memo (cli/noop-memo.ts): what this build writes, recorded when its next run is a
      // no-op — that of the same argv, or without --no-cache (a usage error ends the command: its capture with it).
      let memo = memoEligible(f, context)
        ? MemoRecorder.start(process.argv.slice(2), path.resolve(globalOptions(cmd).root ?? defaultStoreRoot()), {
            noCache: f.cache === false,
          })
        : undefined;
      if (f.onError !== undefined && !['fail', 'keep', 'shell'].includes(f.onError))
        throw new KilnError('USAGE', `unknown --on-error "${f.onError}": use fail, keep or shell`);
      mark('CLI parsed');
      if (f.network !== 'host' && f.network !== 'none' && f.network !== 'default')
        throw new KilnError('USAGE', `unknown --network "${f.network}": use host or none`);
      const platforms = f.platform === undefined ? undefined : parsePlatforms(f.platform);
      for (const t of f.tag ?? []) normalizeImageName(t);
      if (!isProgressMode(f.progress))
        throw new KilnError(
          'USAGE',
          `unknown --progress "${f.progress}"`,
          {},
          { hint: `use one of ${PROGRESS_MODES.join(', ')}` },
        );
      if (f.squash && f.squashAll)
        throw new KilnError(
          'USAGE',
          '--squash and --squash-all: use one',
          {},
          { hint: "--squash-all merges the base image's layers too" },
        );
      if (f.push && f.output && !/(^|,)type=(registry|image)(,|$)/.test(f.output))
        throw new KilnError('USAGE', `--push and --output "${f.output}" name two outputs: use one`);
      const outputText = f.output ?? (f.push ? 'type=registry' : undefined);
      const parsed: OutputSpec = outputText ? parseOutputSpec(outputText, f.tag ?? []) : { type: 'store' };
      if (f.snapshotter && !['overlay', 'fuse-overlayfs', 'native'].includes(f.snapshotter))
        throw new KilnError('USAGE', `unknown --snapshotter "${f.snapshotter}": use overlay, fuse-overlayfs or native`);
      if (f.backend && !['oci', 'chroot', 'bare', 'host-root'].includes(f.backend))
        throw new KilnError('USAGE', `unknown --backend "${f.backend}": use oci, chroot, bare or host-root`);
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
            f.file === undefined || f.file === '-' ? f.file : joinPath(remote.dir, f.file),
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
      // The context's .dockerignore, for the CopyIgnoredFile check.
      const ctx = contextIgnores(contextDir, input.path);
      const ignored = ctx ? (rel: string) => ctx.ignores(rel) : undefined;
      if (call !== 'build') {
        const args = parseKeyValues(f.buildArg, '--build-arg', (k) => process.env[k]);
        if (call === 'check') {
          // BuildKit's checks only (kiln lint adds its own multi-stage rules on top).
          const shown = checkCall(input.text, {
            file: input.display,
            target: f.target,
            buildArgs: args,
            ignored,
            baseImages: await baseImagesInStore(early ?? (await openStoreFromCli(cmd)), input, f.target, args),
          });
          process.stdout.write(formatLintText(shown));
          if (shown.findings.length) process.exitCode = 1;
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
      // The base images already in the store give UndefinedVar their ENV and InvalidBaseImagePlatform
      // their platform (one pulled by this build is not waited for).
      const store = early ?? (await openStoreFromCli(cmd));
      mark('store opened');
      // Remembered in the store: a rebuild of the same Dockerfile, args, ignore file and bases reads them.
      const baseImages = await baseImagesInStore(store, input, f.target, buildArgs);
      mark('base images read (for the checks)');
      const checks = await cachedBuildChecks(store, {
        text: input.text,
        file: input.display,
        target: f.target,
        buildArgs,
        ignorePatterns: ctx?.ignorePatterns,
        ignored,
        baseImages,
        platforms: platforms ?? [formatPlatform(hostPlatform())],
      });
      mark('Dockerfile read, build checks');
      // Progress on stderr (stdout keeps the image id), JSON lines on stdout (for tools: the id is
      // in the `done` event); -q shows nothing but the id.
      const mode = f.quiet ? 'quiet' : resolveProgressMode(f.progress, process.stderr);
      // The memo replays plain and quiet output only (tty redraws, json has times); no ADD of a URL or git (fetched again).
      if (
        memo &&
        ((mode !== 'plain' && mode !== 'quiet') || /^\s*(ONBUILD\s+)?ADD\b.*(:\/\/|git@)/im.test(input.text))
      ) {
        memo.stop();
        memo = undefined;
      }
      // `dest=-`: the final stage's files as a tar on stdout.
      const toStdout = parsed.type === 'tar' && 'dest' in parsed && parsed.dest === '-';
      const output: OutputSpec = toStdout ? { type: 'tar', stream: process.stdout } : parsed;
      if (toStdout) {
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
      const explain = f.explain ? new ExplainTable() : undefined;
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
      let platformsDone = 0;
      let result: BuildResult | undefined;
      try {
        const r = await build({
          store,
          context: contextDir,
          dockerfileText: input.text,
          dockerfileName: input.display,
          file: input.path,
          buildArgs,
          target: f.target,
          tags: f.tag,
          outputs: [output],
          labels,
          network: f.network === 'none' ? 'none' : 'host',
          platforms,
          snapshotter: f.snapshotter as 'overlay' | 'fuse-overlayfs' | 'native' | undefined,
          backend: f.backend as 'oci' | 'chroot' | 'bare' | 'host-root' | undefined,
          runtime: f.runtime,
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
          allowSecretInImage: f.allowSecretInImage,
          squash: f.squashAll ? 'all' : f.squash ? 'new' : undefined,
          verifyReproducible: f.verifyReproducible,
          onError: f.onError === 'keep' || f.onError === 'shell' ? 'keep' : 'fail',
          onVerified: quiet ? undefined : (report) => process.stderr.write(report),
          namedContexts,
          extraHosts,
          shmSize,
          ulimits,
          ...registryCache(cacheSpecs, clientOptionsFrom(f), (message) =>
            display.onEvent({ type: 'warning', message }),
          ),
          onPush: quiet ? undefined : (_ref, e) => pushView.onEvent(e),
          onOutput: (o) => {
            if (o.type !== 'registry') return;
            pushView.finish();
            if (!quiet) process.stderr.write(`pushed ${o.ref}@${o.digest}\n`);
          },
          onEvent: (e) => {
            memo?.onEvent(e);
            display.onEvent(e);
            explain?.onEvent(e);
            // The build's view ends with the image; a push's progress follows it.
            // (a multi-platform build: the last platform's, its events carry their platform)
            if (e.type === 'done' && (!('platform' in e) || ++platformsDone === (platforms?.length ?? 1)))
              display.finish();
          },
        });
        result = r;
        if (f.iidfile) writeFileSync(f.iidfile, r.imageId);
        // With files as the output, docker prints no image ID (and stdout may be the tar).
        if (mode !== 'json' && !isFilesOutput(output)) process.stdout.write(`${r.imageId}\n`);
      } catch (e) {
        memo?.stop();
        display.finish(progressError(e));
        if (ac.signal.aborted) {
          process.stderr.write('build interrupted\n');
          process.exitCode = 130;
          return;
        }
        const kept = (e as { keptStep?: string }).keptStep;
        if (f.onError === 'shell' && kept && process.stdin.isTTY && e instanceof KilnError) {
          display.finish();
          process.stderr.write(`${formatError(e)}\nopening a shell in the failed step (exit ends it)\n`);
          await debug({
            store,
            id: kept,
            stdin: 'inherit',
            onStdout: (b) => process.stdout.write(b),
            onStderr: (b) => process.stderr.write(b),
          });
          process.exitCode = 1;
          return;
        }
        throw e;
      } finally {
        display.finish();
        // After the build's own output, on stderr (stdout has the image id, or JSON lines).
        if (explain) process.stderr.write(explain.format());
        remote?.cleanup();
        closeIdleConnections();
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
      const built = result;
      const dockerfile = input.path;
      if (memo && built && dockerfile !== undefined) {
        mark('image id printed');
        memo.record(
          await memoState(store, contextDir, ctx, dockerfile, built, quiet, f.iidfile).catch(() => undefined),
        );
        mark('no-op memo recorded');
      }
    });
}

/**
 * Whether the flags allow a no-op memo: a local context and Dockerfile, the store as the only
 * output, the build cache as the only source of steps, nothing read from outside at build time
 * (secrets, ssh, named contexts, registries), one platform, no second view (--explain). A
 * --no-cache build records the memo of its run without --no-cache (cli/noop-memo.ts).
 */
function memoEligible(f: BuildFlags, context: string): boolean {
  return (
    !isRemoteContext(context) &&
    f.file !== '-' &&
    f.memo !== false &&
    !Array.isArray(f.cacheFilter) &&
    !f.cacheFrom?.length &&
    !f.cacheTo?.length &&
    !f.pull &&
    !f.push &&
    f.output === undefined &&
    f.platform === undefined &&
    !f.secret?.length &&
    !f.ssh?.length &&
    !f.buildContext?.length &&
    !f.verifyReproducible &&
    !f.explain &&
    !f.check &&
    (f.call ?? 'build') === 'build'
  );
}

/** What the build's result depends on, for its memo (cli/noop-memo.ts). */
async function memoState(
  store: Store,
  contextDir: string,
  /** The context as the build opened it (contextIgnores): its walk is the memo's, not made again. */
  opened: BuildContext | undefined,
  dockerfile: string,
  result: Pick<BuildResult, 'imageId' | 'descriptor' | 'rebuildRecords'>,
  quiet: boolean,
  iidfile: string | undefined,
): Promise<MemoState> {
  const records = await result.rebuildRecords?.();
  const root = path.resolve(contextDir);
  const ctx = opened?.root === root ? opened : BuildContext.open(root, { dockerfile });
  // BuildContext.open's order: FILE.dockerignore beside the Dockerfile first, then CONTEXT/.dockerignore.
  const ignoreFiles = [`${dockerfile}.dockerignore`, joinPath(root, '.dockerignore')];
  const used = ignoreFiles.findIndex((c) => existsSync(c));
  const manifestFile = store.layout.blobFile(result.descriptor.digest as Digest);
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { layers?: { digest: string }[] };
  return {
    watched: [...ctx.watchedPaths().map((rel) => joinPath(root, rel)), path.resolve(dockerfile)],
    digested: [path.resolve(dockerfile), ...(used >= 0 ? [ignoreFiles[used]!] : []), store.layout.indexFile],
    absent: used >= 0 ? ignoreFiles.slice(0, used) : ignoreFiles,
    records,
    imageId: result.imageId,
    quiet,
    present: [manifestFile, store.layout.blobFile(result.imageId as Digest)].concat(
      (manifest.layers ?? []).map((l) => store.layout.blobFile(l.digest as Digest)),
    ),
    ...(iidfile !== undefined ? { iidfile: { path: iidfile, imageId: result.imageId } } : {}),
  };
}

/** What the store has of the Dockerfile's base images (nothing pulled), for UndefinedVar and InvalidBaseImagePlatform. */
function baseImagesInStore(
  store: Store,
  input: DockerfileInput,
  target: string | undefined,
  buildArgs: Map<string, string>,
): Promise<Map<string, BaseImageFacts>> {
  // Remembered in the store (by the Dockerfile, target, args and index.json): a rebuild reads one file.
  return cachedBaseImageFacts(store, { text: input.text, target, buildArgs }, () =>
    baseImageRefs(input.text, { file: input.display, target, buildArgs }),
  );
}

/** The context with its .dockerignore (FILE.dockerignore first), for the CopyIgnoredFile check; undefined when no directory. */
function contextIgnores(dir: string, dockerfilePath: string | undefined): BuildContext | undefined {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined;
  return BuildContext.open(path.resolve(dir), { dockerfile: dockerfilePath });
}
