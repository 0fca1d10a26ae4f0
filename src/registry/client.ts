/**
 * The distribution-spec client: one per command (it caches endpoints, challenges and tokens).
 * Finds how to talk to a registry (HTTPS with the system CAs plus docker's
 * /etc/docker/certs.d/HOST/; plain HTTP only for loopback or --insecure-registry hosts, and asked
 * first on loopback), answers auth challenges, retries with backoff on connection errors, 429 and
 * 5xx, and gives the manifest and blob operations pull and push are made of.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { PassThrough } from 'node:stream';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_REGISTRY, type ImageReference, MediaType, type Descriptor } from '../image/index.js';
import { type Store } from '../store/index.js';
import { sha256, type Digest, KilnError } from '../util/index.js';
import { TokenCache, parseChallenge, type Challenge } from './auth.js';
import { getCredentials, type Credentials } from './credentials.js';
import { drain, httpRequest, readBody, type HttpResponse, type TlsSettings } from './http.js';

export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
];

export interface ClientOptions {
  /** Hosts (host or host:port) that may be reached over plain HTTP or with unverified TLS. */
  insecure?: string[];
  /** false: do not verify TLS certificates (skopeo's --tls-verify=false). */
  tlsVerify?: boolean;
  /** docker's per-registry certificate directory (default /etc/docker/certs.d). */
  certsDir?: string;
  /** Retries after a failed attempt (default 4). */
  retries?: number;
  /** First backoff delay in ms (doubles each retry; default 250). */
  backoffMs?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Credentials lookup (default: docker's config.json and credential helpers). */
  credentials?: (registry: string) => Promise<Credentials | undefined>;
  onRetry?: (info: { registry: string; what: string; attempt: number; reason: string }) => void;
}

interface Endpoint {
  registry: string;
  base: URL;
  tls: TlsSettings;
  /** Learned from /v2/ or a 401; null: none needed so far. */
  challenge: Challenge | null;
}

export interface RequestOptions {
  method: string;
  /** Path below /v2/<repository>/ (or an absolute URL, e.g. an upload location). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | (() => NodeJS.ReadableStream);
  /** Scope actions on the repository ('pull', 'push'); extra scopes (e.g. a mount's source). */
  actions: string[];
  extraScopes?: string[];
  followRedirects?: boolean;
  /** A short description for errors: "manifest latest", "blob sha256:…". */
  what: string;
}

const RETRIABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export function isRetriableError(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException;
  if (e instanceof KilnError) return false;
  return RETRIABLE_CODES.has(err?.code ?? '') || /socket hang up|aborted|premature close/i.test(err?.message ?? '');
}

/** How long the plain-HTTP question to a loopback registry may take before HTTPS is tried (ms). */
const PLAIN_PROBE_TIMEOUT_MS = 3000;

function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Sees a blob's bytes as they download, in order (a pull measures a layer's diff_id meanwhile,
 * instead of reading the blob again afterwards). `restart`: the download starts over from byte 0.
 */
export interface DownloadTee {
  write(chunk: Buffer): Promise<void>;
  restart(): void;
}

export class RegistryClient {
  private readonly endpoints = new Map<string, Promise<Endpoint>>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();
  private readonly tokens = new TokenCache();

  constructor(readonly opts: ClientOptions = {}) {}

  private allowInsecure(registry: string): boolean {
    return (
      isLoopback(registry) ||
      (this.opts.insecure ?? []).some((h) => h === registry || h === registry.replace(/:\d+$/, ''))
    );
  }

  private credentialsFor(registry: string): Promise<Credentials | undefined> {
    let c = this.creds.get(registry);
    if (!c) {
      c = (this.opts.credentials ?? getCredentials)(registry);
      this.creds.set(registry, c);
    }
    return c;
  }

  /** Use these credentials for a registry (kiln login checks them this way). */
  setCredentials(registry: string, creds: Credentials | undefined): void {
    this.creds.set(registry, Promise.resolve(creds));
  }

