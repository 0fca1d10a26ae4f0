/** What the catalogers find: packages with where they came from. */

export type PackageType = 'deb' | 'apk' | 'python' | 'npm';

export interface Package {
  type: PackageType;
  name: string;
  version: string;
  /** Package URL (purl-spec), with the version. */
  purl: string;
  /** Licences as declared (SPDX identifiers or expressions where the source gives them). */
  licenses: string[];
  /** Where it was found in the image: the metadata file or directory, no leading '/'. */
  location: string;
  /** Index of the layer that brought it (0 = bottom). */
  layer: number;
  /** That layer's diff_id, when known. */
  layerDiffId?: string;
  /** Debian: source package and version when they differ from the binary; Alpine: origin. */
  sourceName?: string;
  sourceVersion?: string;
  arch?: string;
  /** npm from a package-lock only (not installed in node_modules). */
  foundBy?:
    | 'dpkg-status'
    | 'dpkg-status.d'
    | 'apk-db'
    | 'python-metadata'
    | 'npm-package.json'
    | 'npm-package-lock'
    | 'kiln-provenance';
  /**
   * Copied into the image from another stage or image without its package metadata (the build's
   * provenance record says which package owned the files there): from where, by which step, the files.
   */
  copied?: { from: string; step: string; files: string[] };
}

export interface OsRelease {
  /** os-release ID: "debian", "alpine", "ubuntu"... */
  id?: string;
  versionId?: string;
  versionCodename?: string;
  prettyName?: string;
  /** /etc/debian_version, e.g. "12.5". */
  debianVersion?: string;
}
