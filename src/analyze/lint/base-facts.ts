/**
 * What the store knows of a Dockerfile's base images, for UndefinedVar (their ENV names) and
 * InvalidBaseImagePlatform (their platform). Nothing is pulled: an image the store lacks is left
 * out, and the lint then does not guess about it.
 */
import type { Store } from '../../store/index.js';
import type { BaseImageFacts } from './variables.js';

export async function baseImageFacts(store: Store, refs: string[]): Promise<Map<string, BaseImageFacts>> {
  const out = new Map<string, BaseImageFacts>();
  for (const ref of refs) {
    const img = await store
      .resolveImage(ref, { platform: { os: 'linux', architecture: 'amd64' } })
      .catch(() => undefined);
    if (!img) continue;
    const c = img.config;
    const facts: BaseImageFacts = { env: (c.config?.Env ?? []).map((e) => e.split('=', 1)[0]!) };
    if (c.os) facts.os = c.os;
    if (c.architecture) facts.architecture = c.architecture;
    if (c.variant) facts.variant = c.variant;
    out.set(ref, facts);
  }
  return out;
}
