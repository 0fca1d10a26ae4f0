/**
 * Registry credentials shared with docker: `$DOCKER_CONFIG/config.json` (default ~/.docker):
 * `auths` (base64 user:password, or username/password, or an identity token), `credsStore` (one
 * helper for every registry) and `credHelpers` (a helper per registry), the helpers being the
 * `docker-credential-NAME` programs (get/store/erase over stdin/stdout). `kiln login`/`logout`
 * write the same file, so docker and kiln share logins.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KilnError, writeFileAtomic, runCapture } from '../util/index.js';
import { DEFAULT_REGISTRY } from '../image/index.js';

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth refresh token (docker's `identitytoken`): exchanged for access tokens. */
  identityToken?: string;
}

interface DockerConfigAuth {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfigFile {
  auths?: Record<string, DockerConfigAuth>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

/** docker's key for Docker Hub in config.json. */
export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

export function dockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

function configPath(): string {
  return path.join(dockerConfigDir(), 'config.json');
}

/** The config.json key for a registry host, as docker writes it. */
export function configKey(registry: string): string {
  return registry === DEFAULT_REGISTRY ? DOCKER_HUB_KEY : registry;
}

/** Does a config.json key (possibly a URL, possibly the legacy Hub URL) name this registry? */
function keyMatches(key: string, registry: string): boolean {
  let host: string;
  if (/^[a-z]+:\/\//i.test(key)) {
    try {
      host = new URL(key).host;
    } catch {
      return false;
    }
  } else host = key.split('/')[0]!;
  if (registry === DEFAULT_REGISTRY) return ['index.docker.io', 'docker.io', 'registry-1.docker.io'].includes(host);
  return host === registry;
}

async function readConfig(): Promise<DockerConfigFile> {
  const p = configPath();
  let text: string;
  try {
    text = await fsp.readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as DockerConfigFile;
  } catch (e) {
    throw new KilnError(
      'INVALID',
      `${p} is not valid JSON: ${(e as Error).message}`,
      { path: p },
      { hint: 'fix or remove the file (docker uses it too)' },
    );
  }
}

function helperFor(cfg: DockerConfigFile, registry: string): string | undefined {
  for (const [k, h] of Object.entries(cfg.credHelpers ?? {})) if (keyMatches(k, registry)) return h;
  return cfg.credsStore || undefined;
}

async function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<string> {
  const prog = `docker-credential-${helper}`;
  const r = await runCapture(prog, [action], { input }).catch((e: NodeJS.ErrnoException) => {
    throw new KilnError(
      'AUTH',
      `credential helper ${prog} could not be run: ${e.code === 'ENOENT' ? 'not found on PATH' : e.message}`,
      {},
      { hint: `install ${prog}, or remove "${helper}" from ${configPath()}` },
    );
  });
  if (r.code !== 0) {
    const msg = (r.stdout + r.stderr).trim();
    if (action === 'get' && /credentials not found/i.test(msg)) return '';
    throw new KilnError('AUTH', `credential helper ${prog} ${action} failed: ${msg || `exit code ${r.code}`}`);
  }
  return r.stdout;
}

/** Credentials for a registry host, or undefined for anonymous access. */
export async function getCredentials(registry: string): Promise<Credentials | undefined> {
  const cfg = await readConfig();
  const helper = helperFor(cfg, registry);
  if (helper) {
    // Helpers are asked with the key docker would use (a URL for Docker Hub, the host otherwise).
    const out = await runHelper(helper, 'get', configKey(registry));
    if (out.trim()) {
      const v = JSON.parse(out) as { Username?: string; Secret?: string };
      if (v.Username === '<token>') return { username: '', password: '', identityToken: v.Secret ?? '' };
      return { username: v.Username ?? '', password: v.Secret ?? '' };
    }
  }
  for (const [k, a] of Object.entries(cfg.auths ?? {})) {
    if (!keyMatches(k, registry)) continue;
    if (a.identitytoken) return { username: a.username ?? '', password: '', identityToken: a.identitytoken };
    if (a.auth) {
      const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0)
        throw new KilnError('INVALID', `the "auth" entry for ${k} in ${configPath()} is not base64 of user:password`, {
          path: configPath(),
        });
      return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
    }
    if (a.username !== undefined || a.password !== undefined)
      return { username: a.username ?? '', password: a.password ?? '' };
  }
  return undefined;
}

/** Save a login (helper if one is configured, else base64 in `auths`), as `docker login` does. */
export async function storeCredentials(registry: string, creds: Credentials): Promise<string> {
  const cfg = await readConfig();
  const helper = helperFor(cfg, registry);
  const key = configKey(registry);
  if (helper) {
    await runHelper(
      helper,
      'store',
      JSON.stringify({ ServerURL: key, Username: creds.username, Secret: creds.password }),
    );
    (cfg.auths ??= {})[key] ??= {};
    if (cfg.auths[key]!.auth) delete cfg.auths[key]!.auth;
  } else {
    cfg.auths ??= {};
    cfg.auths[key] = {
      ...(cfg.auths[key] ?? {}),
      auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64'),
    };
    delete cfg.auths[key]!.username;
    delete cfg.auths[key]!.password;
  }
  await fsp.mkdir(dockerConfigDir(), { recursive: true, mode: 0o700 });
  await writeFileAtomic(configPath(), JSON.stringify(cfg, null, '\t') + '\n', 0o600);
  return configPath();
}

/** Remove a login; false when there was none. */
export async function eraseCredentials(registry: string): Promise<boolean> {
  const cfg = await readConfig();
  const helper = helperFor(cfg, registry);
  let found = false;
  if (helper) {
    const had = (await runHelper(helper, 'get', configKey(registry))).trim() !== '';
    if (had) {
      await runHelper(helper, 'erase', configKey(registry));
      found = true;
    }
  }
  for (const k of Object.keys(cfg.auths ?? {})) {
    if (keyMatches(k, registry)) {
      delete cfg.auths![k];
      found = true;
    }
  }
  if (found) await writeFileAtomic(configPath(), JSON.stringify(cfg, null, '\t') + '\n', 0o600);
  return found;
}
