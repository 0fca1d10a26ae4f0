/**
 * `RUN --mount=…` option strings → typed mounts, with BuildKit's keys, aliases, defaults and
 * checks (instructions/commands_runmount.go). Each value is expanded on its own (after the CSV
 * split), with the stage's variables, as BuildKit does.
 *
 * Errors are plain `MountError`s naming the option; the parser and the planner add the position.
 */
import type { MountSpec } from './ast.js';
import { parseRAMInBytes, splitCsv } from './words.js';

export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountError';
  }
}

export interface ParseMountOptions {
  /**
   * At parse time values may still hold `$VAR`s (expanded later): fields whose value contains a
   * `$` are then skipped instead of checked.
   */
  lenient?: boolean;
  /** Expand one option value (the planner and the build engine pass the stage's expansion). */
  expand?: (value: string, key: string) => string;
}

const TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'] as const;
type MountType = (typeof TYPES)[number];
const SHARING = ['shared', 'private', 'locked'] as const;
const KEYS = [
  'type',
  'from',
  'source',
  'src',
  'target',
  'dst',
  'destination',
  'readonly',
  'ro',
  'readwrite',
  'rw',
  'id',
  'sharing',
  'required',
  'mode',
  'uid',
  'gid',
  'size',
  'env',
];

/** Go's strconv.ParseBool. */
function parseBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function parseUint32(v: string, base: 8 | 10): number | undefined {
  if (!(base === 8 ? /^[0-7]+$/ : /^[0-9]+$/).test(v)) return undefined;
  const n = parseInt(v, base);
  return n <= 0xffffffff ? n : undefined;
}

export function parseMount(spec: string, opts: ParseMountOptions = {}): MountSpec {
  if (spec === '') throw new MountError('--mount needs options (e.g. --mount=type=cache,target=/root/.cache)');
  let fields: string[];
  try {
    fields = splitCsv(spec);
  } catch (e) {
    throw new MountError(`failed to parse --mount=${spec}: ${(e as Error).message}`);
  }
  let type: MountType = 'bind';
  let from: string | undefined;
  let source: string | undefined;
  let target: string | undefined;
  let id: string | undefined;
  let sharing: string | undefined;
  let env: string | undefined;
  let readonly: boolean | undefined; // undefined: the type's default
  let required = false;
  let mode: number | undefined;
  let uid: number | undefined;
  let gid: number | undefined;
  let size: number | undefined;

  const secretOrSsh = () => type === 'secret' || type === 'ssh';
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (key === 'readonly' || key === 'ro') readonly = true;
      else if (key === 'readwrite' || key === 'rw') readonly = false;
      else if (key === 'required' && secretOrSsh()) required = true;
      else if (key === 'required') throw new MountError(`unexpected key 'required' for mount type '${type}'`);
      else throw new MountError(`invalid field '${field}' must be a key=value pair`);
      continue;
    }
    let value = field.slice(eq + 1);
    if (!KEYS.includes(key)) {
      throw new MountError(
        `unexpected key '${key}' in '${field}' (--mount keys: type, from, source, target, readonly, readwrite, id, sharing, required, mode, uid, gid, size, env)`,
      );
    }
    if (opts.expand) value = opts.expand(value, key);
    else if (opts.lenient && value.includes('$')) continue; // checked once expanded
    const invalid = () => new MountError(`invalid value "${value}" for '${key}' in --mount`);
    switch (key) {
      case 'type': {
        const t = value.toLowerCase();
        if (!(TYPES as readonly string[]).includes(t))
          throw new MountError(`unsupported mount type "${value}" (expected bind, cache, tmpfs, secret or ssh)`);
        type = t as MountType;
        break;
      }
      case 'from':
        from = value;
        break;
      case 'source':
      case 'src':
        source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = value;
        break;
      case 'readonly':
      case 'ro': {
        const b = parseBool(value);
        if (b === undefined) throw invalid();
        readonly = b;
        break;
      }
      case 'readwrite':
      case 'rw': {
        const b = parseBool(value);
        if (b === undefined) throw invalid();
        readonly = !b;
        break;
      }
      case 'required': {
        if (!secretOrSsh()) throw new MountError(`unexpected key 'required' for mount type '${type}'`);
        const b = parseBool(value);
        if (b === undefined) throw invalid();
        required = b;
        break;
      }
      case 'size':
        if (type !== 'tmpfs') throw new MountError(`unexpected key 'size' for mount type '${type}'`);
        size = parseRAMInBytes(value);
        if (size === undefined) throw invalid();
        break;
      case 'env':
        if (type !== 'secret') throw new MountError(`unexpected key 'env' for mount type '${type}'`);
        env = value;
        break;
      case 'id':
        id = value;
        break;
      case 'sharing':
        sharing = value.toLowerCase();
        if (!(SHARING as readonly string[]).includes(sharing))
          throw new MountError(`unsupported sharing value "${value}" (expected shared, private or locked)`);
        break;
      case 'mode':
        mode = parseUint32(value, 8);
        if (mode === undefined) throw new MountError(`invalid value ${value} for mode (an octal number like 0755)`);
        break;
      case 'uid':
        uid = parseUint32(value, 10);
        if (uid === undefined) throw new MountError(`invalid value ${value} for uid`);
        break;
      case 'gid':
        gid = parseUint32(value, 10);
        if (gid === undefined) throw new MountError(`invalid value ${value} for gid`);
        break;
    }
  }

  // BuildKit's validateMount.
  if (type !== 'secret' && type !== 'ssh' && type !== 'cache') {
    if (mode !== undefined) throw new MountError(`mode not allowed for "${type}" type mounts`);
    if (uid !== undefined) throw new MountError(`uid not allowed for "${type}" type mounts`);
    if (gid !== undefined) throw new MountError(`gid not allowed for "${type}" type mounts`);
  }
  if (sharing !== undefined && type !== 'cache') throw new MountError(`invalid cache sharing set for ${type} mount`);
  const needTarget = (): string => {
    if (target === undefined || target === '') {
      if (opts.lenient && !opts.expand && spec.includes('$')) return '';
      throw new MountError(`--mount=type=${type} requires a target (target=/path)`);
    }
    return target;
  };
  switch (type) {
    case 'bind':
      return { type, target: needTarget(), source, from, readwrite: readonly === undefined ? false : !readonly };
    case 'cache':
      return {
        type,
        target: needTarget(),
        id,
        source,
        from,
        sharing: (sharing ?? 'shared') as 'shared' | 'private' | 'locked',
        readonly: readonly ?? false,
        mode,
        uid,
        gid,
      };
    case 'tmpfs':
      return { type, target: needTarget(), size };
    case 'secret': {
      if (from !== undefined) throw new MountError('secret mount should not have a from');
      if (source !== undefined && source !== '' && id !== undefined && id !== '')
        throw new MountError("both source and id can't be set");
      const sid = source || id || undefined;
      if (sid === undefined && !target && env === undefined && !(opts.lenient && spec.includes('$'))) {
        throw new MountError('invalid secret mount: one of id, source, target or env is required');
      }
      return { type, id: sid, target: target || undefined, env, required, mode, uid, gid };
    }
    case 'ssh':
      return { type, id: id || undefined, target: target || undefined, required, mode, uid, gid };
  }
}
