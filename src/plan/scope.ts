/**
 * ARG and ENV scoping, BuildKit's rules, as one small state machine used by the planner and again
 * by the build engine (which starts it with the base image's ENV):
 * - global ARGs (before the first FROM) are visible in FROM lines only;
 * - inside a stage an ARG is visible after it is declared; `ARG NAME` takes the --build-arg
 *   value, else its own default, else the global ARG's value;
 * - ENV wins over an ARG of the same name;
 * - predefined ARGs (the proxy family, TARGETPLATFORM and kin, BUILDPLATFORM and kin) need no
 *   declaration to be given, and are visible in stages once declared, with automatic values.
 */
import { expandWord, type Lookup } from '../dockerfile/expand.js';

export const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];
export const PLATFORM_ARGS = ['TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT'];

/** Automatic platform ARG values for "os/arch[/variant]" target and build platforms. */
export function platformArgs(target: string, build: string): Record<string, string> {
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
  /** Declared ARGs in this stage with their current value (undefined = declared, no value). */
  private readonly args = new Map<string, string | undefined>();
  private readonly env = new Map<string, string>();
  /** Names the expansion looked up (to tell which build args were used). */
  readonly used = new Set<string>();

  constructor(
    /** Global ARG values (after --build-arg). */
    private readonly globals: ReadonlyMap<string, string | undefined>,
    private readonly buildArgs: ReadonlyMap<string, string>,
    private readonly automatic: Readonly<Record<string, string>>,
    baseEnv: Iterable<[string, string]> = [],
  ) {
    for (const [k, v] of baseEnv) this.env.set(k, v);
  }

  /** A scope for FROM lines: only global ARGs (and automatic platform ARGs). */
  static forFrom(globals: ReadonlyMap<string, string | undefined>, automatic: Readonly<Record<string, string>>): Lookup {
    return (name) => {
      if (globals.has(name)) return globals.get(name);
      return automatic[name];
    };
  }

  /** Copy for a child stage (FROM <stage>): ENV is inherited, ARGs are not. */
  child(): StageScope {
    return new StageScope(this.globals, this.buildArgs, this.automatic, this.env.entries());
  }

  readonly lookup: Lookup = (name) => {
    this.used.add(name);
    if (this.env.has(name)) return this.env.get(name);
    if (this.args.has(name)) return this.args.get(name);
    return undefined;
  };

  /** Is the name an ENV or a declared ARG of this scope (even without a value)? */
  has(name: string): boolean {
    return this.env.has(name) || this.args.has(name);
  }

  expand(word: string, escape = '\\'): string {
    return expandWord(word, this.lookup, { escape });
  }

  /** `ARG name[=default]` — `def` is the default word, already expanded by the caller. */
  declareArg(name: string, def: string | undefined): void {
    let v: string | undefined;
    if (this.buildArgs.has(name)) v = this.buildArgs.get(name);
    else if (def !== undefined) v = def;
    else if (this.globals.has(name)) v = this.globals.get(name);
    else if (name in this.automatic) v = this.automatic[name];
    this.args.set(name, v);
  }

  setEnv(key: string, value: string): void {
    this.env.set(key, value);
  }

  envEntries(): [string, string][] {
    return [...this.env.entries()];
  }

  /** Declared ARGs that have a value: they are in RUN's environment (not in the image config). */
  argEntries(): [string, string][] {
    const out: [string, string][] = [];
    for (const [k, v] of this.args) if (v !== undefined && !this.env.has(k)) out.push([k, v]);
    return out;
  }

  /** Proxy build args given on the command line: in RUN's env even when undeclared. */
  proxyEntries(): [string, string][] {
    return PROXY_ARGS.filter((k) => this.buildArgs.has(k) && !this.args.has(k)).map((k) => [k, this.buildArgs.get(k)!]);
  }
}
