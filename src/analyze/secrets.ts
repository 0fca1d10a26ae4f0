/**
 * `kiln scan --secrets`: common credential patterns in any image — private keys, cloud and SaaS
 * tokens, credentials in the files tools keep them in (.npmrc, .pypirc, .netrc, .git-credentials,
 * ~/.docker/config.json) — in every layer (a file a later layer deletes is still in the image's
 * blobs, and found with the layer that deleted it), and in the config's env, labels and history.
 *
 * Streaming: each layer's tar is read once, every file's body scanned line by line as it arrives.
 * A chunk is first tested against one regex of every rule's fixed part; only a chunk that matches
 * (or a file whose name makes every line interesting) is split into lines. A file over
 * `maxFileSize` that looks binary (a NUL in its first bytes) is skipped and reported as skipped.
 * Matches are masked: a finding never shows a credential whole.
 */
import { cleanEntryName } from '../layer/index.js';
import { LayerReader } from './inflate.js';
import { TarScanner, type BodySink } from './tarscan.js';
import { splitWhiteout } from './filetree.js';
import type { ImageSource } from './source.js';
import { inLayer } from './walk.js';

export interface SecretFinding {
  /** The rule: private-key, aws-access-key, … */
  rule: string;
  description: string;
  /** Where: a layer's file, or the config (env, label, history). */
  layer?: number;
  diffId?: string;
  path: string;
  line?: number;
  /** The matched text, masked. */
  match: string;
  /** The Dockerfile step (history) that made the layer. */
  step?: string;
  /** The later layer that deleted the file: still in the image's blobs. */
  deletedIn?: number;
}

export interface SkippedFile {
  layer: number;
  path: string;
  size: number;
}

export interface SecretScanResult {
  findings: SecretFinding[];
  /** Binary files over the size cap, not read. */
  skipped: SkippedFile[];
  maxFileSize: number;
}

export interface SecretScanOptions {
  /** Binary files larger than this are skipped (default 10 MB). */
  maxFileSize?: number;
  onLayer?: (index: number, count: number) => void;
}

interface Rule {
  id: string;
  description: string;
  /** Tested on each line; group 1 (or the whole match) is the credential. */
  re: RegExp;
  /** Only in files of this name (basename, or the path's end). */
  file?: (path: string) => boolean;
  /** The credential is not secret itself (a key's BEGIN line): shown as it is. */
  plain?: boolean;
  /** Text files only: binaries hold such strings as constants (TLS libraries' self-test keys). */
  textOnly?: boolean;
}

const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);

const RULES: Rule[] = [
  {
    id: 'private-key',
    description: 'private key',
    re: /-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY|PGP PRIVATE KEY BLOCK)-----/,
    plain: true,
    textOnly: true,
  },
  { id: 'aws-access-key', description: 'AWS access key id', re: /\b((?:AKIA|ASIA)[0-9A-Z]{16})\b/ },
  {
    id: 'aws-secret-key',
    description: 'AWS secret access key',
    re: /aws_secret_access_key["']?\s*[=:]\s*["']?([A-Za-z0-9/+]{40})\b/i,
  },
  {
    id: 'gcp-service-account',
    description: 'GCP service-account key (JSON)',
    re: /"type"\s*:\s*"(service_account)"/,
    plain: true,
  },
  {
    id: 'github-token',
    description: 'GitHub token',
    re: /\b(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b/,
  },
  { id: 'gitlab-token', description: 'GitLab token', re: /\b(glpat-[A-Za-z0-9_-]{20,})\b/ },
  { id: 'slack-token', description: 'Slack token', re: /\b(xox[baprs]-[A-Za-z0-9-]{10,})\b/ },
  {
    id: 'slack-webhook',
    description: 'Slack webhook URL',
    re: /(https:\/\/hooks\.slack\.com\/services\/T[A-Za-z0-9_]+\/B[A-Za-z0-9_]+\/[A-Za-z0-9_]+)/,
  },
  { id: 'npm-token', description: 'npm access token', re: /\b(npm_[A-Za-z0-9]{36})\b/ },
  {
    id: 'npmrc-auth',
    description: '.npmrc registry credential',
    re: /(?:^|:)_(?:auth|authToken|password)\s*=\s*"?([^\s"]+)/,
    file: (p) => base(p) === '.npmrc' || base(p) === 'npmrc',
  },
  {
    id: 'pypirc-password',
    description: '.pypirc password',
    re: /^\s*password\s*[=:]\s*(\S+)/,
    file: (p) => base(p) === '.pypirc',
  },
  {
    id: 'netrc-password',
    description: '.netrc password',
    re: /\bpassword\s+(\S+)/,
    file: (p) => base(p) === '.netrc' || base(p) === '_netrc',
  },
  {
    id: 'git-credentials',
    description: '.git-credentials password',
    re: /[a-z][a-z0-9+.-]*:\/\/[^:/\s@]+:([^@\s]+)@/,
    file: (p) => base(p) === '.git-credentials' || p.endsWith('/git/credentials'),
  },
  {
    id: 'docker-config-auth',
    description: 'registry credential in a docker config.json',
    re: /"(?:auth|identitytoken|password)"\s*:\s*"([^"]{4,})"/,
    file: (p) => p.endsWith('.docker/config.json') || p.endsWith('containers/auth.json'),
  },
];