  private async tlsFor(registry: string): Promise<TlsSettings> {
    const dir = path.join(
      this.opts.certsDir ?? '/etc/docker/certs.d',
      registry.replace(/:/g, process.platform === 'win32' ? '_' : ':'),
    );
    const tls: TlsSettings = {
      verify: this.opts.tlsVerify !== false && !(this.opts.insecure ?? []).some((h) => h === registry),
    };
    let files: string[];
    try {
      files = await fsp.readdir(dir);
    } catch {
      return tls;
    }
    // docker's convention: *.crt are CAs, NAME.cert + NAME.key a client certificate.
    for (const f of files.sort()) {
      if (f.endsWith('.crt')) (tls.ca ??= []).push(await fsp.readFile(path.join(dir, f)));
      if (f.endsWith('.cert')) {
        const key = f.replace(/\.cert$/, '.key');
        if (!files.includes(key))
          throw new KilnError('INVALID', `client certificate ${path.join(dir, f)} has no ${key} beside it`, {
            path: dir,
          });
        tls.cert = await fsp.readFile(path.join(dir, f));
        tls.key = await fsp.readFile(path.join(dir, key));
      }
    }
    return tls;
  }

  /** How to reach a registry: scheme, TLS, and its auth challenge, learned from GET /v2/. */
  endpoint(registry: string): Promise<Endpoint> {
    let e = this.endpoints.get(registry);
    if (!e) {
      e = this.discover(registry);
      e.catch(() => this.endpoints.delete(registry));
      this.endpoints.set(registry, e);
    }
    return e;
  }

  private async discover(registry: string): Promise<Endpoint> {
    const host = registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
    const tls = await this.tlsFor(registry);
    const plain = await this.plainLoopback(registry, host, tls);
    if (plain) return plain;
    const schemes = this.allowInsecure(registry) ? ['https:', 'http:'] : ['https:'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const base = new URL(`${scheme}//${host}/v2/`);
      const ep: Endpoint = {
        registry,
        base,
        tls:
          scheme === 'https:' && this.allowInsecure(registry) && !isLoopback(registry)
            ? { ...tls, verify: false }
            : tls,
        challenge: null,
      };
      try {
        const res = await this.withRetries(
          registry,
          'the API version check',
          () =>
            httpRequest({
              method: 'GET',
              url: base,
              tls: ep.tls,
              timeoutMs: this.opts.timeoutMs,
              signal: this.opts.signal,
              followRedirects: true,
            }),
          scheme === 'https:' && schemes.length > 1,
        );
        drain(res);
        if (res.status === 401)
          ep.challenge = parseChallenge(res.headers['www-authenticate'] as string | undefined) ?? null;
        else if (res.status === 404)
          throw new KilnError('REGISTRY', `${registry} does not speak the registry API v2 (GET ${base.href} → 404)`, {
            image: registry,
          });
        return ep;
      } catch (e) {
        lastError = e;
        if (e instanceof KilnError) throw e;
        // The server speaks TLS but its certificate is not trusted: say so, never downgrade to HTTP.
        if (isCertificateError(e)) break;
        // HTTPS failed at the connection/TLS level on a host allowed plain HTTP: try HTTP.
      }
    }
    throw this.networkError(registry, 'the API version check', lastError);
  }

