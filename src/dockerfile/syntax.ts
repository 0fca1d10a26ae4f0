/**
 * The `# syntax=` directive names the frontend BuildKit fetches to read the Dockerfile. kiln has
 * one frontend built in, BuildKit's `docker/dockerfile:1` language, and fetches none: a line
 * naming that frontend (any 1.x version, the upstream channel, a digest) is fine; its `labs`
 * channel reads, but its labs-only features are not there (a warning); any other frontend (a
 * custom language, `docker/dockerfile:2`…) would give the file another meaning, so the build
 * stops with a message saying so. Pure.
 */
import type { Dockerfile } from './ast.js';

export type SyntaxVerdict =
  { kind: 'ok' } | { kind: 'warning'; message: string } | { kind: 'error'; message: string; hint: string };

const DOCKERFILE_FRONTEND =
  /^(?:(?:docker\.io|registry-1\.docker\.io)\/)?docker\/dockerfile(?:-upstream)?(?::([^@]+))?(?:@sha256:[a-f0-9]{64})?$/;

export function checkSyntax(value: string | undefined): SyntaxVerdict {
  if (value === undefined || value.trim() === '') return { kind: 'ok' };
  const m = DOCKERFILE_FRONTEND.exec(value.trim());
  const tag = m?.[1] ?? 'latest';
  if (
    m &&
    (tag === 'latest' ||
      tag === 'master' ||
      /^1(\.\d+)*(-[a-z0-9.]+)?$/.test(tag) ||
      /^master(-[a-z0-9.]+)?$/.test(tag))
  ) {
    if (/labs/.test(tag))
      return {
        kind: 'warning',
        message: `# syntax=${value}: kiln reads Dockerfiles as docker/dockerfile:1; the labs channel's own features are not there`,
      };
    return { kind: 'ok' };
  }
  return {
    kind: 'error',
    message: `# syntax=${value} names a frontend kiln does not have: kiln builds with its own implementation of docker/dockerfile:1 and fetches no frontend image`,
    hint: 'remove the line, or write # syntax=docker/dockerfile:1 if the file is a Dockerfile',
  };
}

/**
 * `# check=skip=A,B;error=true;experimental=C` (BuildKit's directive): the checks to skip ("all":
 * every one), whether they fail the build, and the experimental checks turned on ("all": every one).
 */
export function checkDirective(df: Dockerfile): { skip: Set<string>; error: boolean; experimental: Set<string> } {
  const skip = new Set<string>();
  const experimental = new Set<string>();
  let error = false;
  for (const part of (df.directives.check ?? '').split(';')) {
    const [k, v] = part.split('=').map((s) => s?.trim());
    if (k === 'skip' && v) for (const r of v.split(',')) skip.add(r.trim());
    if (k === 'experimental' && v) for (const r of v.split(',')) experimental.add(r.trim());
    if (k === 'error') error = v === 'true';
  }
  return { skip, error, experimental };
}
