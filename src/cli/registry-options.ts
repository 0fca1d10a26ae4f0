/** Flags every registry-facing command shares (--insecure-registry, --tls-verify, --platform). */
import { Option, type Command } from 'commander';
import { type ClientOptions } from '../registry/index.js';
import { parsePlatform, type Platform } from '../image/index.js';
import { KilnError } from '../util/index.js';
import { collect } from './options.js';

export interface RegistryFlags {
  insecureRegistry?: string[];
  tlsVerify?: string | boolean;
  platform?: string;
  certDir?: string;
}

export function addRegistryOptions(cmd: Command, opts: { platform?: boolean } = {}): Command {
  cmd.option(
    '--insecure-registry <host>',
    'allow plain HTTP and unverified TLS for this registry (host or host:port); repeatable; loopback registries are always allowed plain HTTP',
    collect,
  );
  cmd.addOption(
    new Option('--tls-verify [bool]', 'verify TLS certificates (default true; --tls-verify=false as skopeo)').argParser(
      (v: string) => v,
    ),
  );
  cmd.option(
    '--cert-dir <dir>',
    'directory of per-registry CA certificates (default /etc/docker/certs.d; HOST[:PORT]/ca.crt inside, as docker)',
  );
  if (opts.platform)
    cmd.option(
      '--platform <os/arch[/variant]>',
      'platform to pick from a multi-platform image (default: this machine)',
    );
  return cmd;
}

export function clientOptionsFrom(flags: RegistryFlags): ClientOptions {
  let tlsVerify = true;
  if (flags.tlsVerify !== undefined && flags.tlsVerify !== true) {
    const v = String(flags.tlsVerify).toLowerCase();
    if (!['true', 'false', '1', '0'].includes(v))
      throw new KilnError('USAGE', `invalid --tls-verify "${flags.tlsVerify}": expected true or false`);
    tlsVerify = v === 'true' || v === '1';
  }
  const env = (process.env.KILN_INSECURE_REGISTRIES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    insecure: [...env, ...(flags.insecureRegistry ?? [])],
    tlsVerify,
    certsDir: flags.certDir ?? process.env.KILN_CERTS_DIR,
  };
}

export function platformFrom(flags: RegistryFlags): Platform | undefined {
  if (!flags.platform) return undefined;
  try {
    return parsePlatform(flags.platform);
  } catch (e) {
    throw new KilnError('USAGE', `invalid --platform "${flags.platform}": ${(e as Error).message}`);
  }
}