/** Every rule's fixed part: a chunk without any is only counted (lines), not split. */
const TRIGGER =
  /PRIVATE KEY|A[KS]IA[0-9A-Z]{16}|aws_secret_access_key|service_account|gh[pousr]_|github_pat_|glpat-|xox[baprs]-|hooks\.slack\.com|npm_[A-Za-z0-9]{36}/i;

/** A secret-looking 40-character string: an AWS secret key near an access key id. */
const AWS_SECRET_NEAR = /(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/;

/** Variables whose names say they hold a secret (BuildKit's SecretsUsedInArgOrEnv words). */
const SECRET_NAME = /(?:^|_)(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)(?:_|$)/i;

/** Longest line kept whole across chunks; a longer one is scanned in pieces. */
const MAX_LINE = 64 * 1024;

export function maskSecret(s: string): string {
  if (s.length <= 8) return '*'.repeat(s.length);
  return `${s.slice(0, 4)}${'*'.repeat(Math.min(s.length - 4, 16))}`;
}

/** Findings of one text's lines (a file's block of lines, or a config value). */
function scanLines(
  lines: string[],
  firstLine: number,
  path: string,
  binary: boolean,
  /** Every credential found (whole), to mask them in the steps shown with the findings. */
  found: Set<string>,
  out: Omit<SecretFinding, 'layer' | 'diffId' | 'step'>[],
): void {
  for (const [i, text] of lines.entries()) {
    for (const r of RULES) {
      if ((r.file && !r.file(path)) || (r.textOnly && binary)) continue;
      const m = r.re.exec(text);
      if (!m) continue;
      const value = m[1] ?? m[0];
      // A key's BEGIN line alone is a string constant (TLS libraries hold them): the key's body
      // follows it, on the next line or, in JSON, after a "\n" escape.
      if (r.id === 'private-key' && !keyBodyFollows(text.slice(m.index + m[0].length), lines[i + 1])) continue;
      let description = r.description;
      if (r.id === 'aws-access-key') {
        const near = lines.slice(Math.max(0, i - 5), i + 6).some((l) => AWS_SECRET_NEAR.test(l.replace(value, '')));
        if (near) description += ' with a secret access key nearby';
      }
      out.push({ rule: r.id, description, path, line: firstLine + i, match: r.plain ? value : maskSecret(value) });
      if (!r.plain) found.add(value);
    }
  }
}

/** Does a key's body (base64, or PEM headers) follow its BEGIN line? Unknown at a block's end: yes. */
function keyBodyFollows(rest: string, next: string | undefined): boolean {
  if (/^\\n(?:[A-Za-z0-9+/=]{16}|Proc-Type:)/.test(rest)) return true;
  if (next === undefined) return rest.trim() === '';
  return /^(?:[A-Za-z0-9+/=]{16,}|Proc-Type:|Comment:|Version:)/.test(next.trim());
}

/** A file's body, scanned line by line as chunks arrive. */
class FileScanner implements BodySink {
  private carry = '';
  private line = 1;
  private readonly everyLine: boolean;
  /** Set from the first chunk (looksBinary). */
  binary = false;
  readonly found: Omit<SecretFinding, 'layer' | 'diffId' | 'step'>[] = [];

  constructor(
    private readonly path: string,
    private readonly values: Set<string>,
  ) {
    this.everyLine = RULES.some((r) => r.file?.(path));
  }

  data(chunk: Buffer): void {
    const text = this.carry + chunk.toString('latin1');
    const cut = text.lastIndexOf('\n');
    if (cut < 0 && text.length <= MAX_LINE) {
      this.carry = text;
      return;
    }
    const end = cut < 0 ? text.length : cut + 1;
    this.block(text.slice(0, end));
    this.carry = text.slice(end);
  }

  end(): void {
    if (this.carry) this.block(this.carry);
    this.carry = '';
  }

  private block(text: string): void {
    const lines = text.split('\n');
    if (text.endsWith('\n')) lines.pop();
    if (this.everyLine || TRIGGER.test(text))
      scanLines(lines, this.line, this.path, this.binary, this.values, this.found);
    this.line += text.endsWith('\n') ? lines.length : lines.length - 1;
  }
}

/** Does a NUL byte in the first 8000 bytes say the file is binary (git's test)? */
function looksBinary(b: Buffer): boolean {
  return b.subarray(0, 8000).includes(0);
}

/** Scan an image's layers and config for credential patterns. */
export async function scanImageSecrets(src: ImageSource, opts: SecretScanOptions = {}): Promise<SecretScanResult> {
  const maxFileSize = opts.maxFileSize ?? 10_000_000;
  const findings: SecretFinding[] = [];
  const skipped: SkippedFile[] = [];
  const found = new Set<string>();
  /** Whiteouts: layer → deleted paths (a directory's opaque marker: `dir/`). */
  const deletions: { layer: number; path: string; opaque: boolean }[] = [];
  const n = src.layers.length;
  const reader = new LayerReader();
  try {
    for (const layer of src.layers) {
      opts.onLayer?.(layer.index, n);
      const step = layer.history?.created_by;
      const scanner = new TarScanner((header): BodySink | undefined => {
        let p: string;
        try {
          p = cleanEntryName(header.name);
        } catch {
          return undefined; // a name escaping the root: never a file of the image
        }
        if (p === '') return undefined;
        const wh = splitWhiteout(p);
        if (wh) {
          deletions.push(
            wh.kind === 'opaque'
              ? { layer: layer.index, path: wh.dir, opaque: true }
              : { layer: layer.index, path: wh.target, opaque: false },
          );
          return undefined;
        }
        if (header.type !== 'file' || header.size === 0) return undefined;
        const file = new FileScanner(`/${p}`, found);
        let first = true;
        let skip = false;
        return {
          data: (c) => {
            if (first) {
              first = false;
              file.binary = looksBinary(c);
              if (header.size > maxFileSize && file.binary) {
                skip = true;
                skipped.push({ layer: layer.index, path: `/${p}`, size: header.size });
              }
            }
            if (!skip) file.data(c);
          },
          end: () => {
            if (skip) return;
            file.end();
            for (const f of file.found) findings.push({ ...f, layer: layer.index, diffId: layer.diffId, step });
          },
        };
      });
      try {
        await reader.pump(layer, (c) => scanner.write(c));
        scanner.end();
      } catch (e) {
        throw inLayer(e, layer, src);
      }
    }
  } finally {
    await reader.close();
  }
  for (const f of findings) {
    const p = f.path.slice(1);
    const d = deletions.find(
      (w) =>
        w.layer > f.layer! &&
        (w.opaque ? w.path === '' || p.startsWith(`${w.path}/`) : p === w.path || p.startsWith(`${w.path}/`)),
    );
    if (d) f.deletedIn = d.layer;
  }
  findings.push(...configFindings(src, found));
  // A step's text may hold the credential it wrote (RUN echo TOKEN > file): masked there too.
  const values = [...found].sort((a, b) => b.length - a.length);
  for (const f of findings)
    if (f.step) for (const v of values) if (f.step.includes(v)) f.step = f.step.split(v).join(maskSecret(v));
  return { findings, skipped, maxFileSize };
}

/** The config's env, labels and history, through the same rules (and names that say "secret"). */
function configFindings(src: ImageSource, found: Set<string>): SecretFinding[] {
  const out: Omit<SecretFinding, 'layer' | 'diffId' | 'step'>[] = [];
  const c = src.config.config ?? {};
  for (const [i, e] of (c.Env ?? []).entries()) {
    scanLines([e], i + 1, 'config: Env', false, found, out);
    const eq = e.indexOf('=');
    const name = e.slice(0, eq);
    const value = e.slice(eq + 1);
    if (
      eq > 0 &&
      SECRET_NAME.test(name) &&
      value.length >= 8 &&
      !out.some((f) => f.path === 'config: Env' && f.line === i + 1)
    )
      out.push({
        rule: 'secret-env',
        description: `variable ${name} holds what its name says is a secret`,
        path: 'config: Env',
        line: i + 1,
        match: `${name}=${maskSecret(value)}`,
      });
  }
  for (const [k, v] of Object.entries(c.Labels ?? {}))
    scanLines([`${k}=${v}`], 1, `config: Labels[${k}]`, false, found, out);
  for (const [i, h] of (src.config.history ?? []).entries())
    if (h.created_by) scanLines([h.created_by], 1, `config: history[${i}]`, false, found, out);
  return out.map((f) => (f.path.startsWith('config: history') ? { ...f, step: undefined } : f));
}
