/** Layer tars in and out: writing, compressing with digests, reading, applying. */
export {
  tarDirectory,
  tarChanges,
  tarChangesInOrder,
  compareChanges,
  tarEntries,
  comparePaths,
  layerKeepsXattr,
  type Change,
  LeanStats,
  type EntrySpec,
  type EntryStats,
  type FileDigestRecord,
  type FileDigestLookup,
  FileDigestTable,
  type TarOptions,
  layerSkeleton,
  keptXattrs,
  SkeletonTracker,
  type SkeletonEntry,
} from './write.js';
export { encodeLayer, type LayerInfo, type EncodeOptions, plainLayerInfo } from './compress.js';
export { openLayer } from './decompress.js';
export { applyLayer, cleanEntryName, type ApplyOptions } from './apply.js';
export { readTar, type TarEntry } from './tarstream.js';
export { measureLayer } from './measure.js';
export type { TarHeader, EntryType } from './tarformat.js';
export { TarContentSize, announceContentSize } from './content-size.js';
export { BLOCK, decodeHeader, encodeHeader, END_OF_ARCHIVE, padding, parsePax } from './tarformat.js';
