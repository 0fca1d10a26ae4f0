/**
 * A build with its outputs: the engine makes the image in the store (engine.ts), then each output
 * writes it where its spec says (outputs.ts). What the CLI's `kiln build` and the library's
 * `build()` call.
 */
import { build, type BuildOptions, type BuildResult } from './engine.js';
import type { EventSink } from './events.js';
import { KilnError, mark } from '../util/index.js';
import { formatVerifyResult, verifyReproducible } from './verify-reproducible.js';
import { buildPlatforms, type PlatformBuild, type PlatformEvent } from './multi-platform.js';
import {
  checkOutputSpec,
  isFilesOutput,
  layerCompression,
  refuseDockerArchiveOfIndex,
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
  /**
   * Build twice from clean scratch stores with one SOURCE_DATE_EPOCH (chosen now when none is given)
   * and compare (verify-reproducible.ts): the image is kept only when both agree, else a BUILD error
   * names the first difference. Store output only; no cache import or export.
   */
  verifyReproducible?: boolean;
  /** The comparison's report (text) of a reproducible build. */
  onVerified?: (report: string) => void;
  /**
   * Build for each of these platforms (normalized, see multi-platform.ts's parsePlatforms) and make
   * one OCI index of the images: the tags, a registry output and the result name the index. One
   * platform is the same as `platform`. Events carry a `platform` field then.
   */
  platforms?: string[];
}

export interface BuildWithOutputsResult extends BuildResult {
  outputs: OutputResult[];
  /** A multi-platform build: each platform's image (the result's descriptor and imageId are the index's). */
  platforms?: PlatformBuild[];
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
  const { outputs: _o, onPush, onOutput, verifyReproducible: verify, onVerified, platforms, ...engineOptions } = o;
  if (platforms && platforms.length > 1) {
    if (verify)
      throw new KilnError(
        'USAGE',
        '--verify-reproducible builds one platform',
        {},
        { hint: 'verify each platform: --platform linux/amd64, then --platform linux/arm64' },
      );
    if (outputs.some((s) => s.type === 'docker')) refuseDockerArchiveOfIndex(platforms);
    const files = outputs.find(isFilesOutput);
    if (files)
      throw new KilnError(
        'USAGE',
        `--output type=${files.type} writes one image's files; a multi-platform build makes an index`,
        {},
        {
          hint: `keep the index (the store, --push, -o type=oci,dest=FILE); or export each platform's files: --platform ${platforms[0]} -o type=${files.type},…`,
        },
      );
    const m = await buildPlatforms(
      {
        ...engineOptions,
        layerCompression: layerCompression(shipping),
        forceCompression: c.forceCompression,
        compressionLevel: c.compressionLevel,
      },
      platforms,
      emit as (e: PlatformEvent) => void,
    );
    const first = m.builds[0]!.result;
    const written = await writeOutputs(outputs, {
      store: o.store,
      image: await o.store.loadImage(first.descriptor),
      index: m.index,
      tags,
      registry: o.registry,
      onPush,
      onOutput,
    });
    return {
      ...first,
      // One platform's records say nothing of the index.
      rebuildRecords: undefined,
      imageId: m.index.digest,
      descriptor: m.index,
      size: m.builds.reduce((n, b) => n + b.result.size, 0),
      outputs: written,
      platforms: m.builds,
    };
  }
  if (platforms?.length === 1) engineOptions.platform = platforms[0];
  const r = await (verify ? verifiedBuild(outputs, onVerified) : build)(
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
  // The manifest the build just wrote, read by its descriptor: not looked for among the store's
  // images (resolveImage by digest reads every listed image until one matches).
  const image = await o.store.loadImage(r.descriptor);
  const written = await writeOutputs(outputs, {
    store: o.store,
    image,
    tags: outputs.every(isFilesOutput) ? [] : tags,
    registry: o.registry,
    onPush,
    onOutput,
  });
  mark(`outputs written (${outputs.map((x) => x.type).join(', ')})`);
  return { ...r, outputs: written };
}

/**
 * build() for verifyReproducible: what it cannot be combined with, the SOURCE_DATE_EPOCH (chosen now
 * when none was given, and then a build arg as a given one is), two builds on scratch stores compared;
 * the image tagged in the store when they agree, a BUILD error naming the first difference when not.
 */
function verifiedBuild(outputs: OutputSpec[], onVerified: ((report: string) => void) | undefined) {
  return async (o: BuildOptions, emit: EventSink): Promise<BuildResult> => {
    if (outputs.some((s) => s.type !== 'store'))
      throw new KilnError(
        'USAGE',
        '--verify-reproducible builds into the store',
        {},
        { hint: 'verify first, then push or export the image (kiln push, kiln save)' },
      );
    if (o.cacheFrom?.length || o.cacheTo?.length)
      throw new KilnError('USAGE', '--verify-reproducible builds without any cache: drop --cache-from/--cache-to');
    let sourceDateEpoch = o.sourceDateEpoch;
    let buildArgs = o.buildArgs;
    if (sourceDateEpoch === undefined) {
      sourceDateEpoch = Math.floor(Date.now() / 1000);
      buildArgs = new Map(buildArgs);
      buildArgs.set('SOURCE_DATE_EPOCH', String(sourceDateEpoch));
      emit({
        type: 'warning',
        message: `--verify-reproducible: SOURCE_DATE_EPOCH=${sourceDateEpoch} (none was given: chosen now)`,
      });
    }
    const r = await verifyReproducible({ ...o, buildArgs, sourceDateEpoch }, emit);
    const report = formatVerifyResult(r);
    if (!r.reproducible) {
      const d = r.difference;
      const step = d && 'step' in d ? d.step : undefined;
      throw new KilnError(
        'BUILD',
        `the build is not reproducible\n${report.trimEnd()}`,
        step ? { file: step.file, line: step.line, column: step.column } : {},
        { hint: 'docs/reproducible.md lists what to pin; kiln diff compares two images file by file' },
      );
    }
    for (const t of o.tags ?? []) await o.store.setTag(t, r.builds[0].descriptor);
    onVerified?.(report);
    // Built on a scratch store: its records are not this store's.
    return { ...r.builds[0], rebuildRecords: undefined };
  };
}
