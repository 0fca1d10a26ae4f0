/**
 * HTTP proxies from the environment, with the rules docker's daemon follows (Go's
 * golang.org/x/net/http/httpproxy): HTTPS_PROXY for https URLs and HTTP_PROXY for http ones
 * (upper case first, then lower case), a proxy without a scheme is http://, and NO_PROXY lists
 * what goes direct:
 *   - `*` alone: nothing is proxied;
 *   - an IP address or a CIDR block: hosts given as IPs in it;
 *   - a domain, `.domain` or `*.domain`: `domain` matches itself and its subdomains, the other two
 *     the subdomains only;
 *   - any of these with `:port`: that port only.
 * localhost and loopback addresses are never proxied.
 */
import { BlockList, isIP } from 'node:net';

export type Env = Record<string, string | undefined>;

/** The first of NAME, name that is set and not empty (Go's getEnvAny). */
function pick(env: Env, name: string): string | undefined {
  for (const k of [name.toUpperCase(), name.toLowerCase()]) {
    const v = env[k]?.trim();
    if (v) return v;
  }
  return undefined;
}

/** The proxy for `url` (http or https), or undefined when it goes direct. */
export function proxyFor(url: URL, env: Env = process.env): URL | undefined {
  const raw = pick(env, url.protocol === 'https:' ? 'https_proxy' : url.protocol === 'http:' ? 'http_proxy' : '');
  if (raw === undefined) return undefined;
  const host = hostOf(url);
  if (host === 'localhost' || isLoopback(host)) return undefined;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (bypassed(host, port, pick(env, 'no_proxy') ?? '')) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw Object.assign(
      new Error(
        `invalid proxy address ${JSON.stringify(withoutCredentials(raw))} in ${url.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY'}`,
      ),
      { code: 'EPROXY' },
    );
  }
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:')
    throw Object.assign(
      new Error(
        `unsupported proxy scheme ${proxy.protocol} in ${withoutCredentials(raw)} (http:// and https:// proxies are supported)`,
      ),
      { code: 'EPROXY' },
    );
  return proxy;
}

/** A proxy address for messages: a user:password before the host is masked. */
function withoutCredentials(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

/** The URL's host, lower case, IPv6 without brackets. */
function hostOf(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
}

function bypassed(host: string, port: string, noProxy: string): boolean {
  for (const raw of noProxy.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (inCidr(host, entry)) return true;
      continue;
    }
    let entryPort: string | undefined;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      entry = m[1]!;
      entryPort = m[2];
    }
    entry = entry.replace(/^\[(.*)\]$/, '$1');
    if (entryPort !== undefined && entryPort !== port) continue;
    if (isIP(entry)) {
      if (entry === host) return true;
      continue;
    }
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (entry.startsWith('.')) {
      if (host.endsWith(entry)) return true;
    } else if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function inCidr(host: string, cidr: string): boolean {
  const family = isIP(host);
  if (family === 0) return false;
  const [net, bits] = cidr.split('/');
  if (!net || bits === undefined || isIP(net) !== family || !/^\d+$/.test(bits)) return false;
  const list = new BlockList();
  try {
    list.addSubnet(net, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
  return list.check(host, family === 4 ? 'ipv4' : 'ipv6');
}
