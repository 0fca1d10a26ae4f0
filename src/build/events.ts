/** Typed build events: the engine emits them, ui/ (and library users) decide how they look. */
export type BuildEvent =
  | { type: 'stage-start'; stage: number; name?: string; base: string }
  | { type: 'step-start'; stage: number; step: number; total: number; text: string; line: number }
  | { type: 'step-output'; stage: number; step: number; stream: 'stdout' | 'stderr'; data: Buffer }
  | { type: 'step-done'; stage: number; step: number; ms: number; layer?: { digest: string; size: number } }
  | { type: 'stage-done'; stage: number; ms: number }
  | { type: 'warning'; message: string }
  | { type: 'done'; imageId: string; manifestDigest: string; ms: number; layers: number; size: number };

export type EventSink = (e: BuildEvent) => void;
