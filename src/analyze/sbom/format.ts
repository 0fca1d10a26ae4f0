/**
 * SBOM documents: CycloneDX 1.5 JSON, SPDX 2.3 JSON, and a table. Deterministic for an image:
 * timestamps are the image's creation time, identifiers derive from the image id, order is the
 * catalog's.
 */
import { createHash } from 'node:crypto';
import { isSpdxExpression, licenseRef, toSpdxId } from './licenses.js';
import type { OsRelease, Package } from './types.js';

export interface SbomSubject {
  /** What to call the image (its name, or what the user typed). */
  name: string;
  /** Image id (config digest). */
  id: string;
  /** Manifest digest, when known. */
  digest?: string;
  created?: string;
  os: OsRelease;
  packages: Package[];
  tool: { name: string; version: string };
}

/** A UUID (v4 layout) derived from a string, so the same image always gets the same serial number. */
function stableUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function timestamp(s: SbomSubject): string {
  const t = s.created ? Date.parse(s.created) : NaN;
  return Number.isFinite(t) ? new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z') : '1970-01-01T00:00:00Z';
}

function cdxLicenses(p: Package): unknown[] | undefined {
  if (!p.licenses.length) return undefined;
  if (p.licenses.length === 1 && isSpdxExpression(p.licenses[0]!)) return [{ expression: p.licenses[0] }];
  return p.licenses.map((l) => {
    const id = toSpdxId(l);
    return id ? { license: { id } } : { license: { name: l } };
  });
}

export function toCycloneDx(s: SbomSubject): unknown {
  const refs = new Map<string, number>();
  const ref = (purl: string) => {
    const n = refs.get(purl) ?? 0;
    refs.set(purl, n + 1);
    return n === 0 ? purl : `${purl}#${n + 1}`;
  };
  const components: unknown[] = [];
  if (s.os.id) {
    const version = s.os.id === 'debian' ? (s.os.debianVersion ?? s.os.versionId) : s.os.versionId;
    components.push({
      type: 'operating-system',
      'bom-ref': `os:${s.os.id}@${version ?? ''}`,
      name: s.os.id,
      version,
      description: s.os.prettyName,
    });
  }
  for (const p of s.packages) {
    const c: Record<string, unknown> = {
      type: 'library',
      'bom-ref': ref(p.purl),
      name: p.name,
      version: p.version,
      purl: p.purl,
    };
    if (p.type === 'npm' && p.name.startsWith('@') && p.name.includes('/')) {
      c.group = p.name.slice(0, p.name.indexOf('/'));
      c.name = p.name.slice(p.name.indexOf('/') + 1);
    }
    const lic = cdxLicenses(p);
    if (lic) c.licenses = lic;
    const props = [
      { name: 'kiln:package:type', value: p.type },
      { name: 'kiln:location', value: `/${p.location}` },
      { name: 'kiln:layer:index', value: String(p.layer) },
    ];
    if (p.layerDiffId) props.push({ name: 'kiln:layer:diffID', value: p.layerDiffId });
    if (p.sourceName) props.push({ name: 'kiln:package:source', value: p.sourceName });
    if (p.sourceVersion) props.push({ name: 'kiln:package:sourceVersion', value: p.sourceVersion });
    // Copied from a builder without its package metadata (syft and trivy cannot see it): marked so.
    if (p.copied)
      props.push(
        { name: 'kiln:copied', value: 'true' },
        { name: 'kiln:copied:from', value: p.copied.from },
        { name: 'kiln:copied:step', value: p.copied.step },
        ...p.copied.files.map((f) => ({ name: 'kiln:copied:file', value: f })),
      );
    c.properties = props;
    components.push(c);
  }
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${stableUuid(`cyclonedx ${s.id}`)}`,
    version: 1,
    metadata: {
      timestamp: timestamp(s),
      tools: { components: [{ type: 'application', name: s.tool.name, version: s.tool.version }] },
      component: { type: 'container', 'bom-ref': s.id, name: s.name, version: s.digest ?? s.id },
    },
    components,
  };
}

function spdxId(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, '-');
}

export function toSpdx(s: SbomSubject): unknown {
  const extracted = new Map<string, string>();
  const declared = (p: Package): string => {
    if (!p.licenses.length) return 'NOASSERTION';
    if (p.licenses.length === 1 && isSpdxExpression(p.licenses[0]!)) return p.licenses[0]!;
    const parts = p.licenses.map((l) => {
      const id = toSpdxId(l);
      if (id) return id;
      const r = licenseRef(l);
      extracted.set(r, l);
      return r;
    });
    return parts.length === 1 ? parts[0]! : parts.map((x) => (x.includes(' ') ? `(${x})` : x)).join(' AND ');
  };
  const imageId = 'SPDXRef-Image';
  const used = new Set<string>();
  const packages: unknown[] = [
    {
      SPDXID: imageId,
      name: s.name,
      versionInfo: s.digest ?? s.id,
      downloadLocation: 'NOASSERTION',
      primaryPackagePurpose: 'CONTAINER',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
    },
  ];
  const relationships: unknown[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId },
  ];
  for (const p of s.packages) {
    let id = spdxId(`SPDXRef-Package-${p.type}-${p.name}-${p.version}`);
    for (let n = 2; used.has(id); n++) id = spdxId(`SPDXRef-Package-${p.type}-${p.name}-${p.version}-${n}`);
    used.add(id);
    packages.push({
      SPDXID: id,
      name: p.name,
      versionInfo: p.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: declared(p),
      copyrightText: 'NOASSERTION',
      sourceInfo: p.copied
        ? `copied from ${p.copied.from} by ${p.copied.step} without its package metadata: ${p.copied.files.join(', ')} (layer ${p.layer}${p.layerDiffId ? ` ${p.layerDiffId}` : ''})`
        : `found in /${p.location} (layer ${p.layer}${p.layerDiffId ? ` ${p.layerDiffId}` : ''})`,
      ...(p.copied
        ? {
            annotations: [
              {
                annotationType: 'OTHER',
                annotator: `Tool: ${s.tool.name}-${s.tool.version}`,
                annotationDate: timestamp(s),
                comment: `kiln:copied from=${p.copied.from} step=${p.copied.step}`,
              },
            ],
          }
        : {}),
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl }],
    });
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }
  const doc: Record<string, unknown> = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: s.name,
    documentNamespace: `https://kiln.invalid/spdx/${s.id.replace(/^sha256:/, '')}-${stableUuid(`spdx ${s.id}`)}`,
    creationInfo: { created: timestamp(s), creators: [`Tool: ${s.tool.name}-${s.tool.version}`] },
    packages,
    relationships,
  };
  if (extracted.size)
    doc.hasExtractedLicensingInfos = [...extracted].map(([licenseId, name]) => ({
      licenseId,
      name,
      extractedText: name,
    }));
  return doc;
}

/** NAME VERSION TYPE LAYER LICENSE rows (header first). */
export function sbomTableRows(packages: Package[]): string[][] {
  const rows = [['NAME', 'VERSION', 'TYPE', 'LAYER', 'LICENSE', 'LOCATION']];
  for (const p of packages) {
    let lic = p.licenses.slice(0, 3).join(', ') + (p.licenses.length > 3 ? `, +${p.licenses.length - 3}` : '');
    if (lic.length > 40) lic = `${lic.slice(0, 39)}…`;
    const where = p.copied ? `/${p.location} (copied from ${p.copied.from})` : `/${p.location}`;
    rows.push([p.name, p.version, p.type, String(p.layer), lic || '-', where]);
  }
  return rows;
}
