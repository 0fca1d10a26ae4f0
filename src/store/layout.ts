/**
 * The layout of a store's root: where each kind of state lives. The store is its only owner; the
 * folders that keep state in it (sandbox's run dirs, the build cache, RUN cache mounts) ask the
 * store (or this layout, when all they hold is the root's path) for their place and never join a
 * path onto the root themselves. The layout is the one stores have always had: an existing store
 * keeps working.
 *
 *   oci-layout, index.json, store.lock   the OCI image layout and the lock of its index
 *   blobs/sha256/<hex>                   blobs by digest
 *   layers/<hex>.json                    per-layer facts
 *   sources/<hex>.json                   repositories known to hold a blob (cross-repo mounts)
 *   provenance/<diff_id hex>.json        what a COPY/ADD layer brought in (store/provenance.ts)
 *   variants/<diff_id hex>.<c>.json      compressed variants of plain layers
 *   snapshots/<chain id hex>/            unpacked layer stacks
 *   cache/                               build-cache records (cache/records.ts)
 *   checks/<key hex>.json                build checks' results (analyze/lint/build-checks.ts)
 *   checks/base-<key hex>.json           facts of a Dockerfile's base images (analyze/lint/base-facts.ts)
 *   noop/<key hex>.json                  no-op memos of `kiln build` invocations (cli/noop-memo.ts)
 *   cache-mounts/                        RUN --mount=type=cache directories
 *   gc-roots/                            what gc keeps besides tagged images
 *   run/                                 run-state dirs of containers and views (sandbox/rundir.ts)
 *   kept-steps/<id>/                     failed RUN steps kept by --on-error=keep (engine/kept-step.ts)
 *   tmp/                                 temp files, renamed into place when complete
 */
import * as os from 'node:os';
import { digestHex, type Digest, joinPath } from '../util/index.js';

/** The store a command works on when none is named: KILN_ROOT, /var/lib/kiln for root, else the user's data directory. */
export function defaultStoreRoot(): string {
  if (process.env.KILN_ROOT) return process.env.KILN_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/kiln';
  const data = process.env.XDG_DATA_HOME || joinPath(os.homedir(), '.local', 'share');
  return joinPath(data, 'kiln');
}

export class StoreLayout {
  constructor(readonly root: string) {}

  get ociLayoutFile(): string {
    return joinPath(this.root, 'oci-layout');
  }
  get indexFile(): string {
    return joinPath(this.root, 'index.json');
  }
  get lockFile(): string {
    return joinPath(this.root, 'store.lock');
  }
  get blobsDir(): string {
    return joinPath(this.root, 'blobs', 'sha256');
  }
  /** The blob's file (the digest is not checked here: Store.blobPath does). */
  blobFile(d: Digest): string {
    return joinPath(this.blobsDir, digestHex(d));
  }
  get layerFactsDir(): string {
    return joinPath(this.root, 'layers');
  }
  layerFactsFile(blob: Digest | string): string {
    return joinPath(this.layerFactsDir, `${hexOf(blob)}.json`);
  }
  get blobSourcesDir(): string {
    return joinPath(this.root, 'sources');
  }
  blobSourcesFile(blob: Digest | string): string {
    return joinPath(this.blobSourcesDir, `${hexOf(blob)}.json`);
  }
  get provenanceDir(): string {
    return joinPath(this.root, 'provenance');
  }
  /** What a COPY/ADD layer brought in, by the layer's diff_id. */
  provenanceFile(diffId: Digest | string): string {
    return joinPath(this.provenanceDir, `${hexOf(diffId)}.json`);
  }
  get variantsDir(): string {
    return joinPath(this.root, 'variants');
  }
  get snapshotsDir(): string {
    return joinPath(this.root, 'snapshots');
  }
  /** The snapshot directory of a chain id. */
  snapshotDir(chain: Digest): string {
    return joinPath(this.snapshotsDir, digestHex(chain));
  }
  /** Build-cache records and memos (owned by cache/records.ts). */
  get cacheDir(): string {
    return joinPath(this.root, 'cache');
  }
  /** The build checks' result for one key (analyze/lint/build-checks.ts): a rebuild reads it instead of linting. */
  get buildChecksDir(): string {
    return joinPath(this.root, 'checks');
  }
  buildChecksFile(key: Digest | string): string {
    return joinPath(this.buildChecksDir, `${hexOf(key)}.json`);
  }
  /** What the store knew of a Dockerfile's base images (analyze/lint/base-facts.ts), pruned with the checks. */
  baseFactsFile(key: Digest | string): string {
    return joinPath(this.buildChecksDir, `base-${hexOf(key)}.json`);
  }
  /** RUN --mount=type=cache directories, kept between builds. */
  /** The no-op memo of one `kiln build` invocation (cli/noop-memo.ts): read before the CLI is loaded. */
  noopMemoFile(key: string): string {
    return joinPath(this.noopMemoDir, `${key}.json`);
  }
  get noopMemoDir(): string {
    return joinPath(this.root, 'noop');
  }
  get cacheMountsDir(): string {
    return joinPath(this.root, 'cache-mounts');
  }
  /** Files naming blobs and snapshots gc must keep besides tagged images. */
  get gcRootsDir(): string {
    return joinPath(this.root, 'gc-roots');
  }
  /** Failed RUN steps kept for `kiln debug` (engine/kept-step.ts): one directory each. */
  get keptStepsDir(): string {
    return joinPath(this.root, 'kept-steps');
  }
  /** Run-state directories of containers and views being run. */
  get runDir(): string {
    return joinPath(this.root, 'run');
  }
  get tmpDir(): string {
    return joinPath(this.root, 'tmp');
  }
}

/** The layout of the store rooted at `root`, for code that holds only the root's path. */
export function storeLayout(root: string): StoreLayout {
  return new StoreLayout(root);
}

/** A digest's hex, or a hex name as it is (gc walks file names). */
function hexOf(d: Digest | string): string {
  return d.startsWith('sha256:') ? digestHex(d as Digest) : d;
}