  /**
   * A loopback registry without TLS settings of its own (no certs.d directory) is asked over plain
   * HTTP first, once and briefly: a registry answer (200 or 401) settles it. Making a TLS context
   * to find out that a local test registry speaks plain HTTP cost 70-90 ms of CPU on the test
   * machine (with NODE_EXTRA_CA_CERTS set, every CA is parsed into it), the failed handshake more. Anything else (a TLS server's 400,
   * a closed connection, no answer) leads to the usual order, HTTPS first. Loopback traffic never
   * leaves the host, so taking plain HTTP where the port offers it gives nothing away.
   */
  private async plainLoopback(registry: string, host: string, tls: TlsSettings): Promise<Endpoint | undefined> {
    if (!isLoopback(registry) || tls.ca || tls.cert) return undefined;
    const base = new URL(`http://${host}/v2/`);
    try {
      const res = await httpRequest({
        method: 'GET',
        url: base,
        tls,
        timeoutMs: Math.min(this.opts.timeoutMs ?? PLAIN_PROBE_TIMEOUT_MS, PLAIN_PROBE_TIMEOUT_MS),
        signal: this.opts.signal,
      });
      drain(res);
      if (res.status !== 200 && res.status !== 401) return undefined;
      const challenge =
        res.status === 401 ? (parseChallenge(res.headers['www-authenticate'] as string | undefined) ?? null) : null;
      return { registry, base, tls, challenge };
    } catch {
      return undefined; // (an abort too: the usual path then says so as it always has)
    }
  }

  private networkError(registry: string, what: string, e: unknown): KilnError {
    if (e instanceof KilnError) return e;
    const err = e as NodeJS.ErrnoException;
    const tlsIssue = /certificate|self.signed|SSL|TLS|wrong version number/i.test(`${err.code ?? ''} ${err.message}`);
    return new KilnError(
      'REGISTRY',
      `cannot reach registry ${registry} for ${what}: ${err.message}`,
      { image: registry },
      {
        hint: tlsIssue
          ? `put the registry's CA in /etc/docker/certs.d/${registry}/ca.crt, or use --tls-verify=false / --insecure-registry ${registry} for a test registry`
          : 'check the registry address and that it is running',
      },
    );
  }

