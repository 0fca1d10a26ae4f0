/** util/: its entry for other folders (they import from here only; see docs/design.md). */
export { type ErrorCode, type ErrorPlace, formatError, isKilnError, KilnError } from './errors.js';
export { chainId, chainIds, type Digest, digestHex, HashingStream, isDigest, sha256 } from './digest.js';
export { exists, openOutputFile, removeTree, tempPathFor, writeFileAtomic } from './fs.js';
export { joinPath, normalizePath } from './paths.js';
export { LeanStats, type LstatFields, type PackedListing } from './lean-stats.js';
export { bootId, processAlive, processStartTime, runCapture, runChecked, which } from './proc.js';
export { Slots } from './slots.js';
export { readImageFile, resolveChown, resolveInImage, resolveUser, type UserFiles } from './users.js';
export { idMapped, lchownInNamespace, overlayXattrPrefix, singleIdMode, userNamespace } from './userns.js';
export { readPackageVersion } from './version.js';
export { human, parseBytes } from './bytes.js';
export { MultiSearch } from './byte-search.js';
export {
  formatProfile,
  inStep,
  mark,
  phaseBetween,
  phaseDone,
  phaseStart,
  profilePhases,
  profiling,
  startProfile,
  timed,
  type ProfilePhase,
} from './profile.js';
export { xattr, type Xattr } from './xattr.js';
export {
  nativeFs,
  nativeFsLoaded,
  nativeSmallRead,
  SMALL_FILE,
  useNativeFs,
  type NativeFs,
  type DirectoryListing,
} from './native-fs.js';
export { nativeAddon, type NativeAddon } from './native-addon.js';
export { ReadAhead, type ReadAheadFs } from './read-ahead.js';
