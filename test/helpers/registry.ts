/**
 * Real registries for tests: Debian's docker-registry (the CNCF distribution registry) on a free
 * loopback port — plain HTTP, TLS with htpasswd Basic auth (a CA made here), or token auth with a
 * small token server issuing RS256 JWTs that the registry's rootcertbundle trusts — and a fault
 * proxy that cuts, corrupts, fails or delays chosen requests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSign, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

export function registryUnavailable(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v docker-registry']).status !== 0)
    return 'docker-registry is not installed (apt-get install docker-registry)';
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) return 'openssl is not installed';
  return undefined;
}

export function htpasswdUnavailable(): string | undefined {
  return spawnSync('sh', ['-c', 'command -v htpasswd']).status === 0
    ? undefined
    : 'htpasswd is not installed (apt-get install apache2-utils)';
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

export interface TestCA {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A CA and a server certificate for 127.0.0.1 / localhost signed by it. */
export function makeCA(dir: string): TestCA {
  mkdirSync(dir, { recursive: true });
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=kiln test CA',
    ],
    dir,
  );
  openssl(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'],
    dir,
  );
  writeFileSync(
    path.join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
    ],
    dir,
  );
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
  };
}

export interface TokenServer {
  url: string;
  /** PEM certificate whose key signs the tokens (the registry's rootcertbundle). */
  certFile: string;
  /** Requests seen: scopes asked and whether credentials came. */
  requests: { scopes: string[]; user?: string }[];
  /** Token lifetime in seconds written into the JWT (expires_in claims 300 regardless). */
  lifetime: number;
  /** This many next tokens are issued expired an hour ago (past any leeway the registry allows). */
  expiredNext: number;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A token server as Docker Hub's: GET /token?service=S&scope=repository:NAME:ACTIONS with Basic
 * credentials. Known users get every action asked; anonymous callers get `pull` only when
 * `anonymousPull`.
 */
export async function startTokenServer(
  dir: string,
  opts: { users: Record<string, string>; service: string; issuer: string; anonymousPull?: boolean },
): Promise<TokenServer> {
  mkdirSync(dir, { recursive: true });
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'token.key',
      '-out',
      'token.crt',
      '-days',
      '2',
      '-subj',
      '/CN=kiln test token signer',
    ],
    dir,
  );
  const key = readFileSync(path.join(dir, 'token.key'), 'utf8');
  const certPem = readFileSync(path.join(dir, 'token.crt'), 'utf8');
  const certDer = Buffer.from(certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const requests: TokenServer['requests'] = [];
  const ts: TokenServer = {
    url: '',
    certFile: path.join(dir, 'token.crt'),
    requests,
    lifetime: 300,
    expiredNext: 0,
    stop: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [name, pass] = Buffer.from(auth.slice(6), 'base64').toString().split(/:(.*)/s);
      if (opts.users[name!] !== pass) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}');
        return;
      }
      user = name;
    }
    const scopes = u.searchParams.getAll('scope');
    requests.push({ scopes, user });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = [s.split(':')[0]!, s.split(':').slice(1, -1).join(':'), s.split(':').at(-1)!];
      if (type !== 'repository') return [];
      const granted = user
        ? actions.split(',')
        : opts.anonymousPull
          ? actions.split(',').filter((a) => a === 'pull')
          : [];
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
    const expired = ts.expiredNext > 0;
    if (expired) ts.expiredNext--;
    const exp = expired ? now - 3600 : now + ts.lifetime;
    const claims = {
      iss: opts.issuer,
      sub: user ?? '',
      aud: u.searchParams.get('service') ?? opts.service,
      exp,
      nbf: Math.min(now, exp) - 10,
      iat: Math.min(now, exp),
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${input}.${b64url(sig)}`, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ts.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
  ts.stop = () => new Promise((r) => server.close(() => r()));
  return ts;
}

export interface Registry {
  /** host:port to use in references. */
  host: string;
  dir: string;
  ca?: TestCA;
  token?: TokenServer;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  tls?: boolean;
  /** Basic auth (htpasswd, bcrypt). */
  users?: Record<string, string>;
  /** Token auth (needs users). */
  tokenAuth?: boolean;
  anonymousPull?: boolean;
}

export async function startRegistry(o: RegistryOptions = {}): Promise<Registry> {
  const dir = mkdtempSync('/tmp/kiln-reg-');
  const port = await freePort();
  const ca = o.tls ? makeCA(path.join(dir, 'ca')) : undefined;
  let token: TokenServer | undefined;
  let auth = '';
  if (o.tokenAuth) {
    token = await startTokenServer(path.join(dir, 'token'), {
      users: o.users ?? {},
      service: 'kiln-test-registry',
      issuer: 'kiln-test-issuer',
      anonymousPull: o.anonymousPull,
    });
    auth = `auth:\n  token:\n    realm: ${token.url}\n    service: kiln-test-registry\n    issuer: kiln-test-issuer\n    rootcertbundle: ${token.certFile}\n`;
  } else if (o.users) {
    const lines = Object.entries(o.users).map(([u, p]) => {
      const r = spawnSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`htpasswd: ${r.stderr}`);
      return r.stdout.trim();
    });
    writeFileSync(path.join(dir, 'htpasswd'), lines.join('\n') + '\n');
    auth = `auth:\n  htpasswd:\n    realm: kiln-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  }
  const tls = ca ? `  tls:\n    certificate: ${ca.serverCert}\n    key: ${ca.serverKey}\n` : '';
  writeFileSync(
    path.join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: ${randomBytes(12).toString('hex')}\n${tls}${auth}`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await token?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when the port answers.
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited: ${log}`);
    }
    const up = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host: `127.0.0.1:${port}`, dir, ca, token, stop };
}

