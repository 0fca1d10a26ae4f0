/**
 * The rules `kiln lint` knows. Where BuildKit has a build check for the same thing, the rule has
 * BuildKit's name, message and documentation URL (docs.docker.com/reference/build-checks/); the
 * others are kiln's own, for what multi-stage builds most often get wrong.
 */

export type LintLevel = 'error' | 'warning' | 'info';

export interface RuleInfo {
  name: string;
  description: string;
  level: LintLevel;
  url?: string;
  /** 'buildkit': a BuildKit build check of the same name; 'kiln': kiln's own. */
  origin: 'buildkit' | 'kiln';
  /** BuildKit's experimental checks run only when `# check=experimental=NAME|all` asks. */
  experimental?: boolean;
}

const bk = (
  name: string,
  slug: string,
  description: string,
  level: LintLevel = 'warning',
  experimental = false,
): RuleInfo => ({
  name,
  description,
  level,
  url: `https://docs.docker.com/go/dockerfile/rule/${slug}/`,
  origin: 'buildkit',
  ...(experimental ? { experimental } : {}),
});
const kiln = (name: string, description: string, level: LintLevel = 'warning'): RuleInfo => ({
  name,
  description,
  level,
  origin: 'kiln',
});

export const RULES: Record<string, RuleInfo> = Object.fromEntries(
  [
    bk('StageNameCasing', 'stage-name-casing', 'Stage names should be lowercase'),
    bk('FromAsCasing', 'from-as-casing', "The 'as' keyword should match the case of the 'from' keyword"),
    bk(
      'NoEmptyContinuation',
      'no-empty-continuation',
      'Empty continuation lines will become errors in a future release',
    ),
    bk(
      'ConsistentInstructionCasing',
      'consistent-instruction-casing',
      'All commands within the Dockerfile should use the same casing (either upper or lower)',
    ),
    bk('DuplicateStageName', 'duplicate-stage-name', 'Stage names should be unique', 'error'),
    bk('ReservedStageName', 'reserved-stage-name', 'Reserved words should not be used as stage names', 'error'),
    bk(
      'JSONArgsRecommended',
      'json-args-recommended',
      'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals',
    ),
    bk(
      'MaintainerDeprecated',
      'maintainer-deprecated',
      'The MAINTAINER instruction is deprecated, use a label instead to define an image author',
    ),
    bk('UndefinedArgInFrom', 'undefined-arg-in-from', 'FROM command must use declared ARGs'),
    bk(
      'WorkdirRelativePath',
      'workdir-relative-path',
      'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes',
    ),
    bk(
      'MultipleInstructionsDisallowed',
      'multiple-instructions-disallowed',
      'Multiple instructions of the same type should not be used in the same stage',
    ),
    bk(
      'LegacyKeyValueFormat',
      'legacy-key-value-format',
      'Legacy key/value format with whitespace separator should not be used',
    ),
    bk(
      'RedundantTargetPlatform',
      'redundant-target-platform',
      'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
    ),
    bk(
      'SecretsUsedInArgOrEnv',
      'secrets-used-in-arg-or-env',
      'Sensitive data should not be used in the ARG or ENV commands',
    ),
    bk(
      'InvalidDefaultArgInFrom',
      'invalid-default-arg-in-from',
      'Default value for global ARG results in an empty or invalid base image name',
      'error',
    ),
    bk(
      'FromPlatformFlagConstDisallowed',
      'from-platform-flag-const-disallowed',
      'FROM --platform flag should not use a constant value',
    ),
    bk('ExposeProtoCasing', 'expose-proto-casing', 'Protocol in EXPOSE instruction should be lowercase'),
    bk(
      'ExposeInvalidFormat',
      'expose-invalid-format',
      'IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release',
    ),
    bk(
      'InvalidDefinitionDescription',
      'invalid-definition-description',
      'Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.',
      'warning',
      true,
    ),
    bk(
      'CopyIgnoredFile',
      'copy-ignored-file',
      'Attempting to Copy file that is excluded by .dockerignore',
      'warning',
      true,
    ),
    bk('UndefinedVar', 'undefined-var', 'Variables should be defined before their use'),
    // BuildKit's rule has no documentation URL.
    {
      name: 'InvalidBaseImagePlatform',
      description: 'Base image platform does not match expected target platform',
      level: 'warning' as const,
      origin: 'buildkit' as const,
    },
    kiln('RootUserInFinalStage', 'The final stage runs as root: add a USER with an unprivileged user'),
    kiln(
      'BuildToolsInFinalStage',
      'Compilers, -dev packages or toolchain images in the final stage: build in an earlier stage and copy the result',
    ),
    kiln('PackageCacheInFinalStage', "pip or npm caches written into the final image's layers"),
    kiln(
      'AptListsNotCleaned',
      'apt-get install without removing /var/lib/apt/lists in the same RUN leaves the package lists in the layer',
    ),
    kiln('BaseImageLatestTag', 'Base image without a tag or with "latest": builds are not reproducible'),
    kiln(
      'CopyAllBeforeDependencyInstall',
      'COPY of the whole context before the dependency install: any source change re-runs the install',
    ),
    kiln('UnusedStage', 'A stage that the target does not need is never built'),
    kiln(
      'BroadCopyFromStage',
      'COPY --from of a whole tree (/, /usr, /usr/local, /opt, a node_modules) without --exclude into the final image: headers, docs, man pages, static libraries, caches and dev dependencies come along',
    ),
    kiln('InvalidDockerfile', 'The Dockerfile cannot be parsed or planned', 'error'),
  ].map((r) => [r.name, r]),
);
