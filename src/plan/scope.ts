/**
 * ARG and ENV scoping, BuildKit's rules, as one small state machine used by the planner and again
 * by the build engine (which starts it with the base image's ENV):
 * - ARGs before the first FROM are global: visible in FROM lines only (with the automatic platform
 *   ARGs); inside a stage a global is visible once redeclared (`ARG NAME`);
 * - `ARG NAME[=default]` in a stage takes the --build-arg value, else its default (expanded; not
 *   expanded at all when a --build-arg overrides it), else the global ARG's value, else the
 *   automatic value (TARGETARCH…); without any value it is declared but unset;
 * - ENV and ARG share one list of variables (BuildKit keeps both in the stage's environment), so
 *   the one set last wins: `ARG X` then `ENV X=…` → the ENV; `ENV X=…` then `ARG X=…` → the ARG for
 *   the rest of the stage (RUN sees it too), while the image config keeps the ENV. This is what
 *   the reference's "an ENV instruction always overrides an ARG of the same name" means in BuildKit;
 *   the base image's ENV likewise gives way to a later ARG with a value;
 * - a stage based on another stage (`FROM build`) inherits its ENV and its ARGs;
 * - proxy build args (HTTP_PROXY family) reach RUN without being declared.
 */
import { expandWord, type Lookup } from '../dockerfile/index.js';

export const PROXY_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];
export const PLATFORM_ARGS = [
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
];

/** Build args BuildKit itself understands: never reported as unused. */
export function isPredefinedArg(name: string): boolean {
  return (
    PROXY_ARGS.some((p) => p.toLowerCase() === name.toLowerCase()) ||
    PLATFORM_ARGS.includes(name) ||
    name.startsWith('BUILDKIT_') ||
    name === 'SOURCE_DATE_EPOCH'
  );
}

/**
 * "os/arch[/variant]" as BuildKit normalizes it (containerd's platforms.Normalize): lower case,
 * x86_64 → amd64, aarch64 → arm64 (its v8 variant dropped), armhf/armel → arm/v7, arm/v6; an os
 * alone gets no architecture here (the caller validates the shape).
 */
export function normalizePlatform(p: string): string {
  const [os = '', arch = '', variant = ''] = p.toLowerCase().split('/');
  let a = arch;
  let v = variant;
  if (a === 'x86_64' || a === 'x86-64') a = 'amd64';
  else if (a === 'i386') a = '386';
  else if (a === 'aarch64' || a === 'arm64') {
    a = 'arm64';
    if (v === '8' || v === 'v8') v = '';
  } else if (a === 'armhf') [a, v] = ['arm', 'v7'];
  else if (a === 'armel') [a, v] = ['arm', 'v6'];
  else if (a === 'arm') {
    if (v === '' || v === '7') v = 'v7';
    else if (/^\d$/.test(v)) v = `v${v}`;
  }
  return [os, a, v].filter(Boolean).join('/');
}

/** Automatic platform ARG values for "os/arch[/variant]" target and build platforms (BuildKit's). */
export function platformArgs(target: string, build: string): Record<string, string> {
  target = normalizePlatform(target);
  build = normalizePlatform(build);
  const [tos = 'linux', tarch = 'amd64', tvar = ''] = target.split('/');
  const [bos = 'linux', barch = 'amd64', bvar = ''] = build.split('/');
  return {
    TARGETPLATFORM: target,
    TARGETOS: tos,
    TARGETARCH: tarch,
    TARGETVARIANT: tvar,
    BUILDPLATFORM: build,
    BUILDOS: bos,
    BUILDARCH: barch,
    BUILDVARIANT: bvar,
  };
}

export class StageScope {
  /** The stage's variables in BuildKit's order: base ENV, then ENV and valued ARGs as they come. */
  private readonly vars = new Map<string, string>();
  /** ENV for the image config (base image's ENV and the stage's ENV instructions). */
  private readonly env = new Map<string, string>();
  /** Declared ARGs with their value (undefined = declared, no value). */
  private readonly args = new Map<string, string | undefined>();
  /** Names the expansion looked up (to tell which build args were used). */
  readonly used = new Set<string>();

  constructor(
    /** Global ARG values (after --build-arg); an undefined value means declared without one. */
    private readonly globals: ReadonlyMap<string, string | undefined>,
    private readonly buildArgs: ReadonlyMap<string, string>,
    private readonly automatic: Readonly<Record<string, string>>,
    baseEnv: Iterable<[string, string]> = [],
  ) {
    for (const [k, v] of baseEnv) {
      this.env.set(k, v);
      this.vars.set(k, v);
    }
  }

