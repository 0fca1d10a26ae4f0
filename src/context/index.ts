/**
 * The build context: .dockerignore, walking, selecting COPY/ADD sources with docker's wildcard
 * rules (build-context.ts), and content hashes of what a step copies, for its cache key (hash.ts).
 */
export {
  BuildContext,
  globSegment,
  hasWildcard,
  WalkListings,
  type ContextEntry,
  type EntryStat,
} from './build-context.js';
export {
  FileHashCache,
  fileHashCachePath,
  hashSelection,
  RecordedFileDigests,
  type FileDigester,
  type RecordedFile,
  type SelectedEntry,
  type SelectionOptions,
} from './hash.js';
