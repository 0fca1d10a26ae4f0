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

/** The descriptor in an index for `want` (variant matched when asked; arm64's v8 is its default). */
export function matchPlatform(descs: Descriptor[], want: Platform): Descriptor | undefined {
  const norm = (v: string | undefined, arch: string) => (v === undefined && arch === 'arm64' ? 'v8' : v);
  return descs.find((d) => {
    const p = d.platform;
    if (!p || p.os !== want.os || p.architecture !== want.architecture) return false;
    if (want.variant === undefined) return true;
    return norm(p.variant, p.architecture) === norm(want.variant, want.architecture);
  });
}
