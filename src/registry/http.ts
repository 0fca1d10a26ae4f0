/**
 * A small HTTP(S) client for registries, on node:http/https: streaming bodies both ways, keep-alive
 * agents per TLS setting (per-registry CAs, client certificates, verification off), redirects
 * (blob downloads are often redirected to object storage; credentials never follow to another
 * origin), an idle timeout and abort, and the environment's HTTP(S)_PROXY / NO_PROXY.
 */
import type * as http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type { HttpProxyAgent } from 'http-proxy-agent';
import type { HttpsProxyAgent } from 'https-proxy-agent';
import { proxyFor } from './proxy.js';

// node:http, https and tls (with net and their parsers) are loaded at the first request, not with
// the module: a build answered from its cache, or any command that never talks to a registry,
// does not pay for them at start-up.
const nodeRequire = createRequire(import.meta.url);
let nodeHttp: typeof import('node:http') | undefined;
let nodeHttps: typeof import('node:https') | undefined;
const httpModule = () => (nodeHttp ??= nodeRequire('node:http') as typeof import('node:http'));
const httpsModule = () => (nodeHttps ??= nodeRequire('node:https') as typeof import('node:https'));
const tlsModule = () => nodeRequire('node:tls') as typeof import('node:tls');

export interface TlsSettings {
  /** Extra trusted CAs (PEM), added to the system's. */
  ca?: Buffer[];
  /** Client certificate and key (PEM), docker's certs.d client.cert / client.key. */
  cert?: Buffer;
  key?: Buffer;
  verify: boolean;
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A Buffer, or a factory for a stream (called once per attempt, so redirects can replay it). */
  body?: Buffer | (() => Readable);
  tls?: TlsSettings;
  /** Idle time without a byte either way before the request fails. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Follow redirects (GET/HEAD only). */
  followRedirects?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  /** The URL that answered (after redirects). */
  url: URL;
}

const DEFAULT_TIMEOUT_MS = Number(process.env.KILN_REGISTRY_TIMEOUT_MS) || 60_000;
const agents = new Map<string, http.Agent>();

/** The proxy agents, loaded the first time a proxy is used (most commands never need them). */
let proxyAgents: { http: typeof HttpProxyAgent; https: typeof HttpsProxyAgent } | undefined;
async function loadProxyAgents(): Promise<void> {
  if (proxyAgents) return;
  const [h, s] = await Promise.all([import('http-proxy-agent'), import('https-proxy-agent')]);
  proxyAgents = { http: h.HttpProxyAgent, https: s.HttpsProxyAgent };
}

function agentFor(url: URL, settings: TlsSettings | undefined, proxy: URL | undefined): http.Agent {
  const secure = url.protocol === 'https:';
  const key = `${secure ? `https|${settings?.verify ?? true}|${(settings?.ca ?? []).map((c) => c.length + c.subarray(0, 64).toString('base64')).join(',')}|${settings?.cert?.length ?? 0}` : 'http'}|${proxy?.href ?? ''}`;
  let a = agents.get(key);
  if (!a) {
    const common = { keepAlive: true, maxSockets: 16, scheduling: 'lifo' as const };
    if (secure) {
      // Node's default CAs, NODE_EXTRA_CA_CERTS's and the registry's own: `ca` replaces the
      // defaults, so they are added back.
      const extra = extraCaCerts();
      const ca =
        settings?.ca?.length || extra
          ? [
              ...tlsModule().rootCertificates,
              ...(extra ? [extra] : []),
              ...(settings?.ca ?? []).map((c) => c.toString()),
            ]
          : undefined;
      const target = { ca, cert: settings?.cert, key: settings?.key, rejectUnauthorized: settings?.verify ?? true };
      // Through a proxy: a CONNECT tunnel, TLS with the target inside it.
      a = proxy
        ? new proxyAgents!.https(proxy, { ...common, ...target })
        : new (httpsModule().Agent)({ ...common, ...target });
    } else a = proxy ? new proxyAgents!.http(proxy, common) : new (httpModule().Agent)(common);
    agents.set(key, a);
  }
  return a;
}

