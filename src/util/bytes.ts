import { KilnError } from './errors.js';

/** Sizes as dive's highest-wasted-bytes takes them (go-humanize: "20MB", "1.5GiB", "1000"). */
export function parseBytes(s: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i.exec(s);
  if (!m) throw new KilnError('USAGE', `invalid size "${s}": use bytes or a unit, e.g. 20MB or 1.5GiB`);
  const exp = ' kmgtp'.indexOf(m[2]!.toLowerCase() || ' ');
  const base = m[3] ? 1024 : 1000;
  return Math.round(Number(m[1]) * base ** exp);
}

/** A size in SI units, as docker and dive print them ("1.2 MB", "512 B"). */
export function human(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${n < 0 ? '-' : ''}${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${u[i]}`;
}
