/** The store a command works on: --root, else KILN_ROOT, else the per-user default. */
import type { Command } from 'commander';
import { Store } from '../store/index.js';
import { globalOptions } from './options.js';

export function openStoreFromCli(cmd: Command): Promise<Store> {
  return Store.open({ root: globalOptions(cmd).root });
}

/** "1.2MB" as docker prints sizes (SI units). */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${
    i === 0
      ? v
      : v
          .toPrecision(3)
          .replace(/\.0+$/, '')
          .replace(/(\.\d*?)0+$/, '$1')
  }${units[i]}`;
}

/** "2 minutes ago" as docker prints times. */
export function humanAgo(iso: string | undefined): string {
  if (!iso) return 'N/A';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return 'N/A';
  const f = (n: number, u: string) => `${Math.floor(n)} ${u}${Math.floor(n) === 1 ? '' : 's'} ago`;
  if (s < 60) return 'Less than a minute ago';
  if (s < 3600) return f(s / 60, 'minute');
  if (s < 86400) return f(s / 3600, 'hour');
  if (s < 86400 * 30) return f(s / 86400, 'day');
  if (s < 86400 * 365) return f(s / (86400 * 30), 'month');
  return f(s / (86400 * 365), 'year');
}

export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows)
    process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('')}\n`);
}