/** A certs.d-style directory holding the registry's CA (pass to kiln with --cert-dir). */
export function certDirFor(reg: Registry): string {
  const d = path.join(reg.dir, 'certs.d', reg.host);
  mkdirSync(d, { recursive: true });
  if (reg.ca && !existsSync(path.join(d, 'ca.crt'))) writeFileSync(path.join(d, 'ca.crt'), readFileSync(reg.ca.caCert));
  return path.join(reg.dir, 'certs.d');
}

export interface FaultRule {
  /** Which requests: method and a path regex. */
  method?: string;
  path: RegExp;
  /** cut: send headers and about half the body, then drop the connection; status: answer with it;
   *  corrupt: flip bytes of the body; delay: wait before forwarding; no-range: forward without
   *  the Range header (a registry that ignores Range: the whole blob, 200). */
  action: 'cut' | 'status' | 'corrupt' | 'delay' | 'no-range';
  status?: number;
  delayMs?: number;
  /** How many matching requests it applies to (default 1). */
  times?: number;
}

export interface FaultProxy {
  host: string;
  rules: FaultRule[];
  /** Every request seen: method, path, Range header, and what the proxy did. */
  log: { method: string; path: string; range?: string; fault?: string; status?: number }[];
  stop(): Promise<void>;
}

/** A plain-HTTP proxy in front of a plain-HTTP registry, applying fault rules. */
export async function startFaultProxy(target: string, rules: FaultRule[] = []): Promise<FaultProxy> {
  const [thost, tport] = target.split(':');
  const log: FaultProxy['log'] = [];
  const left = new Map<FaultRule, number>();
  const proxy: FaultProxy = { host: '', rules, log, stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const p = req.url ?? '/';
    const rule = proxy.rules.find(
      (r) => (!r.method || r.method === req.method) && r.path.test(p) && (left.get(r) ?? r.times ?? 1) > 0,
    );
    const entry: FaultProxy['log'][number] = { method: req.method ?? '', path: p, range: req.headers.range };
    log.push(entry);
    if (rule) {
      left.set(rule, (left.get(rule) ?? rule.times ?? 1) - 1);
      entry.fault = rule.action;
    }
    if (rule?.action === 'status') {
      req.resume();
      entry.status = rule.status ?? 500;
      res
        .writeHead(rule.status ?? 500, { 'content-type': 'application/json' })
        .end('{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}');
      return;
    }
    const forward = () => {
      const headers = { ...req.headers };
      if (rule?.action === 'no-range') delete headers.range;
      const up = http.request({ host: thost, port: Number(tport), method: req.method, path: p, headers }, (ur) => {
        entry.status = ur.statusCode;
        if (rule?.action === 'cut' && ur.statusCode && ur.statusCode < 300) {
          const total = Number(ur.headers['content-length'] ?? 0);
          res.writeHead(ur.statusCode, ur.headers);
          // Exactly the first half of the bytes, in order, then the connection drops.
          const half = Math.max(1, Math.floor(total / 2));
          let sent = 0;
          ur.on('data', (b: Buffer) => {
            if (sent >= half) return;
            const take = b.subarray(0, Math.min(b.length, half - sent));
            sent += take.length;
            res.write(take);
            if (sent >= half) {
              ur.destroy();
              setTimeout(() => res.socket?.destroy(), 20);
            }
          });
          return;
        }
        if (rule?.action === 'corrupt' && ur.statusCode && ur.statusCode < 300) {
          res.writeHead(ur.statusCode, ur.headers);
          let first = true;
          ur.on('data', (b: Buffer) => {
            if (first) {
              b = Buffer.from(b);
              for (let i = 0; i < Math.min(16, b.length); i++) b[i] = b[i]! ^ 0xff;
              first = false;
            }
            res.write(b);
          });
          ur.on('end', () => res.end());
          return;
        }
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (rule?.action === 'delay') setTimeout(forward, rule.delayMs ?? 1000);
    else forward();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  proxy.stop = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

/** Upload an image's blobs and manifest as given, unchecked (a hostile or broken image). */
export async function pushRawImage(
  host: string,
  repo: string,
  tag: string,
  img: {
    config: Buffer;
    layers: Buffer[];
    manifest?: (cfg: { digest: string; size: number }, layers: { digest: string; size: number }[]) => unknown;
  },
): Promise<void> {
  const { createHash } = await import('node:crypto');
  const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const put = async (b: Buffer) => {
    const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
    const loc = new URL(start.headers.get('location')!, `http://${host}`);
    loc.searchParams.set('digest', digestOf(b));
    const done = await fetch(loc, { method: 'PUT', body: b, headers: { 'content-type': 'application/octet-stream' } });
    if (done.status !== 201) throw new Error(`upload: ${done.status} ${await done.text()}`);
    return { digest: digestOf(b), size: b.length };
  };
  const cfg = await put(img.config);
  const layers = [];
  for (const l of img.layers) layers.push(await put(l));
  const manifest = img.manifest?.(cfg, layers) ?? {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
  };
  const r = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: JSON.stringify(manifest),
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (r.status !== 201) throw new Error(`manifest: ${r.status} ${await r.text()}`);
}
