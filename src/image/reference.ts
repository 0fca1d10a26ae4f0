/**
 * Image references, parsed and normalised exactly as docker does (distribution/reference's grammar
 * and docker's "familiar" normalisation): `debian` → `docker.io/library/debian:latest`,
 * `localhost:5000/x:y`, `ghcr.io/o/r@sha256:…`.
 */
import { KilnError, isDigest, type Digest } from '../util/index.js';

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_REGISTRY = 'index.docker.io';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_NAME = 255;

export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
  /** Full normalised form: docker.io/library/debian:bookworm (tag omitted when only a digest). */
  toString(): string;
  /** docker's short form: debian:bookworm, localhost:5000/x:y. */
  familiar(): string;
  /** registry/repository, no tag or digest. */
  name(): string;
}

class Ref implements ImageReference {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly tag: string | undefined,
    readonly digest: Digest | undefined,
  ) {}
  name(): string {
    return `${this.registry}/${this.repository}`;
  }
  private suffix(): string {
    return (this.tag !== undefined ? `:${this.tag}` : '') + (this.digest !== undefined ? `@${this.digest}` : '');
  }
  toString(): string {
    return this.name() + this.suffix();
  }
  familiar(): string {
    let n = this.name();
    if (this.registry === DEFAULT_REGISTRY) {
      n =
        this.repository.startsWith('library/') && this.repository.split('/').length === 2
          ? this.repository.slice(8)
          : this.repository;
    }
    return n + this.suffix();
  }
}

function invalid(s: string, why: string): KilnError {
  return new KilnError(
    'INVALID',
    `invalid reference format "${s}": ${why}`,
    { image: s },
    { hint: 'an image reference looks like [registry[:port]/]name[:tag][@sha256:digest]' },
  );
}

/** Does the first path component name a registry (docker's rule)? */
function isDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
}

export function parseReference(input: string): ImageReference {
  const s = input.trim();
  if (s === '') throw invalid(input, 'it is empty');
  if (s !== input) throw invalid(input, 'it has surrounding whitespace');
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) {
      if (/^[a-z0-9]+:/.test(d))
        throw invalid(input, `unsupported or malformed digest "${d}" (kiln knows sha256:<64 hex>)`);
      throw invalid(input, `malformed digest "${d}"`);
    }
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag))
      throw invalid(input, `invalid tag "${tag}" (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  if (rest === '') throw invalid(input, 'the name is empty');
  const parts = rest.split('/');
  let registry = DEFAULT_REGISTRY;
  if (parts.length > 1 && isDomain(parts[0]!)) {
    registry = parts.shift()!;
    const [host, port, extra] = registry.replace(/^\[(.*)\](?=:|$)/, 'ipv6').split(':');
    if (extra !== undefined || (port !== undefined && !/^\d+$/.test(port)))
      throw invalid(input, `invalid registry "${registry}"`);
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
      throw invalid(input, `registry port ${port} is out of range (1-65535)`);
    if (host !== 'ipv6' && !host!.split('.').every((c) => DOMAIN_COMPONENT.test(c)))
      throw invalid(input, `invalid registry host "${host}"`);
    if (registry === LEGACY_REGISTRY) registry = DEFAULT_REGISTRY;
  }
  for (const p of parts) {
    if (p !== p.toLowerCase() && PATH_COMPONENT.test(p.toLowerCase()))
      throw invalid(input, 'repository name must be lowercase');
    if (!PATH_COMPONENT.test(p)) throw invalid(input, `invalid repository path component "${p}"`);
  }
  let repository = parts.join('/');
  if (registry === DEFAULT_REGISTRY && parts.length === 1) repository = `library/${repository}`;
  if (`${registry}/${repository}`.length > MAX_NAME)
    throw invalid(input, `repository name must not be more than ${MAX_NAME} characters`);
  return new Ref(registry, repository, tag, digest);
}

/** Full normalised name with `:latest` when neither tag nor digest is given (docker's default). */
export function normalizeImageName(s: string): string {
  const r = parseReference(s);
  if (r.tag === undefined && r.digest === undefined)
    return new Ref(r.registry, r.repository, 'latest', undefined).toString();
  return r.toString();
}

/** The familiar form of a full normalised name. */
export function familiarName(full: string): string {
  try {
    return parseReference(full).familiar();
  } catch {
    return full;
  }
}

/**
 * The key BuildKit looks a named build context up by: the familiar reference without ":latest"
 * (`docker.io/library/alpine:latest` is `alpine`); undefined when it is no reference.
 */
export function contextKey(name: string): string | undefined {
  try {
    return parseReference(name)
      .familiar()
      .replace(/:latest$/, '');
  } catch {
    return undefined;
  }
}

export function withTag(ref: ImageReference, tag: string): ImageReference {
  return new Ref(ref.registry, ref.repository, tag, undefined);
}