  /** Run one attempt-function with retries on connection errors (not on HTTP answers). */
  private async withRetries(
    registry: string,
    what: string,
    attempt: () => Promise<HttpResponse>,
    noRetry = false,
  ): Promise<HttpResponse> {
    const retries = noRetry ? 0 : (this.opts.retries ?? 4);
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        if (this.opts.signal?.aborted) throw e;
        if (n >= retries || !isRetriableError(e)) throw e;
        this.opts.onRetry?.({ registry, what, attempt: n + 1, reason: (e as Error).message });
        await this.backoff(n);
      }
    }
  }

  async backoff(n: number, retryAfter?: string): Promise<void> {
    const base = this.opts.backoffMs ?? 250;
    let ms = base * 2 ** n * (0.75 + Math.random() / 2);
    const ra = retryAfter !== undefined ? Number(retryAfter) : NaN;
    if (Number.isFinite(ra) && ra >= 0) ms = Math.min(ra * 1000, 10_000);
    await sleep(ms, undefined, { signal: this.opts.signal });
  }

  private scopes(repository: string, o: RequestOptions): string[] {
    return [`repository:${repository}:${o.actions.join(',')}`, ...(o.extraScopes ?? [])];
  }

  private async authorization(ep: Endpoint, scopes: string[]): Promise<string | undefined> {
    const ch = ep.challenge;
    if (!ch) return undefined;
    const creds = await this.credentialsFor(ep.registry);
    if (ch.scheme === 'basic')
      return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    const token = await this.tokens.get({
      challenge: ch,
      scopes,
      creds,
      tls: ep.tls,
      registry: ep.registry,
      signal: this.opts.signal,
    });
    return `Bearer ${token}`;
  }

  /**
   * One registry request: auth (a 401 renews the token or learns the challenge, once), retries on
   * connection errors, 429 and 5xx when the body can be sent again. Returns any other answer.
   */
  async request(ref: ImageReference, o: RequestOptions): Promise<HttpResponse> {
    const ep = await this.endpoint(ref.registry);
    const url = /^https?:\/\//.test(o.path) ? new URL(o.path) : new URL(`${ref.repository}/${o.path}`, ep.base);
    const scopes = this.scopes(ref.repository, o);
    const replayable = o.body === undefined || Buffer.isBuffer(o.body) || typeof o.body === 'function';
    const retries = this.opts.retries ?? 4;
    let authRenewed = false;
    for (let n = 0; ;) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const auth = await this.authorization(ep, scopes);
      if (auth) headers.authorization = auth;
      let res: HttpResponse;
      try {
        res = await httpRequest({
          method: o.method,
          url,
          headers,
          body: o.body as never,
          tls: ep.tls,
          timeoutMs: this.opts.timeoutMs,
          signal: this.opts.signal,
          followRedirects: o.followRedirects,
        });
      } catch (e) {
        if (this.opts.signal?.aborted)
          throw new KilnError('REGISTRY', `interrupted: ${o.what} from ${ref.name()}`, { image: ref.toString() });
        if (n < retries && replayable && isRetriableError(e)) {
          this.opts.onRetry?.({ registry: ref.registry, what: o.what, attempt: ++n, reason: (e as Error).message });
          await this.backoff(n - 1);
          continue;
        }
        throw this.networkError(ref.registry, `${o.what} of ${ref.name()}`, e);
      }
      if (res.status === 401 && !authRenewed) {
        drain(res);
        const ch = parseChallenge(res.headers['www-authenticate'] as string | undefined);
        if (ch) {
          // Expired or narrower token, or the first challenge: learn it, forget the token, retry once.
          if (ep.challenge)
            this.tokens.forget({
              challenge: ep.challenge,
              scopes,
              creds: await this.credentialsFor(ep.registry),
              registry: ep.registry,
            });
          ep.challenge = ch;
          authRenewed = true;
          continue;
        }
      }
      if (
        (res.status === 429 || (res.status >= 500 && res.status !== 501 && res.status !== 505)) &&
        n < retries &&
        replayable
      ) {
        const ra = res.headers['retry-after'] as string | undefined;
        drain(res);
        this.opts.onRetry?.({ registry: ref.registry, what: o.what, attempt: ++n, reason: `HTTP ${res.status}` });
        await this.backoff(n - 1, ra);
        continue;
      }
      return res;
    }
  }

  /** An error from an unexpected answer, with the registry's own error codes and messages. */
  async fail(ref: ImageReference, res: HttpResponse, what: string): Promise<KilnError> {
    const body = await readBody(res, 1 << 16).catch(() => Buffer.alloc(0));
    let detail: string;
    let codes: string[] = [];
    try {
      const v = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
      codes = (v.errors ?? []).map((e) => e.code ?? '');
      detail = (v.errors ?? []).map((e) => `${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`).join('; ');
    } catch {
      detail = body.toString('utf8').trim().slice(0, 200);
    }
    const msg = `${what} on ${ref.registry}/${ref.repository}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`;
    const place = { image: ref.toString() };
    if (res.status === 401 || res.status === 403 || codes.includes('UNAUTHORIZED') || codes.includes('DENIED')) {
      return new KilnError('AUTH', `access denied: ${msg}`, place, {
        hint: `log in with 'kiln login ${ref.registry === DEFAULT_REGISTRY ? '' : ref.registry}'`.replace(/ '$/, "'"),
      });
    }
    if (res.status === 404)
      return new KilnError('NOT_FOUND', `not found: ${msg}`, place, { hint: 'check the name and tag' });
    return new KilnError('REGISTRY', msg, place);
  }

  /**
   * Check credentials as `docker login` does: GET /v2/ with them (Basic), or ask the token server
   * for a token with them (Bearer). Throws KilnError('AUTH') when refused.
   */
  async checkCredentials(registry: string, creds: Credentials): Promise<'basic' | 'bearer' | 'none'> {
    this.setCredentials(registry, creds);
    const ep = await this.endpoint(registry);
    const ch = ep.challenge;
    if (!ch) return 'none';
    if (ch.scheme === 'bearer') {
      this.tokens.forget({ challenge: ch, scopes: [], creds, registry });
      await this.tokens.get({ challenge: ch, scopes: [], creds, tls: ep.tls, registry, signal: this.opts.signal });
      return 'bearer';
    }
    const res = await this.withRetries(registry, 'login', () =>
      httpRequest({
        method: 'GET',
        url: ep.base,
        headers: { authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` },
        tls: ep.tls,
        timeoutMs: this.opts.timeoutMs,
        signal: this.opts.signal,
      }),
    );
    drain(res);
    if (res.status === 200) return 'basic';
    if (res.status === 401 || res.status === 403)
      throw new KilnError('AUTH', `${registry} refused the login of "${creds.username}": wrong username or password`, {
        image: registry,
      });
    throw new KilnError('REGISTRY', `${registry} answered HTTP ${res.status} to the login check`, { image: registry });
  }

  // ---- manifests ----

  async getManifest(
    ref: ImageReference,
    reference = ref.digest ?? ref.tag ?? 'latest',
  ): Promise<{ mediaType: string; digest: Digest; body: Buffer }> {
    const what = `manifest ${reference}`;
    const res = await this.request(ref, {
      method: 'GET',
      path: `manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      actions: ['pull'],
      what,
    });
    if (res.status !== 200) throw await this.fail(ref, res, `cannot get ${what}`);
    const body = await readBody(res, 4 << 20);
    const digest = sha256(body);
    const expected = reference.startsWith('sha256:')
      ? reference
      : (res.headers['docker-content-digest'] as string | undefined);
    if (expected && expected.startsWith('sha256:') && expected !== digest) {
      throw new KilnError(
        'DIGEST',
        `${what} from ${ref.name()} does not match its digest: expected ${expected}, got ${digest}`,
        { image: ref.toString() },
      );
    }
    let mediaType = String(res.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    try {
      const mt = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
      if (typeof mt === 'string' && mt) mediaType = mt;
    } catch {
      throw new KilnError('INVALID', `${what} from ${ref.name()} is not JSON`, { image: ref.toString() });
    }
    if (/vnd\.docker\.distribution\.manifest\.v1/.test(mediaType)) {
      throw new KilnError(
        'UNSUPPORTED',
        `${ref.familiar()} is in the old schema 1 format`,
        { image: ref.toString() },
        { hint: 'push it again with a current docker, or convert it with skopeo copy' },
      );
    }
    return { mediaType, digest, body };
  }

  /** Does the registry have this manifest? Its descriptor, or undefined. */
  async headManifest(ref: ImageReference, reference: string): Promise<Descriptor | undefined> {
    const res = await this.request(ref, {
      method: 'HEAD',
      path: `manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      actions: ['pull'],
      what: `manifest ${reference}`,
    });
    drain(res);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.fail(ref, res, `cannot check manifest ${reference}`);
    return {
      mediaType: String(res.headers['content-type'] ?? ''),
      digest: res.headers['docker-content-digest'] as Digest,
      size: Number(res.headers['content-length'] ?? 0),
    };
  }

  async putManifest(ref: ImageReference, reference: string, body: Buffer, mediaType: string): Promise<Digest> {
    const what = `manifest ${reference}`;
    const res = await this.request(ref, {
      method: 'PUT',
      path: `manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body,
      actions: ['pull', 'push'],
      what,
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202)
      throw await this.fail(ref, res, `cannot push ${what}`);
    drain(res);
    return sha256(body);
  }

  // ---- blobs ----

  async hasBlob(ref: ImageReference, digest: Digest, actions = ['pull']): Promise<boolean> {
    const res = await this.request(ref, {
      method: 'HEAD',
      path: `blobs/${digest}`,
      actions,
      what: `blob ${digest}`,
      followRedirects: true,
    });
    drain(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.fail(ref, res, `cannot check blob ${digest}`);
  }

  /** GET a blob (from `start` with a Range request); 200 or 206, redirects followed. */
  async fetchBlob(ref: ImageReference, digest: Digest, start = 0): Promise<HttpResponse> {
    const headers: Record<string, string> = start > 0 ? { range: `bytes=${start}-` } : {};
    const res = await this.request(ref, {
      method: 'GET',
      path: `blobs/${digest}`,
      headers,
      actions: ['pull'],
      what: `blob ${digest}`,
      followRedirects: true,
    });
    if (res.status !== 200 && res.status !== 206) throw await this.fail(ref, res, `cannot download blob ${digest}`);
    return res;
  }

  /**
   * Download a blob into the store: streamed, resumed with a Range request after a cut connection,
   * committed only when its digest and size check; nothing partial stays behind.
   */
  async pullBlobToStore(
    store: Store,
    ref: ImageReference,
    desc: Descriptor,
    onBytes?: (n: number) => void,
    tee?: DownloadTee,
  ): Promise<'present' | 'downloaded'> {
    if (await store.hasBlob(desc.digest)) return 'present';
    let w = await store.createBlobWriter();
    let got = 0;
    const retries = this.opts.retries ?? 4;
    try {
      for (let n = 0; ;) {
        let res: HttpResponse | undefined;
        try {
          res = await this.fetchBlob(ref, desc.digest, got);
          if (got > 0 && res.status === 200) {
            // The server ignored the Range and sends the whole blob: take it from its first byte.
            await w.abort();
            w = await store.createBlobWriter();
            tee?.restart();
            onBytes?.(-got);
            got = 0;
          }
          for await (const chunk of res.body) {
            const b = chunk as Buffer;
            got += b.length;
            if (got > desc.size)
              throw new KilnError(
                'DIGEST',
                `blob ${desc.digest} from ${ref.name()} is larger than its ${desc.size} bytes`,
                { image: ref.toString() },
                { hint: 'the registry serves different content than the manifest names' },
              );
            if (!w.stream.write(b)) await new Promise<void>((r) => w.stream.once('drain', r));
            await tee?.write(b);
            onBytes?.(b.length);
          }
          if (got < desc.size)
            throw Object.assign(new Error(`connection closed after ${got} of ${desc.size} bytes`), {
              code: 'ECONNRESET',
            });
          break;
        } catch (e) {
          res?.body.destroy();
          if (n < retries && isRetriableError(e) && !this.opts.signal?.aborted) {
            this.opts.onRetry?.({
              registry: ref.registry,
              what: `blob ${desc.digest} (resuming at byte ${got})`,
              attempt: ++n,
              reason: (e as Error).message,
            });
            await this.backoff(n - 1);
            continue;
          }
          if (e instanceof KilnError) throw e;
          throw this.networkError(ref.registry, `blob ${desc.digest} of ${ref.name()}`, e);
        }
      }
      await w.commit({ digest: desc.digest, size: desc.size }).catch((e: unknown) => {
        if (e instanceof KilnError && e.code === 'DIGEST')
          throw new KilnError(
            'DIGEST',
            `blob ${desc.digest} from ${ref.name()} was refused: ${e.message}`,
            { image: ref.toString() },
            { hint: 'the registry served corrupt or different content; nothing was kept' },
          );
        throw e;
      });
      return 'downloaded';
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Upload a blob from the store unless the registry has it: a cross-repository mount when a
   * repository of the same registry is known to hold it, else one monolithic PUT (or PATCH
   * chunks of `chunkSize` bytes, then PUT). A failed upload is restarted from scratch.
   */
  async pushBlobFromStore(
    store: Store,
    ref: ImageReference,
    desc: Descriptor,
    o: { mountFrom?: string[]; chunkSize?: number; onBytes?: (n: number) => void } = {},
  ): Promise<'exists' | 'mounted' | 'uploaded'> {
    if (await this.hasBlob(ref, desc.digest, ['pull', 'push'])) return 'exists';
    const file = store.blobPath(desc.digest);
    const retries = this.opts.retries ?? 4;
    const mountFrom = (o.mountFrom ?? []).filter((r) => r !== ref.repository);
    for (let n = 0; ; n++) {
      try {
        const from = mountFrom[0];
        const q = from ? `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}` : '';
        const start = await this.request(ref, {
          method: 'POST',
          path: `blobs/uploads/${q}`,
          headers: { 'content-length': '0' },
          actions: ['pull', 'push'],
          extraScopes: from ? [`repository:${from}:pull`] : [],
          what: `upload of blob ${desc.digest}`,
        });
        if (start.status === 201 && from) {
          drain(start);
          return 'mounted';
        }
        if (start.status !== 202) throw await this.fail(ref, start, `cannot start the upload of blob ${desc.digest}`);
        drain(start);
        let location = await this.uploadLocation(ref, start);
        let sent = 0;
        if (o.chunkSize && o.chunkSize < desc.size) {
          while (sent < desc.size) {
            const end = Math.min(desc.size, sent + o.chunkSize) - 1;
            const s0 = sent;
            const res = await this.request(ref, {
              method: 'PATCH',
              path: location.href,
              headers: {
                'content-type': 'application/octet-stream',
                'content-range': `${s0}-${end}`,
                'content-length': String(end - s0 + 1),
              },
              body: () => createReadStream(file, { start: s0, end }),
              actions: ['pull', 'push'],
              what: `chunk ${s0}-${end} of blob ${desc.digest}`,
            });
            if (res.status !== 202) throw await this.fail(ref, res, `cannot upload a chunk of blob ${desc.digest}`);
            drain(res);
            location = await this.uploadLocation(ref, res);
            sent = end + 1;
            o.onBytes?.(end - s0 + 1);
          }
          const fin = await this.closeUpload(ref, location, desc.digest);
          if (fin.status !== 201) throw await this.fail(ref, fin, `cannot finish the upload of blob ${desc.digest}`);
          drain(fin);
        } else {
          location.searchParams.set('digest', desc.digest);
          const res = await this.request(ref, {
            method: 'PUT',
            path: location.href,
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
            body: () => {
              const s = createReadStream(file, { highWaterMark: 1 << 20 });
              if (o.onBytes) s.on('data', (b) => o.onBytes!((b as Buffer).length));
              return s;
            },
            actions: ['pull', 'push'],
            what: `upload of blob ${desc.digest}`,
          });
          if (res.status !== 201) throw await this.fail(ref, res, `cannot upload blob ${desc.digest}`);
          drain(res);
        }
        return 'uploaded';
      } catch (e) {
        // A failed mount or upload session: start a fresh plain upload, a few times.
        const retriable =
          isRetriableError(e) ||
          (e instanceof KilnError && e.code === 'REGISTRY' && /HTTP (5\d\d|429)|cannot reach/.test(e.message));
        if (n < retries && retriable && !this.opts.signal?.aborted) {
          this.opts.onRetry?.({
            registry: ref.registry,
            what: `upload of blob ${desc.digest}`,
            attempt: n + 1,
            reason: (e as Error).message,
          });
          mountFrom.length = 0;
          await this.backoff(n);
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * Upload a blob while it is being made (a layer compressed for this push): one streamed PATCH
   * fed by `make`'s `tee` as the bytes come, then the PUT with the digest `make` gives at the
   * end, as docker pushes. Compression and upload overlap. `make` must also keep the blob in the
   * store: if the streamed upload fails, the blob goes up again from there, with the usual
   * retries. Its digest is unknown until the end, so the registry is not asked first whether it
   * has it. `make` calls `encoded` once every byte went through `tee` and the blob is checked:
   * the upload is ended then, while the store still commits its copy (a few fsyncs).
   */
  async pushBlobWhileMaking(
    store: Store,
    ref: ImageReference,
    make: (tee: (chunk: Buffer) => Promise<void>, encoded: (blob: Descriptor) => void) => Promise<Descriptor>,
  ): Promise<Descriptor> {
    const wire = new PassThrough({ highWaterMark: 1 << 20 });
    wire.on('error', () => undefined); // a stopped upload: the request sees it through its own listener
    let wireOk = true;
    let opened = false;
    const stopWire = () => {
      wireOk = false;
      // With an error, so that a request already sending it is torn down, not left waiting for its end.
      wire.destroy(new KilnError('REGISTRY', 'streamed upload stopped'));
    };
    const tee = async (chunk: Buffer) => {
      if (!wireOk) return;
      if (wire.write(chunk)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          wire.off('drain', done);
          wire.off('close', done);
          resolve();
        };
        wire.on('drain', done);
        wire.on('close', done);
      });
    };
    const upload = (async (): Promise<URL | undefined> => {
      const start = await this.request(ref, {
        method: 'POST',
        path: 'blobs/uploads/',
        headers: { 'content-length': '0' },
        actions: ['pull', 'push'],
        what: 'upload of a new blob',
      });
      if (start.status !== 202) throw await this.fail(ref, start, 'cannot start the upload of a blob');
      drain(start);
      const location = await this.uploadLocation(ref, start);
      const res = await this.request(ref, {
        method: 'PATCH',
        path: location.href,
        headers: { 'content-type': 'application/octet-stream' },
        // Not replayable: the bytes are gone once sent (a failure falls back to the store's copy).
        body: () => {
          if (opened || !wireOk) throw new KilnError('REGISTRY', 'a streamed upload cannot be replayed');
          opened = true;
          return wire;
        },
        actions: ['pull', 'push'],
        what: 'streamed upload of a new blob',
      });
      if (res.status !== 202) throw await this.fail(ref, res, 'cannot upload a blob');
      drain(res);
      return this.uploadLocation(ref, res);
    })().catch(() => {
      stopWire();
      return undefined;
    });
    /** The end of the streamed upload: true when the registry took the blob under `digest`. */
    let closing: Promise<boolean> | undefined;
    const close = (digest: Digest) => {
      wire.end();
      closing = (async () => {
        const location = await upload;
        if (!location || !wireOk) return false;
        const fin = await this.closeUpload(ref, location, digest).catch(() => undefined);
        if (fin) drain(fin);
        return fin?.status === 201;
      })();
    };
    let desc: Descriptor;
    try {
      desc = await make(tee, (blob) => close(blob.digest));
    } catch (e) {
      stopWire();
      await upload;
      await closing; // an upload ended already: its answer is not left pending
      throw e;
    }
    // `make` that never said the blob was encoded: ended here, as the store holds it.
    if (!closing) close(desc.digest);
    if (await closing) return desc;
    await this.pushBlobFromStore(store, ref, desc);
    return desc;
  }

  /** The PUT that ends a blob upload session (201 when the registry took the blob). */
  private closeUpload(ref: ImageReference, location: URL, digest: Digest): Promise<HttpResponse> {
    location.searchParams.set('digest', digest);
    return this.request(ref, {
      method: 'PUT',
      path: location.href,
      headers: { 'content-length': '0' },
      actions: ['pull', 'push'],
      what: `end of the upload of blob ${digest}`,
    });
  }

  private async uploadLocation(ref: ImageReference, res: HttpResponse): Promise<URL> {
    const loc = res.headers.location;
    if (!loc)
      throw new KilnError('REGISTRY', `${ref.registry} started an upload without a Location`, {
        image: ref.toString(),
      });
    const ep = await this.endpoint(ref.registry);
    return new URL(loc, ep.base);
  }
}

/** A TLS failure about the peer's certificate (as opposed to a server that does not speak TLS). */
function isCertificateError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/.test(code);
}
