/**
 * The library's Dockerfile side: `build` (an image, written to its outputs), `plan` (the resolved
 * stage graph, without building) and `lint` (checks of the Dockerfile).
 */
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { BuildContext } from '../context/index.js';
import { defaultStoreRoot } from '../store/index.js';
import {
  baseImageFacts,
  baseImageRefs,
  lintDockerfile,
  type BaseImageFacts,
  type LintResult,
} from '../analyze/index.js';
import {
  buildWithOutputs,
  parsePlatforms,
  type BuildWithOutputsOptions,
  type BuildWithOutputsResult,
  type EventSink,
} from '../engine/index.js';
import { parseDockerfile } from '../dockerfile/index.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../image/index.js';
import { createPlan, multiPlatformPlan, type BuildPlan, type MultiPlatformPlan } from '../plan/index.js';
import { readDockerfileInput, type DockerfileInput } from './dockerfile-input.js';
import { openStore, type StoreOptions } from './store.js';
import { requireSandboxPrivileges } from './privilege.js';

/** Which Dockerfile, and the variables and target it is read with. */
export interface DockerfileOptions {
  /** The build context directory (where `Dockerfile` is looked up). */
  context: string;
  /** The Dockerfile's path (default CONTEXT/Dockerfile); with `dockerfileText`, only for messages and FILE.dockerignore. */
  file?: string;
  /** The Dockerfile's text, instead of reading `file`. */
  dockerfileText?: string;
  /** Its name in messages (default: `file`, or "Dockerfile"). */
  dockerfileName?: string;
  /** --build-arg values. */
  buildArgs?: Map<string, string> | Record<string, string>;
  /** The stage to build (default: the last). */
  target?: string;
}

/** The Dockerfile of a call: its text, its name in messages, its path. */
export function dockerfileInput(o: DockerfileOptions): DockerfileInput {
  if (o.dockerfileText !== undefined)
    return {
      text: o.dockerfileText,
      display: o.dockerfileName ?? o.file ?? 'Dockerfile',
      path: o.file !== undefined ? path.resolve(o.file) : undefined,
    };
  const input = readDockerfileInput(o.file, path.resolve(o.context));
  return o.dockerfileName !== undefined ? { ...input, display: o.dockerfileName } : input;
}

function argMap(a: DockerfileOptions['buildArgs']): Map<string, string> {
  return a instanceof Map ? new Map(a) : new Map(Object.entries(a ?? {}));
}

export interface BuildOptions
  extends
    StoreOptions,
    DockerfileOptions,
    Omit<
      BuildWithOutputsOptions,
      'store' | 'contextDir' | 'dockerfileText' | 'dockerfileName' | 'dockerfilePath' | 'buildArgs' | 'target'
    > {
  /** The build's events as they come (engine/events.ts: plan, stage-*, step-*, warning, sandbox, pull, done). */
  onEvent?: EventSink;
}

export type BuildResult = BuildWithOutputsResult;

/**
 * Builds the target stage of a Dockerfile into an image in the store, then writes it to each of
 * `outputs` (default: the store, tagged with `tags`).
 */
export async function build(o: BuildOptions): Promise<BuildResult> {
  requireSandboxPrivileges('build');
  const input = dockerfileInput(o);
  const { root: _root, context, file: _file, dockerfileText: _t, dockerfileName: _n, onEvent, ...rest } = o;
  return buildWithOutputs(
    {
      ...rest,
      store: await openStore(o),
      contextDir: context,
      dockerfileText: input.text,
      dockerfileName: input.display,
      dockerfilePath: input.path,
      buildArgs: argMap(o.buildArgs),
    },
    onEvent,
  );
}

export interface PlanOptions extends DockerfileOptions {
  /** The target platform (TARGETPLATFORM…), os/arch[/variant]; default: this machine's. */
  platform?: string;
}

/** The resolved build, without building: stages in order, bases, dependencies, skipped stages, expanded instructions. */
export function plan(o: PlanOptions): BuildPlan {
  const input = dockerfileInput(o);
  const df = parseDockerfile(input.text, { file: input.display });
  const buildPlatform = formatPlatform(hostPlatform());
  const platform = o.platform === undefined ? buildPlatform : formatPlatform(parsePlatform(o.platform));
  return createPlan(df, { buildArgs: argMap(o.buildArgs), target: o.target, platform, buildPlatform });
}

/**
 * The plan for several target platforms (`kiln plan --platform a,b`): each platform's plan and
 * which stages a multi-platform build runs once for all of them (plan/platforms.ts).
 */
export function planPlatforms(o: Omit<PlanOptions, 'platform'> & { platforms: string[] }): MultiPlatformPlan {
  const { platforms, ...rest } = o;
  const input = dockerfileInput(rest);
  const text = { ...rest, dockerfileText: input.text, file: undefined, dockerfileName: input.display };
  return multiPlatformPlan(parsePlatforms(platforms).map((platform) => plan({ ...text, platform })));
}

export interface LintOptions extends DockerfileOptions {
  /**
   * The base images' ENV names and platforms (from `lintBaseImages`), for UndefinedVar and
   * InvalidBaseImagePlatform; without them a stage on an external image is not checked for UndefinedVar.
   */
  baseImages?: Map<string, BaseImageFacts>;
}

/** What the store has of the Dockerfile's base images (nothing is pulled), for `lint`'s `baseImages`. */
export async function lintBaseImages(o: DockerfileOptions & StoreOptions): Promise<Map<string, BaseImageFacts>> {
  const input = dockerfileInput(o);
  const refs = baseImageRefs(input.text, { file: input.display, target: o.target, buildArgs: argMap(o.buildArgs) });
  // No store yet: nothing to read (and a lint does not create one).
  if (!refs.length || (!o.store && !existsSync(o.root ?? defaultStoreRoot()))) return new Map();
  return baseImageFacts(await openStore(o), refs);
}

/** BuildKit's build checks and kiln's multi-stage rules over a Dockerfile. */
export function lint(o: LintOptions): LintResult {
  const input = dockerfileInput(o);
  return lintDockerfile(input.text, {
    file: input.display,
    target: o.target,
    buildArgs: argMap(o.buildArgs),
    ignored: contextIgnores(o.context, input.path),
    baseImages: o.baseImages,
  });
}

/**
 * Whether the context's .dockerignore (FILE.dockerignore beside the Dockerfile first) excludes a
 * path: what the lint's CopyIgnoredFile asks. Undefined when the context is no directory.
 */
function contextIgnores(context: string, dockerfilePath: string | undefined): ((rel: string) => boolean) | undefined {
  const dir = path.resolve(context);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined;
  const ctx = BuildContext.open(dir, { dockerfile: dockerfilePath });
  return (rel) => ctx.ignores(rel);
}
