/**
 * Images a build reads (FROM, COPY --from, RUN --mount from=): from the store when it has them,
 * else pulled through the registry client; with --pull always re-resolved on the registry (once
 * per build and reference, however many stages use it).
 */
import { type ClientOptions, pull, type TransferEvent, RegistryClient } from '../registry/index.js';
import { type Platform, formatPlatform, hostPlatform } from '../image/index.js';
import { type LoadedImage, type Store } from '../store/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';
import { contextKey, namedContextImage, type NamedContext } from './named-contexts.js';

export interface ImageSourceOptions {
  store: Store;
  /** Re-resolve every external image on its registry (docker build --pull). */
  pull?: boolean;
  registry?: ClientOptions;
  platform?: Platform;
  /** Stops the fetch of a remote named context. */
  signal?: AbortSignal;
  onProgress?: (ref: string, e: TransferEvent) => void;
  /** A pull finished: the image is in the store. */
  onPulled?: (ref: string) => void;
  /** --build-context: a name that stands for another image, a directory or an OCI layout. */
  namedContexts?: NamedContext[];
}

export class BuildImages {
  private readonly pending = new Map<string, Promise<LoadedImage>>();
  private client?: RegistryClient;

  constructor(private readonly o: ImageSourceOptions) {}

  /**
   * The image `ref` names, for `platform` (a stage's: its manifest is chosen from an index; default
   * the build's), loaded once per reference and platform.
   */
  get(ref: string, place: ErrorPlace, platform: Platform | undefined = this.o.platform): Promise<LoadedImage> {
    const key = contextKey(ref);
    const named = key === undefined ? undefined : this.o.namedContexts?.find((c) => c.name === key);
    const pendingKey = `${named ? `context:${named.name}` : ref} ${platform ? formatPlatform(platform) : ''}`;
    let p = this.pending.get(pendingKey);
    if (!p) {
      if (!named) p = this.load(ref, place, platform);
      else if (named.kind === 'image') p = this.load(named.ref, place, platform);
      else p = namedContextImage(this.o.store, named, platform ?? hostPlatform(), this.o.signal);
      this.pending.set(pendingKey, p);
    }
    return p;
  }

  private async load(ref: string, place: ErrorPlace, platform: Platform | undefined): Promise<LoadedImage> {
    const store = this.o.store;
    if (!this.o.pull) {
      try {
        return await store.resolveImage(ref, { platform });
      } catch (e) {
        if (!(e instanceof KilnError && e.code === 'NOT_FOUND')) throw e;
      }
    }
    this.client ??= new RegistryClient(this.o.registry);
    try {
      const img = await pull(store, ref, {
        client: this.client,
        platform,
        onProgress: (e) => this.o.onProgress?.(ref, e),
      });
      this.o.onPulled?.(ref);
      return img;
    } catch (e) {
      if (e instanceof KilnError) {
        const what = this.o.pull
          ? `base image ${ref}: pulling it failed: ${e.message}`
          : `base image ${ref} is not in the store, and pulling it failed: ${e.message}`;
        const bringIn = `bring it in with 'kiln pull ${ref}', 'kiln import ROOTFS.tar ${ref}' or 'kiln load'`;
        throw new KilnError(
          e.code,
          what,
          { ...place, image: ref },
          { hint: e.hint ? `${e.hint}; or ${bringIn}` : bringIn },
        );
      }
      throw e;
    }
  }
}
