/**
 * Comparing an image kiln built with the one BuildKit built from the same Dockerfile: the final
 * file lists, the hard links, the stored content size and the config, each as a list of
 * differences (empty when they agree), so that a failing assertion says what differs.
 */
import type { FsEntry, SavedImage } from '../../helpers/image-fs.js';

export interface FsDiffOptions {
  /** Paths whose content may differ (bytecode with its source's mtime, RECORD files listing it). */
  contentMayDiffer?: (path: string) => boolean;
  /**
   * Paths BuildKit has and kiln deliberately has not (docs/dockerfile-differences.md): the empty
   * mount points a RUN in a scratch stage leaves behind.
   */
  onlyInBuildKit?: (path: string, e: FsEntry) => boolean;
}

function show(e: FsEntry | undefined, content: boolean): string {
  if (!e) return 'absent';
  return `${e.type} ${e.mode.toString(8)} ${e.uid}:${e.gid}${e.type === 'file' ? ` size=${e.size}` : ''}${content && e.sha256 ? ` sha=${e.sha256.slice(0, 12)}` : ''}${e.linkname ? ` -> ${e.linkname}` : ''}`;
}

/** Differences between the final file systems: path, type, mode, owner, size, content, link target. */
export function fsDiff(kiln: SavedImage, ref: SavedImage, opts: FsDiffOptions = {}): string[] {
  const out: string[] = [];
  for (const p of [...new Set([...kiln.fs.keys(), ...ref.fs.keys()])].sort()) {
    const a = kiln.fs.get(p);
    const b = ref.fs.get(p);
    if (!a && b && opts.onlyInBuildKit?.(p, b)) continue;
    const content = !opts.contentMayDiffer?.(p);
    if (show(a, content) !== show(b, content))
      out.push(`${p}: kiln ${show(a, content)} | buildkit ${show(b, content)}`);
  }
  return out;
}

/** Every hard link of the image's layers above the first `base` ones, as "path => target". */
export function hardLinks(img: SavedImage, base: number): string[] {
  return img.layers
    .slice(base)
    .flatMap((l) => l.filter((e) => e.tarType === 'link').map((e) => `${e.path} => ${e.linkname}`))
    .sort();
}

/** Bytes of file content the layers above the first `base` ones store (a hard link stores none). */
export function storedBytes(img: SavedImage, base: number): number {
  return img.layers
    .slice(base)
    .reduce(
      (n, l) => n + l.reduce((m, e) => m + (e.tarType === 'file' || e.tarType === 'contiguous-file' ? e.size : 0), 0),
      0,
    );
}

const CONFIG_KEYS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'ExposedPorts',
  'Labels',
  'Volumes',
  'StopSignal',
  'Healthcheck',
  'Shell',
  'OnBuild',
] as const;

/**
 * The config's keys docker reads. Absent and null are one thing; so are absent and empty for the
 * others, but not for Cmd and Entrypoint: `[]` there is a value docker reads otherwise than none
 * when a user passes arguments (issue 25's `CMD []`).
 */
export function configOf(img: SavedImage): Record<string, unknown> {
  const c = (img.config.config ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of CONFIG_KEYS) {
    const v = c[k];
    if (v === undefined || v === null) continue;
    const empty =
      v === '' ||
      (Array.isArray(v) && v.length === 0) ||
      (typeof v === 'object' && Object.keys(v as object).length === 0);
    if (empty && k !== 'Cmd' && k !== 'Entrypoint') continue;
    out[k] = v;
  }
  return out;
}
