/**
 * A build with its outputs: the engine makes the image in the store (engine.ts), then each output
 * writes it where its spec says (outputs.ts). What the CLI's `kiln build` and the library's
 * `build()` call.
 */
import { build, type BuildOptions, type BuildResult } from './engine.js';
import type { EventSink } from './events.js';
import {
  checkOutputSpec,
  isFilesOutput,
  layerCompression,
  writeOutputs,
  type LayerCompressionOptions,
  type OutputContext,
  type OutputResult,
  type OutputSpec,
} from './outputs.js';

export interface BuildWithOutputsOptions extends Omit<
  BuildOptions,
  'layerCompression' | 'forceCompression' | 'compressionLevel'
> {
  /** Where the image goes (default: the store, under `tags`). Their compression options set the layers'. */
  outputs?: OutputSpec[];
  /** Upload progress of a registry output. */
  onPush?: OutputContext['onPush'];
  /** Each output as soon as it is written. */
  onOutput?: OutputContext['onOutput'];
}

export interface BuildWithOutputsResult extends BuildResult {
  outputs: OutputResult[];
}

export async function buildWithOutputs(
  o: BuildWithOutputsOptions,
  emit: EventSink = () => undefined,
): Promise<BuildWithOutputsResult> {
  const outputs: OutputSpec[] = o.outputs?.length ? o.outputs : [{ type: 'store' }];
  const tags = o.tags ?? [];
  for (const s of outputs) checkOutputSpec(s, tags);
  // The layers the engine writes are compressed as the first output that ships the image wants
  // them (a registry, an archive), so that its push or save finds them ready.
  const shipping = outputs.find((s) => s.type !== 'store' && !isFilesOutput(s)) ?? outputs[0]!;
  const c: LayerCompressionOptions = shipping.type === 'local' || shipping.type === 'tar' ? {} : shipping;
  const { outputs: _o, onPush, onOutput, ...engineOptions } = o;
  const r = await build(
    {
      ...engineOptions,
      // The files are the product, not an image: nothing is tagged (as BuildKit).
      tags: outputs.every(isFilesOutput) ? undefined : o.tags,
      layerCompression: layerCompression(shipping),
      forceCompression: c.forceCompression,
      compressionLevel: c.compressionLevel,
    },
    emit,
  );
  const image = await o.store.resolveImage(r.descriptor.digest);
  const written = await writeOutputs(outputs, {
    store: o.store,
    image,
    tags: outputs.every(isFilesOutput) ? [] : tags,
    registry: o.registry,
    onPush,
    onOutput,
  });
  return { ...r, outputs: written };
}
