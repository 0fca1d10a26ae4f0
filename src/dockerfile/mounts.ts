/**
 * `RUN --mount=…` option strings → typed mounts (BuildKit's keys and defaults).
 * At parse time values may still hold `$VAR`s (expanded at build time): with `lenient`, numeric
 * fields that are not numbers yet are left undefined instead of failing.
 */
import type { MountSpec } from './ast.js';
import { splitCsv } from './words.js';

const KEYS: Record<string, string[]> = {
  bind: ['type', 'target', 'source', 'from', 'readonly', 'readwrite'],
  cache: ['type', 'target', 'id', 'source', 'from', 'readonly', 'sharing', 'mode', 'uid', 'gid'],
  tmpfs: ['type', 'target', 'size'],
  secret: ['type', 'id', 'target', 'env', 'required', 'mode', 'uid', 'gid'],
  ssh: ['type', 'id', 'target', 'required', 'mode', 'uid', 'gid'],
};
const ALIASES: Record<string, string> = {
  dst: 'target',
  destination: 'target',
  src: 'source',
  ro: 'readonly',
  rw: 'readwrite',
};

export function parseMount(spec: string, opts: { lenient?: boolean } = {}): MountSpec {
  const fields = new Map<string, string | undefined>();
  for (const raw of splitCsv(spec)) {
    if (raw === '') continue;
    const eq = raw.indexOf('=');
    let key = (eq < 0 ? raw : raw.slice(0, eq)).trim().toLowerCase();
    key = ALIASES[key] ?? key;
    const value = eq < 0 ? undefined : raw.slice(eq + 1);
    fields.set(key, value);
  }
  const type = fields.get('type') ?? 'bind';
  const allowed = KEYS[type];
  if (!allowed) throw new Error(`unsupported mount type "${type}" in --mount (expected bind, cache, tmpfs, secret or ssh)`);
  for (const k of fields.keys()) {
    if (!allowed.includes(k)) throw new Error(`unexpected key "${k}" in --mount=type=${type} (allowed: ${allowed.filter((a) => a !== 'type').join(', ')})`);
  }
  const str = (k: string): string | undefined => {
    const v = fields.get(k);
    return v === undefined ? undefined : v;
  };
  const bool = (k: string, dflt: boolean): boolean => {
    if (!fields.has(k)) return dflt;
    const v = fields.get(k);
    if (v === undefined) return true; // bare key: `ro`, `rw`, `required`
    if (/^(true|1)$/i.test(v)) return true;
    if (/^(false|0)$/i.test(v)) return false;
    if (opts.lenient && v.includes('$')) return dflt;
    throw new Error(`invalid value "${v}" for "${k}" in --mount: expected true or false`);
  };
  const int = (k: string, base: 8 | 10): number | undefined => {
    const v = fields.get(k);
    if (v === undefined) return undefined;
    const ok = base === 8 ? /^0?[0-7]+$/.test(v) : /^\d+$/.test(v);
    if (!ok) {
      if (opts.lenient && v.includes('$')) return undefined;
      throw new Error(`invalid value "${v}" for "${k}" in --mount: expected ${base === 8 ? 'an octal mode' : 'a number'}`);
    }
    return parseInt(v, base);
  };
  const target = str('target');
  const needTarget = () => {
    if (!target) throw new Error(`--mount=type=${type} requires a target (target=/path)`);
    return target;
  };
  switch (type) {
    case 'bind': {
      const rw = bool('readwrite', false);
      const ro = bool('readonly', !rw);
      return { type: 'bind', target: needTarget(), source: str('source'), from: str('from'), readwrite: !ro };
    }
    case 'cache': {
      const sharing = str('sharing') ?? 'shared';
      if (!['shared', 'private', 'locked'].includes(sharing)) throw new Error(`invalid sharing "${sharing}" in --mount=type=cache: expected shared, private or locked`);
      return {
        type: 'cache',
        target: needTarget(),
        id: str('id'),
        source: str('source'),
        from: str('from'),
        sharing: sharing as 'shared' | 'private' | 'locked',
        readonly: bool('readonly', false),
        mode: int('mode', 8),
        uid: int('uid', 10),
        gid: int('gid', 10),
      };
    }
    case 'tmpfs': {
      const size = str('size');
      let bytes: number | undefined;
      if (size !== undefined) {
        const m = /^(\d+)([kmg]?)b?$/i.exec(size);
        if (!m) {
          if (!(opts.lenient && size.includes('$'))) throw new Error(`invalid size "${size}" in --mount=type=tmpfs`);
        } else bytes = Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2]!.toLowerCase()]!;
      }
      return { type: 'tmpfs', target: needTarget(), size: bytes };
    }
    case 'secret':
    case 'ssh': {
      const m = {
        type,
        id: str('id'),
        target: target,
        required: bool('required', false),
        mode: int('mode', 8),
        uid: int('uid', 10),
        gid: int('gid', 10),
      };
      if (type === 'secret') return { ...m, type: 'secret', env: str('env') };
      return { ...m, type: 'ssh' };
    }
  }
  throw new Error(`unsupported mount type "${type}"`);
}
