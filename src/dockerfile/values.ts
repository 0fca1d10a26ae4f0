/**
 * Values BuildKit checks once an instruction is expanded: EXPOSE port specs and STOPSIGNAL
 * signals. Shared by the planner (when a value is known before building) and the build engine.
 */

/**
 * EXPOSE words → "port/proto" entries, as BuildKit's parsePortSpecs: `80`, `80/udp`, `8000-8010`,
 * `[ip:][hostPort:]containerPort[/proto]` (a range expands to every port); proto tcp (default),
 * udp or sctp. Throws an Error naming the bad word.
 */
export function parsePortSpecs(ports: string[]): string[] {
  const out: string[] = [];
  for (const raw of ports) {
    const parts = raw.split(':');
    const containerPart = parts[parts.length - 1]!;
    const hostPort = parts.length >= 2 ? parts[parts.length - 2]! : '';
    const ip = parts.length >= 3 ? parts.slice(0, -2).join(':') : '';
    const slash = containerPart.indexOf('/');
    const port = slash < 0 ? containerPart : containerPart.slice(0, slash);
    let proto = slash < 0 ? '' : containerPart.slice(slash + 1).toLowerCase();
    if (port === '') throw new Error(`no port specified: ${raw}<empty>`);
    if (proto === '') proto = 'tcp';
    if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new Error(`invalid proto: ${proto}`);
    if (ip !== '' && !/^\[?[0-9a-fA-F:.]+\]?$/.test(ip)) throw new Error(`invalid IP address: ${ip}`);
    const range = parsePortRange(port);
    if (!range) throw new Error(`invalid containerPort: ${port}`);
    if (hostPort !== '') {
      const h = parsePortRange(hostPort);
      if (!h) throw new Error(`invalid hostPort: ${hostPort}`);
      if (range[1] - range[0] !== h[1] - h[0] && range[1] !== range[0])
        throw new Error(`invalid ranges specified for container and host Ports: ${port} and ${hostPort}`);
    }
    for (let p = range[0]; p <= range[1]; p++) out.push(`${p}/${proto}`);
  }
  return out;
}

function parsePortRange(s: string): [number, number] | undefined {
  const num = (t: string) => (/^\d+$/.test(t) && Number(t) <= 65535 ? Number(t) : undefined);
  if (!s.includes('-')) {
    const n = num(s);
    return n === undefined ? undefined : [n, n];
  }
  const parts = s.split('-');
  if (parts.length !== 2) return undefined;
  const a = num(parts[0]!);
  const b = num(parts[1]!);
  if (a === undefined || b === undefined || b < a) return undefined;
  return [a, b];
}

/** Linux signal numbers by name (moby/sys/signal's SignalMap). */
const SIGNALS: Record<string, number> = {
  ABRT: 6,
  ALRM: 14,
  BUS: 7,
  CHLD: 17,
  CLD: 17,
  CONT: 18,
  FPE: 8,
  HUP: 1,
  ILL: 4,
  INT: 2,
  IO: 29,
  IOT: 6,
  KILL: 9,
  PIPE: 13,
  POLL: 29,
  PROF: 27,
  PWR: 30,
  QUIT: 3,
  SEGV: 11,
  STKFLT: 16,
  STOP: 19,
  SYS: 31,
  TERM: 15,
  TRAP: 5,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  USR1: 10,
  USR2: 12,
  VTALRM: 26,
  WINCH: 28,
  XCPU: 24,
  XFSZ: 25,
  RTMIN: 34,
  RTMAX: 64,
};
for (let i = 1; i <= 15; i++) {
  SIGNALS[`RTMIN+${i}`] = 34 + i;
  SIGNALS[`RTMAX-${i}`] = 64 - i;
}

/**
 * STOPSIGNAL value → signal number, as moby's ParseSignal: a number (not 0), or a name with or
 * without SIG (any case). Undefined when invalid.
 */
export function parseSignal(s: string): number | undefined {
  if (/^[+-]?\d+$/.test(s)) {
    const n = Number(s);
    return n !== 0 && Number.isSafeInteger(n) ? n : undefined;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  return Object.hasOwn(SIGNALS, name) ? SIGNALS[name] : undefined;
}
