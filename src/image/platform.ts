/** Platforms: "os/arch[/variant]" strings, the host's, and choosing one from an index. */
import { KilnError } from '../util/index.js';
import type { Descriptor, Platform } from './types.js';

const ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new KilnError('USAGE', `invalid platform "${s}": expected os/arch[/variant], e.g. linux/amd64`);
  }
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  if (p.architecture === 'arm64' && p.variant === undefined) p.variant = undefined;
  return p;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export function hostPlatform(): Platform {
  return { os: 'linux', architecture: ARCH[process.arch] ?? process.arch };
}

/**
 * A platform as containerd's platforms.Normalize makes it for matching: arm64's variant defaults
 * to v8 (and "8" is "v8"), arm's to v7; amd64's v1 is no variant.
 */
export function normalizePlatform(p: Platform): Platform {
  const out: Platform = { ...p, os: p.os.toLowerCase(), architecture: p.architecture.toLowerCase() };
  let v = p.variant?.toLowerCase();
  if (out.architecture === 'aarch64') out.architecture = 'arm64';
  if (out.architecture === 'x86_64' || out.architecture === 'x86-64') out.architecture = 'amd64';
  if (out.architecture === 'arm64') v = v === undefined || v === '' || v === '8' ? 'v8' : v;
  if (out.architecture === 'arm') v = v === undefined || v === '' ? 'v7' : /^\d$/.test(v) ? `v${v}` : v;
  if (out.architecture === 'amd64' && v === 'v1') v = undefined;
  if (v) out.variant = v;
  else delete out.variant;
  return out;
}

/**
 * The descriptor in an index for `want`, as containerd's platform matcher (what docker pull uses)
 * chooses it: os and architecture equal, the variant equal once both are normalized (arm64 → v8,
 * arm → v7); an arm image of a lower variant (v6, v5) only when none of the wanted one is there,
 * the highest first. The index's order breaks ties.
 */
export function matchPlatform(descs: Descriptor[], want: Platform): Descriptor | undefined {
  const w = normalizePlatform(want);
  const candidates = descs.filter((d) => {
    if (!d.platform) return false;
    const p = normalizePlatform(d.platform);
    return p.os === w.os && p.architecture === w.architecture;
  });
  const exact = candidates.find((d) => normalizePlatform(d.platform!).variant === w.variant);
  if (exact || w.architecture !== 'arm') return exact;
  const level = (v: string | undefined) => Number(/^v(\d+)$/.exec(v ?? '')?.[1] ?? NaN);
  const wanted = level(w.variant);
  return candidates
    .filter((d) => level(normalizePlatform(d.platform!).variant) < wanted)
    .sort((a, b) => level(normalizePlatform(b.platform!).variant) - level(normalizePlatform(a.platform!).variant))[0];
}

/** The platforms of an index, for messages: "linux/amd64, linux/arm64/v8". */
export function platformsOf(descs: Descriptor[]): string {
  return descs.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')).join(', ');
}
