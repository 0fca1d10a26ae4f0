/** `kiln login`: check credentials against the registry, then save them where docker does. */
import { DEFAULT_REGISTRY, parseReference } from '../image/index.js';
import { KilnError } from '../util/index.js';
import { RegistryClient, type ClientOptions } from './client.js';
import { storeCredentials, type Credentials } from './credentials.js';

/** The registry host a `docker login` argument names (a host, a URL, or nothing for Docker Hub). */
export function loginServer(arg: string | undefined): string {
  if (!arg) return DEFAULT_REGISTRY;
  let host: string;
  if (/^[a-z]+:\/\//i.test(arg)) {
    try {
      host = new URL(arg).host;
    } catch {
      throw new KilnError('USAGE', `invalid registry address "${arg}"`);
    }
  } else host = arg.split('/')[0]!;
  if (['index.docker.io', 'registry-1.docker.io', 'docker.io'].includes(host)) return DEFAULT_REGISTRY;
  // Reuse the reference grammar to validate the host part.
  parseReference(`${host}/x`);
  return host;
}

export async function checkLogin(
  server: string | undefined,
  creds: Credentials,
  opts: ClientOptions = {},
): Promise<{ registry: string; configFile: string }> {
  const registry = loginServer(server);
  const client = new RegistryClient(opts);
  await client.checkCredentials(registry, creds);
  const configFile = await storeCredentials(registry, creds);
  return { registry, configFile };
}
