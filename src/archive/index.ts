/** Image archives in and out: import (rootfs tar), save/load (docker-archive, OCI layout), export; read.ts is the one reader of archives (an archive image as an Image). */
export { importRootfs, type ImportOptions } from './import.js';
export {
  saveImages,
  saveImagesToFile,
  type ArchiveFormat,
  type IndexToSave,
  type SaveInput,
  type SavedEntry,
} from './save.js';
export { loadArchive, type LoadResult } from './load.js';
export {
  openImageArchive,
  indexTarFile,
  type ImageArchive,
  type ArchiveEntry,
  type ArchiveFile,
  type DockerManifestEntry,
} from './read.js';
export { exportImage } from './export.js';
export { writeFilesystemOutput, type FilesystemOutput } from './fs-output.js';