  /** A lookup for FROM lines: the global ARGs, then the automatic platform ARGs. */
  static forFrom(
    globals: ReadonlyMap<string, string | undefined>,
    automatic: Readonly<Record<string, string>>,
    buildArgs: ReadonlyMap<string, string> = new Map(),
  ): Lookup {
    // An automatic platform arg takes a --build-arg of its name even where no ARG declares it
    // (BuildKit's defaultArgs: `--build-arg TARGETARCH=x` makes FROM img-$TARGETARCH img-x); the
    // stage's platform stays the target's.
    return (name) =>
      globals.get(name) ?? (Object.hasOwn(automatic, name) ? (buildArgs.get(name) ?? automatic[name]) : undefined);
  }

  /** The scope of a stage based on this one (`FROM <this stage>`): ENV and ARGs are inherited. */
  child(): StageScope {
    const c = new StageScope(this.globals, this.buildArgs, this.automatic);
    for (const [k, v] of this.vars) c.vars.set(k, v);
    for (const [k, v] of this.env) c.env.set(k, v);
    for (const [k, v] of this.args) c.args.set(k, v);
    return c;
  }

  /** The value of a variable now (what `$NAME` expands to in ENV, WORKDIR, COPY…). */
  readonly lookup: Lookup = (name) => {
    this.used.add(name);
    return this.vars.get(name);
  };

  /** Is the name an ENV or a declared ARG of this scope (even without a value)? */
  has(name: string): boolean {
    return this.vars.has(name) || this.args.has(name);
  }

  expand(word: string, escape = '\\'): string {
    return expandWord(word, this.lookup, { escape });
  }

  /**
   * The value `ARG name[=default]` takes here (BuildKit's rule, the one place it is written): the
   * --build-arg, else the default, else the global ARG's value, else the automatic platform
   * value; undefined when it has none (declared, unset). `def` is the default already expanded,
   * or a function expanding it, only called when no --build-arg overrides it (as BuildKit). This
   * is also the value the step's history shows (`ARG name=value`). Changes nothing.
   */
  argValue(name: string, def: string | undefined | (() => string | undefined)): string | undefined {
    if (this.buildArgs.has(name)) return this.buildArgs.get(name);
    if (def !== undefined) return typeof def === 'function' ? def() : def;
    if (this.globals.get(name) !== undefined) return this.globals.get(name);
    if (Object.hasOwn(this.automatic, name)) return this.automatic[name];
    return undefined;
  }

  /** `ARG name[=default]`: declares it with `argValue`'s value, which it returns. */
  declareArg(name: string, def: string | undefined | (() => string | undefined)): string | undefined {
    const v = this.argValue(name, def);
    this.setArg(name, v);
    return v;
  }

  /** Declares an ARG with its effective value already computed (`argValue`). */
  setArg(name: string, value: string | undefined): void {
    this.args.set(name, value);
    if (value !== undefined) this.vars.set(name, value);
  }

  /** `ENV key=value`. */
  setEnv(key: string, value: string): void {
    this.env.set(key, value);
    this.vars.set(key, value);
  }

  /** The ENV of the image config. */
  envEntries(): [string, string][] {
    return [...this.env.entries()];
  }

  /**
   * Declared ARGs whose value is the one in effect and not already the config ENV's: what RUN
   * sees on top of the image config's Env.
   */
  argEntries(): [string, string][] {
    const out: [string, string][] = [];
    for (const [k, v] of this.args)
      if (v !== undefined && this.vars.get(k) === v && this.env.get(k) !== v) out.push([k, v]);
    return out;
  }

  /** Proxy build args given on the command line: in RUN's env even when undeclared. */
  proxyEntries(): [string, string][] {
    return PROXY_ARGS.filter((k) => this.buildArgs.has(k) && !this.has(k)).map((k) => [k, this.buildArgs.get(k)!]);
  }

  /**
   * RUN's whole environment, in order: the stage's variables (base ENV, ENV, valued ARGs; the last
   * set wins) then the undeclared proxy build args. Use this rather than config Env + argEntries().
   */
  runEnv(): [string, string][] {
    return [...this.vars.entries(), ...this.proxyEntries()];
  }
}
