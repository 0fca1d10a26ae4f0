/** Reading `kiln build --progress json` for the build-cache tests: which steps came from the cache. */
import assert from 'node:assert/strict';

export interface Step {
  stage: number;
  step: number;
  text: string;
  cached: boolean;
  /** The layer the step added (from step-done), if any. */
  layer?: string;
}

export interface Built {
  id: string;
  /** The tag the build was given (untagged images cannot be inspected or run). */
  tag: string;
  steps: Step[];
  warnings: string[];
  stderr: string;
}

/** Parse `kiln build --progress json` output: the steps in the order they started, and the image id. */
export function parseJsonProgress(stdout: string, stderr = '', tag = ''): Built {
  const steps = new Map<string, Step>();
  const warnings: string[] = [];
  let id = '';
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as {
      type: string;
      stage: number;
      step: number;
      text: string;
      imageId: string;
      message: string;
      layer?: { digest: string };
    };
    if (e.type === 'step-start')
      steps.set(`${e.stage}/${e.step}`, { stage: e.stage, step: e.step, text: e.text.split('\n')[0]!, cached: false });
    if (e.type === 'step-cached') steps.get(`${e.stage}/${e.step}`)!.cached = true;
    if (e.type === 'step-done' && e.layer) steps.get(`${e.stage}/${e.step}`)!.layer = e.layer.digest;
    if (e.type === 'warning') warnings.push(e.message);
    if (e.type === 'done') id = e.imageId;
  }
  assert.ok(id, `no done event in:\n${stdout}\n${stderr}`);
  return { id, tag, steps: [...steps.values()], warnings, stderr };
}
