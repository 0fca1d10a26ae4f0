/** Human-readable rendering of a plan (`kiln plan --format text`). */
import type { BuildPlan, PlannedStage } from './types.js';

function stageLabel(plan: BuildPlan, n: number): string {
  const s = plan.stages[n]!;
  return s.name ? `${s.name} (#${n})` : `#${n}`;
}

function baseLabel(plan: BuildPlan, s: PlannedStage): string {
  if (s.base.kind === 'image') return `image ${s.base.ref}`;
  if (s.base.kind === 'stage') return `stage ${stageLabel(plan, s.base.index)}`;
  return 'scratch';
}

export function formatPlanText(plan: BuildPlan): string {
  const out: string[] = [];
  const t = plan.stages[plan.target]!;
  out.push(`${plan.file}: ${plan.stages.length} stage(s), target ${stageLabel(plan, t.index)}, platform ${plan.platform.target}`);
  if (plan.globalArgs.length) out.push(`global args: ${plan.globalArgs.map((a) => (a.value === undefined ? a.name : `${a.name}=${a.value}`)).join(' ')}`);
  out.push(`build order: ${plan.waves.map((w) => w.map((n) => stageLabel(plan, n)).join(' + ')).join(' -> ')}`);
  out.push('');
  const ordered = [...plan.order, ...plan.stages.filter((s) => !s.needed).map((s) => s.index)];
  for (const n of ordered) {
    const s = plan.stages[n]!;
    const deps = s.dependsOn.length ? `, needs ${s.dependsOn.map((d) => stageLabel(plan, d)).join(', ')}` : '';
    const imgs = s.images.length ? `, copies from ${s.images.join(', ')}` : '';
    out.push(`stage ${stageLabel(plan, n)} FROM ${baseLabel(plan, s)}${s.platform ? ` --platform=${s.platform}` : ''}${deps}${imgs}${s.needed ? '' : '  [skipped]'}`);
    for (const pi of s.instructions) out.push(`  ${String(pi.instruction.range.start.line).padStart(4)}  ${pi.expanded.replace(/\n/g, '\n        ')}`);
  }
  for (const w of plan.warnings) out.push(`warning: ${w.line !== undefined ? `${plan.file}:${w.line}: ` : ''}${w.message}`);
  return `${out.join('\n')}\n`;
}
