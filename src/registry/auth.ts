/**
 * Registry authentication: the WWW-Authenticate challenge (Basic or Bearer with realm, service,
 * scope), and the token flow Docker Hub, GHCR, ECR and `registry:2` with token auth use: a token
 * per set of scopes from the realm, with Basic credentials when there are some (or an OAuth refresh
 * token), cached until shortly before it expires.
 */
import { KilnError } from '../util/index.js';
import type { Credentials } from './credentials.js';
import { httpRequest, readBody, type TlsSettings } from './http.js';

export interface Challenge {
  scheme: 'basic' | 'bearer';
  realm?: string;
  service?: string;
  scope?: string;
}

/** Parse a WWW-Authenticate header (RFC 7235 auth-params, quoted strings with escapes). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2]!;
  re.lastIndex = 0;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest))) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme, realm: params.realm, service: params.service, scope: params.scope };
}

interface CachedToken {
  token: string;
  expires: number;
}

export interface TokenRequest {
  challenge: Challenge;
  scopes: string[];
  creds?: Credentials;
  tls?: TlsSettings;
  registry: string;
  signal?: AbortSignal;
}

/** Tokens cached per realm, service, scopes and user; renewed when near expiry or refused. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  /** Tokens being fetched: requests that start together (a push's blobs) share one fetch. */
  private readonly fetching = new Map<string, Promise<CachedToken>>();

  private key(r: TokenRequest): string {
    return [r.challenge.realm, r.challenge.service, [...r.scopes].sort().join(' '), r.creds?.username ?? ''].join('|');
  }

  forget(r: TokenRequest): void {
    this.tokens.delete(this.key(r));
  }

  async get(r: TokenRequest): Promise<string> {
    const k = this.key(r);
    const c = this.tokens.get(k);
    if (c && c.expires > Date.now()) return c.token;
    let f = this.fetching.get(k);
    if (!f) {
      f = fetchToken(r).then(
        (t) => {
          this.fetching.delete(k);
          this.tokens.set(k, t);
          return t;
        },
        (e: unknown) => {
          this.fetching.delete(k);
          throw e;
        },
      );
      this.fetching.set(k, f);
    }
    return (await f).token;
  }
}

async function fetchToken(r: TokenRequest): Promise<CachedToken> {
  const realm = r.challenge.realm;
  if (!realm)
    throw new KilnError('AUTH', `${r.registry} asked for a bearer token without saying where to get one (no realm)`, {
      image: r.registry,
    });
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new KilnError('AUTH', `${r.registry} gave an invalid token realm ${JSON.stringify(realm)}`, {
      image: r.registry,
    });
  }
  const headers: Record<string, string> = { accept: 'application/json' };
  let res;
  if (r.creds?.identityToken) {
    // OAuth2 refresh-token grant (docker's identity tokens).
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: r.creds.identityToken,
      client_id: 'kiln',
      service: r.challenge.service ?? '',
    });
    form.set('scope', r.scopes.join(' '));
    res = await httpRequest({
      method: 'POST',
      url,
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from(form.toString()),
      tls: r.tls,
      signal: r.signal,
    });
  } else {
    if (r.challenge.service) url.searchParams.set('service', r.challenge.service);
    for (const s of r.scopes) url.searchParams.append('scope', s);
    if (r.creds)
      headers.authorization = `Basic ${Buffer.from(`${r.creds.username}:${r.creds.password}`).toString('base64')}`;
    res = await httpRequest({ method: 'GET', url, headers, tls: r.tls, signal: r.signal, followRedirects: true });
  }
  const body = await readBody(res, 1 << 20);
  if (res.status === 401 || res.status === 403) {
    throw new KilnError(
      'AUTH',
      `${r.registry}: the token server ${url.host} refused ${r.creds ? `the credentials of "${r.creds.username}"` : 'anonymous access'} for ${r.scopes.join(' ') || 'the registry'} (HTTP ${res.status})`,
      { image: r.registry },
      { hint: r.creds ? `check them with 'kiln login ${r.registry}'` : `log in with 'kiln login ${r.registry}'` },
    );
  }
  if (res.status !== 200)
    throw new KilnError(
      'AUTH',
      `${r.registry}: the token server ${url.host} answered HTTP ${res.status}: ${body.toString('utf8').slice(0, 200)}`,
      { image: r.registry },
    );
  let v: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    v = JSON.parse(body.toString('utf8')) as typeof v;
  } catch {
    throw new KilnError('AUTH', `${r.registry}: the token server ${url.host} did not answer JSON`, {
      image: r.registry,
    });
  }
  const token =
    typeof v.token === 'string' && v.token ? v.token : typeof v.access_token === 'string' ? v.access_token : '';
  if (!token)
    throw new KilnError('AUTH', `${r.registry}: the token server ${url.host} answered without a token`, {
      image: r.registry,
    });
  // The spec's default lifetime is 60 s; renew a little early.
  const life = typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : 60;
  return { token, expires: Date.now() + Math.max(5, life - 10) * 1000 };
}
