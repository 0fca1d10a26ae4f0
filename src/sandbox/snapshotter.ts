/**
 * Which snapshotter a RUN uses: the one asked for (--snapshotter) when it works here, else the
 * strongest that does — kernel overlay, then fuse-overlayfs (where the kernel refuses overlay but
 * FUSE is allowed), then native (a copied root). The reasons for passing over each are kept for the
 * sandbox line (isolation.ts).
 */
import { KilnError } from '../util/index.js';
import { fuseRefusal } from './fuse-overlay.js';
import { overlayRefusal, type SnapshotterKind } from './rootfs.js';

export interface SnapshotterChoice {
  kind: SnapshotterKind;
  /** Why kernel overlay was passed over (only when kiln chose: nothing was asked). */
  overlayRefused?: string;
  /** Why fuse-overlayfs was passed over (likewise). */
  fuseRefused?: string;
}

export interface SnapshotterFacts {
  requested?: SnapshotterKind;
  /** The host-root backend finds its changes in / itself: native only. */
  hostRoot: boolean;
  /** Why the kernel's overlayfs cannot be mounted here; undefined when it can. */
  overlayRefused?: string;
  /** Why fuse-overlayfs cannot be mounted here; undefined when it can (or when it was not probed). */
  fuseRefused?: string;
}

/** Is fuse-overlayfs worth probing (a mount) for these facts? Only when it could be chosen. */
export function needsFuseProbe(f: Omit<SnapshotterFacts, 'fuseRefused'>): boolean {
  if (f.hostRoot) return false;
  return f.requested === 'fuse-overlayfs' || (f.requested === undefined && f.overlayRefused !== undefined);
}

/** The choice for these facts (pure); a snapshotter asked for that cannot work here is a user error. */
export function chooseSnapshotter(f: SnapshotterFacts): SnapshotterChoice {
  if (f.hostRoot) {
    if (f.requested && f.requested !== 'native')
      throw new KilnError(
        'USAGE',
        `the host-root backend works with the native snapshotter only: drop --snapshotter ${f.requested}`,
      );
    return { kind: 'native', ...refusals(f) };
  }
  if (f.requested === 'overlay' && f.overlayRefused !== undefined)
    throw new KilnError(
      'SANDBOX',
      `the overlay snapshotter cannot be used here: overlayfs cannot be mounted (${f.overlayRefused})`,
      undefined,
      {
        hint: 'use --snapshotter fuse-overlayfs or native, or leave --snapshotter out (kiln then picks one that works)',
      },
    );
  if (f.requested === 'fuse-overlayfs' && f.fuseRefused !== undefined)
    throw new KilnError('SANDBOX', `the fuse-overlayfs snapshotter cannot be used here: ${f.fuseRefused}`, undefined, {
      hint: 'use --snapshotter native, or leave --snapshotter out (kiln then picks one that works)',
    });
  if (f.requested) return { kind: f.requested };
  if (f.overlayRefused === undefined) return { kind: 'overlay' };
  if (f.fuseRefused === undefined) return { kind: 'fuse-overlayfs', overlayRefused: f.overlayRefused };
  return { kind: 'native', overlayRefused: f.overlayRefused, fuseRefused: f.fuseRefused };
}

function refusals(f: SnapshotterFacts): Pick<SnapshotterChoice, 'overlayRefused' | 'fuseRefused'> {
  if (f.requested) return {};
  return {
    ...(f.overlayRefused !== undefined ? { overlayRefused: f.overlayRefused } : {}),
    ...(f.fuseRefused !== undefined ? { fuseRefused: f.fuseRefused } : {}),
  };
}

/** Probe what is needed in `scratch` (the store's run directory) and choose. */
export async function pickSnapshotter(
  scratch: string,
  requested: SnapshotterKind | undefined,
  hostRoot: boolean,
): Promise<SnapshotterChoice> {
  const overlayRefused = await overlayRefusal(scratch);
  const fuseRefused = needsFuseProbe({ requested, hostRoot, overlayRefused }) ? await fuseRefusal(scratch) : undefined;
  return chooseSnapshotter({ requested, hostRoot, overlayRefused, fuseRefused });
}
