/**
 * Helpers shared by command modules: global options, repeatable flags, KEY=VALUE parsing.
 */
import type { Command } from 'commander';
import { isIP } from 'node:net';
import { KilnError } from '../util/index.js';

export interface GlobalOptions {
  root?: string;
  debug?: boolean;
}

/** The global options (--root, --debug) as seen from a subcommand. */
export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** commander argParser for repeatable options: `--build-arg A=1 --build-arg B=2`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Parse `KEY=VALUE` items; a bare `KEY` takes its value from `fromEnv` when given (docker's rule). */
export function parseKeyValues(
  items: string[] | undefined,
  flag: string,
  fromEnv?: (key: string) => string | undefined,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of items ?? []) {
    const eq = item.indexOf('=');
    if (eq === 0)
      throw new KilnError(
        'USAGE',
        `invalid ${flag} "${item}": the name is empty`,
        {},
        { hint: `use ${flag} NAME=VALUE` },
      );
    if (eq < 0) {
      const v = fromEnv?.(item);
      if (v === undefined) {
        if (fromEnv) continue; // docker: a bare name with no such env var is ignored
        throw new KilnError('USAGE', `invalid ${flag} "${item}": expected NAME=VALUE`);
      }
      out.set(item, v);
    } else {
      out.set(item.slice(0, eq), item.slice(eq + 1));
    }
  }
  return out;
}

/** `--add-host NAME:IP` (or NAME=IP), as docker build takes it; IPv6 addresses keep their colons. */
export function parseAddHost(spec: string): [string, string] {
  const m = /^([^:=\s]+)[:=](\S+)$/.exec(spec);
  if (!m) throw new KilnError('USAGE', `invalid --add-host "${spec}": use NAME:IP`);
  const [, name, ip] = m as unknown as [string, string, string];
  const addr = ip.replace(/^\[(.*)\]$/, '$1');
  if (addr === 'host-gateway')
    throw new KilnError(
      'USAGE',
      `--add-host ${spec}: host-gateway is docker's daemon's address; kiln has no daemon`,
      {},
      { hint: 'give the address itself' },
    );
  if (!isIP(addr)) throw new KilnError('USAGE', `invalid --add-host "${spec}": "${ip}" is not an IP address`);
  return [name, addr];
}

/** docker's size strings: `64m`, `1g`, `512k`, `1048576` (bytes; b, k, m, g, units of 1024, optional trailing b). */
export function parseByteSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(value.trim());
  if (!m) throw new KilnError('USAGE', `invalid ${flag} "${value}": use a size like 64m or 1g`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  const n = Math.floor(Number(m[1]) * mult);
  if (n <= 0) throw new KilnError('USAGE', `invalid ${flag} "${value}": it must be more than 0`);
  return n;
}

const ULIMITS = [
  'as',
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
];

/** `--ulimit NAME=SOFT[:HARD]` (docker's names; HARD defaults to SOFT). */
export function parseUlimit(spec: string): { type: string; soft: number; hard: number } {
  const m = /^([a-z]+)=(\d+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new KilnError('USAGE', `invalid --ulimit "${spec}": use NAME=SOFT[:HARD], e.g. nofile=1024:2048`);
  const [, name, soft, hard] = m as unknown as [string, string, string, string | undefined];
  if (!ULIMITS.includes(name))
    throw new KilnError(
      'USAGE',
      `invalid --ulimit "${spec}": unknown limit "${name}"`,
      {},
      { hint: `one of ${ULIMITS.join(', ')}` },
    );
  const s = Number(soft);
  const h = hard === undefined ? s : Number(hard);
  if (s > h)
    throw new KilnError('USAGE', `invalid --ulimit "${spec}": the soft limit ${s} is above the hard limit ${h}`);
  return { type: `RLIMIT_${name.toUpperCase()}`, soft: s, hard: h };
}
