/**
 * OSV records (https://ossf.github.io/osv-schema/), validated with zod (zod/mini). Only what matching and
 * reporting need is typed; unknown fields pass through. A malformed record is an INVALID error
 * naming the file and the field.
 */
import * as z from 'zod/mini';
import { KilnError } from '../../util/index.js';

// zod/mini, as image/validate.ts: messages are written here (mini carries no locale).
/**
 * The schemas, built on first use: zod builds each schema's objects eagerly, a cost every command
 * would pay at start-up (the build's checks load analyze/) for a scan alone to use them.
 */
function makeSchemas() {
  const str = () => z.string('expected a string');
  const opt = <T extends z.ZodMiniType>(t: T) => z.optional(t);
  const strings = () => z.array(str(), 'expected an array of strings');
  const severity = z.looseObject({ type: str(), score: str() }, 'expected an object');
  const event = z.looseObject(
    { introduced: opt(str()), fixed: opt(str()), last_affected: opt(str()), limit: opt(str()) },
    'expected an object',
  );
  const range = z.looseObject(
    { type: str(), repo: opt(str()), events: z.array(event, 'expected an array') },
    'expected an object',
  );
  const jsonObject = z.record(str(), z.unknown(), 'expected an object');
  const affected = z.looseObject(
    {
      package: opt(z.looseObject({ ecosystem: str(), name: str(), purl: opt(str()) }, 'expected an object')),
      severity: opt(z.array(severity, 'expected an array')),
      ranges: opt(z.array(range, 'expected an array')),
      versions: opt(strings()),
      ecosystem_specific: opt(jsonObject),
      database_specific: opt(jsonObject),
    },
    'expected an object',
  );
  const record = z.looseObject(
    {
      schema_version: opt(str()),
      id: str().check(z.minLength(1, 'expected a non-empty string')),
      modified: opt(str()),
      published: opt(str()),
      withdrawn: opt(str()),
      aliases: opt(strings()),
      upstream: opt(strings()),
      related: opt(strings()),
      summary: opt(str()),
      details: opt(str()),
      severity: opt(z.array(severity, 'expected an array')),
      affected: opt(z.array(affected, 'expected an array')),
      references: opt(z.array(z.looseObject({ type: str(), url: str() }, 'expected an object'), 'expected an array')),
      database_specific: opt(jsonObject),
    },
    'expected an object',
  );
  return { severity, event, range, affected, record };
}
type Schemas = ReturnType<typeof makeSchemas>;
let schemas: Schemas | undefined;

export type OsvSeverity = z.infer<Schemas['severity']>;
export type OsvEvent = z.infer<Schemas['event']>;
export type OsvRange = z.infer<Schemas['range']>;
export type OsvAffected = z.infer<Schemas['affected']>;
export type OsvRecord = z.infer<Schemas['record']>;

/** Validate one OSV record; `where` (a file name) goes into the error. */
export function parseOsvRecord(json: unknown, where = 'OSV record'): OsvRecord {
  const r = (schemas ??= makeSchemas()).record.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : '(root)';
  throw new KilnError('INVALID', `malformed OSV record: ${field}: ${issue.message}`, { path: where });
}
