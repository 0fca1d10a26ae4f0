/** image/: its entry for other folders (they import from here only; see docs/design.md). */
export {
  contextKey,
  DEFAULT_REGISTRY,
  familiarName,
  type ImageReference,
  normalizeImageName,
  parseReference,
} from './reference.js';
export {
  formatPlatform,
  hostPlatform,
  matchPlatform,
  normalizePlatform,
  parsePlatform,
  platformsOf,
} from './platform.js';
export {
  Annotation,
  type Compression,
  type ContainerConfig,
  type Descriptor,
  type HistoryEntry,
  type ImageConfig,
  type Index,
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  type Manifest,
  MediaType,
  type Platform,
} from './types.js';
export {
  parseDescriptor,
  parseImageConfig,
  parseOwnDescriptor,
  parseOwnImageConfig,
  parseOwnIndex,
  parseOwnManifest,
  parseOwnManifestOrIndex,
  parseIndex,
  parseJSONText,
  parseManifest,
  parseManifestOrIndex,
} from './validate.js';
export { canonicalJSON } from './canonical.js';
export { type TransferEvent } from './transfer.js';
export { type Image, type Layer, layerHistory } from './image.js';
