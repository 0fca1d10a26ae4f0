/**
 * The Dockerfile AST: what the parser produces. Positions are 1-based. Arguments are kept as
 * written (unexpanded words, quotes included); expansion happens in plan/ and again at build time
 * with the base image's ENV (BuildKit's semantics): see `expandInstruction` in expand-instruction.ts.
 */

export interface Position {
  line: number;
  column: number;
}

export interface SourceRange {
  start: Position;
  /** Last line of the instruction, including continuations (heredoc bodies excluded). */
  endLine: number;
}

export interface Directives {
  syntax?: string;
  escape: '\\' | '`';
  check?: string;
}

/**
 * A flag: `--name=value`, or `--name` (value undefined). As in BuildKit, the value has its quotes
 * removed and backslash escapes processed, but `$VAR`s are not expanded yet.
 */
export interface Flag {
  name: string;
  value: string | undefined;
  position: Position;
}

export interface Heredoc {
  /** Delimiter word, without quotes. */
  name: string;
  /** Body with the closing delimiter removed; ends with '\n' unless empty. */
  content: string;
  /** `<<-`: leading tabs were stripped from the body. */
  chomp: boolean;
  /** False when the delimiter is (partly) quoted (`<<"EOF"` / `<<'EOF'`): no expansion in the body. */
  expand: boolean;
  /** `3<<EOF`: the file descriptor written before `<<` (0 when none). */
  fileDescriptor?: number;
}

/**
 * Shell form (a string for the shell) or exec form (a JSON array). In shell form, `heredocs` are
 * the bodies of the `<<NAME` markers of the line, in order (RUN only; empty otherwise). BuildKit
 * runs `RUN <<EOF` (the marker alone) as the body given to the shell (`#!` first line: as a
 * script file), and anything else as `command + "\n" + body + NAME` per heredoc.
 */
export type CommandForm = { form: 'shell'; command: string; heredocs: Heredoc[] } | { form: 'exec'; args: string[] };

export interface KeyValue {
  key: string;
  value: string;
}

/**
 * A `RUN --mount`, BuildKit's keys and defaults: bind is read-only unless rw; cache is shared and
 * writable, its id defaults to the target; a secret's id defaults to basename(target) and its
 * target to /run/secrets/ID; ssh's id defaults to "default". Unexpanded at parse time (fields
 * holding a `$` keep their defaults there): the planner and the engine re-parse `mountFlags`.
 */
export type MountSpec =
  | { type: 'bind'; target: string; source?: string; from?: string; readwrite: boolean }
  | {
      type: 'cache';
      target: string;
      id?: string;
      source?: string;
      from?: string;
      sharing: 'shared' | 'private' | 'locked';
      readonly: boolean;
      mode?: number;
      uid?: number;
      gid?: number;
    }
  | { type: 'tmpfs'; target: string; size?: number }
  | {
      type: 'secret';
      id?: string;
      target?: string;
      env?: string;
      required: boolean;
      mode?: number;
      uid?: number;
      gid?: number;
    }
  | { type: 'ssh'; id?: string; target?: string; required: boolean; mode?: number; uid?: number; gid?: number };

interface Base {
  /** Upper-case instruction keyword. */
  kind: string;
  range: SourceRange;
  /** The instruction's text as written (continuations joined), for messages and history. */
  original: string;
  flags: Flag[];
}

export interface FromInstruction extends Base {
  kind: 'FROM';
  image: string;
  /** Stage name as written (compare lower-cased). */
  stageName?: string;
  platform?: string;
}

export interface RunInstruction extends Base {
  kind: 'RUN';
  command: CommandForm;
  mounts: MountSpec[];
  /** Raw `--mount` strings, unexpanded (the engine re-expands them with the stage env). */
  mountFlags: string[];
  network?: 'default' | 'none' | 'host';
  security?: 'sandbox' | 'insecure';
}

export interface CmdInstruction extends Base {
  kind: 'CMD';
  command: CommandForm;
}
export interface EntrypointInstruction extends Base {
  kind: 'ENTRYPOINT';
  command: CommandForm;
}

export interface LabelInstruction extends Base {
  kind: 'LABEL';
  pairs: KeyValue[];
}
export interface EnvInstruction extends Base {
  kind: 'ENV';
  pairs: KeyValue[];
}
export interface ArgInstruction extends Base {
  kind: 'ARG';
  args: { name: string; default?: string }[];
}
export interface ExposeInstruction extends Base {
  kind: 'EXPOSE';
  ports: string[];
}

export interface CopyInstruction extends Base {
  kind: 'COPY' | 'ADD';
  /**
   * Sources as written (unexpanded). A heredoc source appears as its marker (`<<NAME`,
   * `<<-"NAME"`): `parseHeredocMarker(src)` gives its name, its body is in `heredocs`.
   */
  sources: string[];
  dest: string;
  heredocs: Heredoc[];
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  /** ADD only */
  checksum?: string;
  keepGitDir?: boolean;
  unpack?: boolean;
}

export interface VolumeInstruction extends Base {
  kind: 'VOLUME';
  paths: string[];
}
export interface UserInstruction extends Base {
  kind: 'USER';
  user: string;
}
export interface WorkdirInstruction extends Base {
  kind: 'WORKDIR';
  path: string;
}
export interface StopsignalInstruction extends Base {
  kind: 'STOPSIGNAL';
  signal: string;
}
export interface ShellInstruction extends Base {
  kind: 'SHELL';
  shell: string[];
}
export interface MaintainerInstruction extends Base {
  kind: 'MAINTAINER';
  name: string;
}
export interface OnbuildInstruction extends Base {
  kind: 'ONBUILD';
  /** The trigger as written, heredoc bodies appended (stored in the image config; parsed again when it fires). */
  expression: string;
  trigger: Instruction;
}
export interface HealthcheckInstruction extends Base {
  kind: 'HEALTHCHECK';
  /** NONE disables an inherited health check. */
  none: boolean;
  command?: CommandForm;
  /** Durations in nanoseconds (docker's config unit); undefined = inherit default. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | EntrypointInstruction
  | LabelInstruction
  | EnvInstruction
  | ArgInstruction
  | ExposeInstruction
  | CopyInstruction
  | VolumeInstruction
  | UserInstruction
  | WorkdirInstruction
  | StopsignalInstruction
  | ShellInstruction
  | MaintainerInstruction
  | OnbuildInstruction
  | HealthcheckInstruction;

export interface Warning {
  message: string;
  line?: number;
  column?: number;
  /** BuildKit build-check name where one exists (e.g. "NoEmptyContinuation"). */
  rule?: string;
}

export interface Dockerfile {
  file: string;
  directives: Directives;
  instructions: Instruction[];
  warnings: Warning[];
  /** The text's lines, for error messages. */
  lines: string[];
}
