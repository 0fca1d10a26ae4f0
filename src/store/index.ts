/** store/: its entry for other folders (they import from here only; see docs/design.md). */
export { isPlainLayer, layersPresentIn, type LoadedImage, SNAPSHOT_ROOT, snapshotDir, Store } from './store.js';
export {
  compressedImage,
  compressedLayer,
  compressionOf,
  encodeVariant,
  parseCompression,
  readyLayer,
  validLevel,
  withLayers,
  IncomingLayer,
} from './compressed.js';
export { withFileLock } from './lock.js';
export { replaceFileSync } from './small-blob.js';
export { copyImageToStore, openStoreImage } from './image.js';
export { defaultStoreRoot, storeLayout } from './layout.js';
export {
  PROVENANCE_VERSION,
  parseProvenance,
  type CopyProvenance,
  type ProvenanceFile,
  type ProvenanceFrom,
  type ProvenanceHop,
  type ProvenancePackage,
  type ProvenanceStep,
} from './provenance.js';
export { isIndexDescriptor, platformOfManifest, readIndexBlob, writeIndex, type IndexEntry } from './image-index.js';
