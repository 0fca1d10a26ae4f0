/**
 * `kiln build --explain`: after the build, one row per step — whether it ran or came from the
 * cache, and why (the engine's `explain` events, cache/explain.ts) — with the changes under it.
 */
import { type BuildEvent } from '../engine/index.js';

interface Row {
  stage: number;
  step: number;
  text: string;
  cached?: boolean;
  why?: string;
  changes: string[];
}

/** At most this many change lines under a step (the JSON event has them all, up to 20). */
const CHANGE_LINES = 8;

export class ExplainTable {
  private readonly names = new Map<number, string>();
  private readonly rows = new Map<string, Row>();

  onEvent(e: BuildEvent): void {
    if (e.type === 'plan') for (const s of e.stages) this.names.set(s.stage, s.name ?? String(s.stage));
    else if (e.type === 'step-start')
      this.rows.set(`${e.stage}/${e.step}`, { stage: e.stage, step: e.step, text: e.text, changes: [] });
    else if (e.type === 'explain') {
      const r = this.rows.get(`${e.stage}/${e.step}`);
      if (!r) return;
      r.cached = e.cached;
      r.why = e.text;
      r.changes = e.changes;
    }
  }

  /** The table (empty when no step started). */
  format(): string {
    // Stages run side by side: rows in Dockerfile order (stage, then step), not in start order.
    const rows = [...this.rows.values()]
      .filter((r) => r.why !== undefined)
      .sort((a, b) => a.stage - b.stage || a.step - b.step);
    if (!rows.length) return '';
    const head = rows.map((r) => `${this.names.get(r.stage) ?? r.stage} ${r.step}`);
    const texts = rows.map((r) => firstLine(r.text, 40));
    const w0 = Math.max(4, ...head.map((h) => h.length));
    const w1 = Math.max(11, ...texts.map((t) => t.length));
    const out = [`${'STEP'.padEnd(w0)}  ${'INSTRUCTION'.padEnd(w1)}  RESULT  WHY`];
    rows.forEach((r, i) => {
      out.push(`${head[i]!.padEnd(w0)}  ${texts[i]!.padEnd(w1)}  ${(r.cached ? 'cached' : 'ran').padEnd(6)}  ${r.why}`);
      const pad = ' '.repeat(w0 + w1 + 14);
      for (const c of r.changes.slice(0, CHANGE_LINES)) out.push(`${pad}  ${c}`);
      if (r.changes.length > CHANGE_LINES) out.push(`${pad}  … ${r.changes.length - CHANGE_LINES} more`);
    });
    return `${out.join('\n')}\n`;
  }
}

function firstLine(s: string, n: number): string {
  const l = s.split('\n')[0] ?? '';
  return l.length > n ? `${l.slice(0, n - 1)}…` : l;
}
