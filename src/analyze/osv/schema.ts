/**
 * OSV records (https://ossf.github.io/osv-schema/), validated with zod. Only what matching and
 * reporting need is typed; unknown fields pass through. A malformed record is an INVALID error
 * naming the file and the field.
 */
import { z } from 'zod';
import { KilnError } from '../../util/errors.js';

const severity = z.looseObject({ type: z.string(), score: z.string() });
const event = z.looseObject({
  introduced: z.string().optional(),
  fixed: z.string().optional(),
  last_affected: z.string().optional(),
  limit: z.string().optional(),
});
const range = z.looseObject({
  type: z.string(),
  repo: z.string().optional(),
  events: z.array(event),
});
const jsonObject = z.record(z.string(), z.unknown());
const affected = z.looseObject({
  package: z
    .looseObject({
      ecosystem: z.string(),
      name: z.string(),
      purl: z.string().optional(),
    })
    .optional(),
  severity: z.array(severity).optional(),
  ranges: z.array(range).optional(),
  versions: z.array(z.string()).optional(),
  ecosystem_specific: jsonObject.optional(),
  database_specific: jsonObject.optional(),
});
const record = z.looseObject({
  schema_version: z.string().optional(),
  id: z.string().min(1),
  modified: z.string().optional(),
  published: z.string().optional(),
  withdrawn: z.string().optional(),
  aliases: z.array(z.string()).optional(),
  upstream: z.array(z.string()).optional(),
  related: z.array(z.string()).optional(),
  summary: z.string().optional(),
  details: z.string().optional(),
  severity: z.array(severity).optional(),
  affected: z.array(affected).optional(),
  references: z.array(z.looseObject({ type: z.string(), url: z.string() })).optional(),
  database_specific: jsonObject.optional(),
});

export type OsvSeverity = z.infer<typeof severity>;
export type OsvEvent = z.infer<typeof event>;
export type OsvRange = z.infer<typeof range>;
export type OsvAffected = z.infer<typeof affected>;
export type OsvRecord = z.infer<typeof record>;

/** Validate one OSV record; `where` (a file name) goes into the error. */
export function parseOsvRecord(json: unknown, where = 'OSV record'): OsvRecord {
  const r = record.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : '(root)';
  throw new KilnError('INVALID', `malformed OSV record: ${field}: ${issue.message}`, { path: where });
}