let extraCas: string | undefined | null = null;

/**
 * The CAs of the file NODE_EXTRA_CA_CERTS names (PEM), read the first time a TLS agent is made.
 * kiln's executable starts node without that variable (node would read the file at start-up, ~55 ms,
 * for every command: scripts/bundle.mjs) and puts it back for this; a node that did read it (`node
 * kiln.js`) only has them twice. Unreadable: node's words, as a warning, once; the other CAs serve.
 */
function extraCaCerts(): string | undefined {
  if (extraCas !== null) return extraCas;
  const file = process.env.NODE_EXTRA_CA_CERTS;
  extraCas = undefined;
  if (!file) return extraCas;
  try {
    extraCas = readFileSync(file, 'utf8');
  } catch (e) {
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(e as Error).message}`);
  }
  return extraCas;
}

/** Close idle keep-alive sockets (so a CLI process can exit promptly). */
export function closeIdleConnections(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export async function httpRequest(r: HttpRequest): Promise<HttpResponse> {
  let url = r.url;
  let headers = { ...(r.headers ?? {}) };
  for (let hop = 0; hop < 10; hop++) {
    if (proxyFor(url)) await loadProxyAgents();
    const res = await once(r, url, headers);
    const loc = res.headers.location;
    if (r.followRedirects && [301, 302, 303, 307, 308].includes(res.status) && loc) {
      res.body.resume();
      const next = new URL(loc, url);
      // Authorization is for the registry, not for the storage it redirects to.
      if (next.origin !== url.origin) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      url = next;
      continue;
    }
    return res;
  }
  throw Object.assign(new Error(`too many redirects from ${r.url.href}`), { code: 'EREDIRECTS' });
}

function once(r: HttpRequest, url: URL, headers: Record<string, string>): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const body = typeof r.body === 'function' ? r.body() : r.body;
    const h: Record<string, string> = { 'user-agent': 'kiln/0.1', ...headers };
    if (Buffer.isBuffer(body)) h['content-length'] = String(body.length);
    const mod = url.protocol === 'https:' ? httpsModule() : httpModule();
    // HTTP(S)_PROXY / NO_PROXY, as docker's daemon reads them (registry/proxy.ts).
    const proxy = proxyFor(url);
    const req = mod.request(url, {
      method: r.method,
      headers: h,
      agent: agentFor(url, r.tls, proxy),
      signal: r.signal,
    });
    const timeout = r.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    req.setTimeout(timeout, () =>
      req.destroy(
        Object.assign(new Error(`no answer from ${url.host} for ${Math.round(timeout / 1000)} s`), {
          code: 'ETIMEDOUT',
        }),
      ),
    );
    req.on('error', (e: Error) => {
      // Say so when a proxy was in the way: its failures otherwise read as the server's.
      if (proxy)
        e.message = `${e.message} (through the proxy ${proxy.host} from ${url.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY'})`;
      reject(e);
    });
    req.on('response', (res) => {
      // The idle timeout keeps guarding the body while it streams.
      res.setTimeout?.(timeout, () =>
        res.destroy(
          Object.assign(new Error(`${url.host} stopped sending for ${Math.round(timeout / 1000)} s`), {
            code: 'ETIMEDOUT',
          }),
        ),
      );
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    }
  });
}

/** The whole body of a small response (manifests, errors, tokens), capped. */
export async function readBody(res: HttpResponse, limit = 8 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.body.destroy();
      throw Object.assign(new Error(`response from ${res.url.host} is larger than ${limit} bytes`), {
        code: 'ETOOBIG',
      });
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Discard a body we do not need, keeping the connection reusable. */
export function drain(res: HttpResponse): void {
  res.body.resume();
}
