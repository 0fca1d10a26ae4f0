/**
 * `kiln report`: one self-contained HTML page about an image — no network, no external files.
 * Layers as a stacked bar with their commands, a treemap of the largest directories, dive's
 * efficiency and the wasted files, the packages, the vulnerability summary, and (given the
 * Dockerfile) the stage graph with what each stage contributed to the final image. Drawing is
 * done here (SVG and tables); the page's script only filters tables and highlights layers.
 */
import { displayName, type ImageAnalysis, type DirSize, type GateResult, type ScanResult } from '../analyze/index.js';
import { baselineSection } from './baseline.js';
import { type BuildPlan } from '../plan/index.js';
import { squarify, type Rect } from './treemap.js';
import { human } from '../util/index.js';

export interface ReportInput {
  analysis: ImageAnalysis;
  scan?: ScanResult;
  plan?: BuildPlan;
  /** The CI gate's comparison with a baseline (`kiln report --baseline`). */
  baseline?: GateResult;
  /**
   * Per layer of the image (bottom first), the stage its COPY --from copied from (name or index),
   * as the build's provenance records say: BuildKit's history text omits --from, so without it a
   * stage's copies are only found in a docker-style history ("COPY --from=builder …").
   */
  copiedFrom?: (string | undefined)[];
  tool: { name: string; version: string };
  /** When the report was made (ISO); defaults to the image's creation time for reproducibility. */
  generated?: string;
}

export function esc(s: unknown): string {
  return String(s ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#e15759',
  '#76b7b2',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

/** "RUN /bin/sh -c apt-get ..." → the instruction as written, shortened. */
export function shortCommand(createdBy: string, comment?: string): string {
  let s = createdBy.trim();
  s = s
    .replace(/^\/bin\/sh -c #\(nop\)\s*/, '')
    .replace(/^(?:RUN )?\/bin\/sh -c /, 'RUN ')
    .replace(/^RUN \|\d+ [^ ]+ \/bin\/sh -c /, 'RUN ')
    .replace(/\s*# buildkit$/, '');
  return s || (comment ? `(${comment})` : '(no command recorded)');
}

function layerBar(a: ImageAnalysis): string {
  // Proportional widths, but every layer keeps at least 1.5 % of the bar so small ones stay visible.
  const total = a.layers.reduce((s, l) => s + l.size, 0) || 1;
  const minW = 15;
  const small = a.layers.filter((l) => (l.size / total) * 1000 < minW).length;
  const rest = Math.max(0, 1000 - small * minW);
  const bigTotal = a.layers.filter((l) => (l.size / total) * 1000 >= minW).reduce((s, l) => s + l.size, 0) || 1;
  let x = 0;
  const segs = a.layers.map((l) => {
    const w = (l.size / total) * 1000 < minW ? minW : (l.size / bigTotal) * rest;
    const seg = `<rect class="layer-seg" data-layer="${l.index}" x="${x.toFixed(2)}" y="0" width="${Math.max(w, 0.5).toFixed(2)}" height="40" fill="${PALETTE[l.index % PALETTE.length]}"><title>layer ${l.index + 1}: ${esc(human(l.size))}\n${esc(shortCommand(l.createdBy, l.comment))}</title></rect>`;
    x += w;
    return seg;
  });
  return `<svg class="layerbar" viewBox="0 0 1000 40" preserveAspectRatio="none" role="img" aria-label="layers by size">${segs.join('')}</svg>`;
}

function layerTable(a: ImageAnalysis): string {
  const rows = a.layers
    .map(
      (l) => `<tr class="layer-row" data-layer="${l.index}">
<td><span class="swatch" style="background:${PALETTE[l.index % PALETTE.length]}"></span>${l.index + 1}</td>
<td class="num">${esc(human(l.size))}</td>
<td class="num">${l.changes.added.count} <small>(${esc(human(l.changes.added.bytes))})</small></td>
<td class="num">${l.changes.modified.count} <small>(${esc(human(l.changes.modified.bytes))})</small></td>
<td class="num">${l.changes.removed.count} <small>(${esc(human(l.changes.removed.bytes))})</small></td>
<td><code class="cmd">${esc(shortCommand(l.createdBy, l.comment))}</code><div class="id">${esc(l.diffId)}</div></td>
</tr>`,
    )
    .join('\n');
  return `<table id="layers"><thead><tr><th>#</th><th>size</th><th>added</th><th>modified</th><th>removed</th><th>command</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

function treemap(root: DirSize): string {
  const W = 1000;
  const H = 420;
  const rects: string[] = [];
  const draw = (d: DirSize, box: Rect, depth: number) => {
    const kids = d.children ?? [];
    const rest = Math.max(0, d.bytes - kids.reduce((s, c) => s + c.bytes, 0));
    const values = [...kids.map((k) => k.bytes), rest];
    const pad = depth === 0 ? 0 : 2;
    const head = depth === 0 ? 0 : 14;
    const inner = {
      x: box.x + pad,
      y: box.y + head,
      w: Math.max(0, box.w - 2 * pad),
      h: Math.max(0, box.h - head - pad),
    };
    const lay = squarify(values, inner);
    kids.forEach((k, i) => {
      const r = lay[i]!;
      if (r.w < 1 || r.h < 1) return;
      const color = PALETTE[(depth * 3 + i) % PALETTE.length];
      // Labels only where they fit (about 6 px per character at this size).
      const name = k.path.split('/').pop() || '/';
      const full = `${name} ${human(k.bytes)}`;
      const text = r.h > 12 ? (full.length * 6 + 6 <= r.w ? full : name.length * 6 + 6 <= r.w ? name : '') : '';
      const label = text ? `<text x="${(r.x + 3).toFixed(1)}" y="${(r.y + 11).toFixed(1)}">${esc(text)}</text>` : '';
      rects.push(
        `<g class="dir" data-path="${esc(k.path)}"><rect x="${r.x.toFixed(1)}" y="${r.y.toFixed(1)}" width="${r.w.toFixed(1)}" height="${r.h.toFixed(1)}" fill="${color}" fill-opacity="${(0.35 + 0.15 * depth).toFixed(2)}" stroke="#fff"><title>${esc(k.path)}: ${esc(human(k.bytes))}</title></rect>${label}</g>`,
      );
      if (depth < 2 && r.w > 30 && r.h > 30) draw(k, r, depth + 1);
    });
  };
  draw(root, { x: 0, y: 0, w: W, h: H }, 0);
  return `<svg class="treemap" viewBox="0 0 ${W} ${H}" role="img" aria-label="largest directories">${rects.join('')}</svg>`;
}

function wastedTable(a: ImageAnalysis, limit = 100): string {
  const list = a.efficiency.inefficiencies.slice(0, limit);
  if (!list.length) return '<p class="ok">No file is duplicated or removed across layers.</p>';
  const rows = list
    .map(
      (i) =>
        `<tr><td class="num">${i.count}</td><td class="num">${esc(human(i.cumulativeSize))}</td><td><code>${esc(i.path)}</code></td><td>${i.layers.map((l) => l + 1).join(', ')}</td></tr>`,
    )
    .join('\n');
  const more =
    a.efficiency.inefficiencies.length > limit
      ? `<p>… and ${a.efficiency.inefficiencies.length - limit} more.</p>`
      : '';
  return `<table id="wasted"><thead><tr><th>count</th><th>wasted</th><th>path</th><th>layers</th></tr></thead><tbody>
${rows}
</tbody></table>${more}`;
}

function packageTable(a: ImageAnalysis): string {
  const pk = a.packages ?? [];
  if (!pk.length) return '<p>No packages found (no dpkg/apk database, Python metadata or node_modules).</p>';
  const counts = new Map<string, number>();
  for (const p of pk) counts.set(p.type, (counts.get(p.type) ?? 0) + 1);
  const rows = pk
    .map(
      (p) =>
        `<tr><td>${esc(p.name)}</td><td>${esc(p.version)}</td><td>${esc(p.type)}</td><td class="num">${p.layer + 1}</td><td>${esc(p.licenses.join(', '))}</td><td><code>/${esc(p.location)}</code></td></tr>`,
    )
    .join('\n');
  return `<p>${[...counts].map(([t, n]) => `${n} ${esc(t)}`).join(' · ')}</p>
<input id="pkg-filter" type="search" placeholder="filter packages" aria-label="filter packages">
<table id="packages"><thead><tr><th>name</th><th>version</th><th>type</th><th>layer</th><th>licence</th><th>location</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

function scanSection(scan: ScanResult | undefined): string {
  if (!scan)
    return '<p>Not scanned (run <code>kiln report --db DIR</code> with an OSV database to include vulnerabilities).</p>';
  const sev = (['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'] as const)
    .map((s) => `<span class="sev sev-${s.toLowerCase()}">${s}: ${scan.summary[s]}</span>`)
    .join(' ');
  const rows = scan.findings
    .slice(0, 300)
    .map(
      (f) =>
        `<tr><td><span class="sev sev-${f.severity.toLowerCase()}">${f.severity}</span></td><td>${esc(f.id)}</td><td>${esc(f.package)}</td><td>${esc(f.installedVersion)}</td><td>${esc(f.fixedVersion ?? '')}</td><td>${esc(f.title ?? '')}</td></tr>`,
    )
    .join('\n');
  return `<p class="summary">Total: ${scan.total} ${sev}</p>
${scan.total ? `<table id="vulns"><thead><tr><th>severity</th><th>id</th><th>package</th><th>installed</th><th>fixed</th><th>title</th></tr></thead><tbody>\n${rows}\n</tbody></table>` : '<p class="ok">No known vulnerabilities in the database for these packages.</p>'}`;
}

/** Bytes each stage put into the final image: its own layers (the FROM chain) or COPY --from it. */
export function stageContributions(
  a: ImageAnalysis,
  plan: BuildPlan,
  copiedFrom: (string | undefined)[] = [],
): Map<number, number> {
  const out = new Map<number, number>();
  const byName = new Map<string, number>();
  for (const s of plan.stages) {
    if (s.name) byName.set(s.name.toLowerCase(), s.index);
    byName.set(String(s.index), s.index);
  }
  const chain = new Set<number>();
  for (
    let s: BuildPlan['stages'][number] | undefined = plan.stages[plan.target];
    s;
    s = s.base.kind === 'stage' ? plan.stages[s.base.index] : undefined
  )
    chain.add(s.index);
  for (const l of a.layers) {
    const m = /--from=("?)([^\s"]+)\1/.exec(l.createdBy);
    const recorded = copiedFrom[l.index];
    const from = byName.get((recorded ?? m?.[2] ?? '').toLowerCase());
    if (from !== undefined) out.set(from, (out.get(from) ?? 0) + l.size);
  }
  // The rest of the final image's bytes came with the target's FROM chain (base image and its steps).
  const copied = [...out.values()].reduce((x, y) => x + y, 0);
  const total = a.layers.reduce((s, l) => s + l.size, 0);
  const root = [...chain].pop();
  if (root !== undefined) out.set(plan.target, (out.get(plan.target) ?? 0) + Math.max(0, total - copied));
  return out;
}

function stageGraph(a: ImageAnalysis, plan: BuildPlan | undefined, copiedFrom?: (string | undefined)[]): string {
  if (!plan) return '';
  const contrib = stageContributions(a, plan, copiedFrom);
  const boxW = 200;
  const boxH = 64;
  const gap = 60;
  const W = Math.max(400, plan.stages.length * (boxW + gap));
  const H = 150;
  const xOf = (i: number) => 20 + i * (boxW + gap);
  const edges: string[] = [];
  const boxes: string[] = [];
  for (const s of plan.stages) {
    const x = xOf(s.index);
    const y = 50;
    const base =
      s.base.kind === 'image'
        ? s.base.ref
        : s.base.kind === 'scratch'
          ? 'scratch'
          : `stage ${plan.stages[s.base.index]?.name ?? s.base.index}`;
    const bytes = contrib.get(s.index);
    boxes.push(
      `<g class="stage${s.needed ? '' : ' unused'}${s.index === plan.target ? ' target' : ''}"><rect x="${x}" y="${y}" width="${boxW}" height="${boxH}" rx="6"/><text x="${x + 8}" y="${y + 18}" class="stage-name">${esc(s.name ?? `stage ${s.index}`)}</text><text x="${x + 8}" y="${y + 36}">FROM ${esc(base.length > 26 ? `${base.slice(0, 25)}…` : base)}</text><text x="${x + 8}" y="${y + 54}">${s.needed ? (bytes !== undefined ? `→ final: ${esc(human(bytes))}` : '→ final: 0 B') : 'not built'}</text></g>`,
    );
    for (const d of s.dependsOn) {
      const x1 = xOf(d) + boxW;
      const x2 = x;
      edges.push(
        `<path d="M${x1},${y + boxH / 2} C${x1 + gap / 2},${y - 30} ${x2 - gap / 2},${y - 30} ${x2},${y + boxH / 2}" class="edge" marker-end="url(#arrow)"/>`,
      );
    }
  }
  return `<section id="stages"><h2>Stages</h2><svg class="stagegraph" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="stage graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>${edges.join('')}${boxes.join('')}</svg>
<p>Bytes in the final image by the stage they came from (COPY --from a stage, or the target's FROM chain).</p></section>`;
}

const CSS = `
:root{--fg:#222;--muted:#666;--line:#ddd;--bg:#fafafa}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:#fff;margin:0 auto;max-width:1200px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--muted);font-size:13px}.meta code{color:var(--fg)}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:12px}
svg{width:100%;height:auto;display:block}.layerbar{height:40px;border-radius:4px;overflow:hidden}
.layer-seg{cursor:pointer}.layer-seg.hl{stroke:#000;stroke-width:2}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:13px}th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--bg);position:sticky;top:0}td.num{text-align:right;white-space:nowrap}tr.hl{background:#fff6d6}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}.cmd{white-space:pre-wrap;word-break:break-word}.id{color:var(--muted);font-size:11px;font-family:ui-monospace,monospace}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.treemap text{font-size:10px;fill:#111;pointer-events:none}
.sev{display:inline-block;padding:1px 6px;border-radius:3px;font-size:12px;font-weight:600;color:#fff;background:#999}
.sev-critical{background:#8b0000}.sev-high{background:#d9480f}.sev-medium{background:#e8a200}.sev-low{background:#5c940d}.sev-unknown{background:#868e96}
.ok{color:#2b8a3e}input[type=search]{padding:4px 8px;width:280px;margin:4px 0}
.stagegraph rect{fill:#eef3fb;stroke:#4e79a7}.stage.target rect{fill:#e6f4ea;stroke:#2b8a3e;stroke-width:2}.stage.unused rect{fill:#f1f3f5;stroke:#adb5bd;stroke-dasharray:4}
.stagegraph{width:auto;max-width:100%}.stagegraph text{font-size:12px}.stage-name{font-weight:600}.edge{fill:none;stroke:#888;stroke-width:1.5}
footer{margin-top:32px;color:var(--muted);font-size:12px}
`;

const SCRIPT = `
(function(){
  function hl(i,on){document.querySelectorAll('[data-layer="'+i+'"]').forEach(function(e){e.classList.toggle('hl',on);});}
  document.querySelectorAll('[data-layer]').forEach(function(e){
    var i=e.getAttribute('data-layer');
    e.addEventListener('mouseenter',function(){hl(i,true);});
    e.addEventListener('mouseleave',function(){hl(i,false);});
  });
  var f=document.getElementById('pkg-filter');
  if(f){f.addEventListener('input',function(){var q=f.value.toLowerCase();document.querySelectorAll('#packages tbody tr').forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});}
})();
`;

export function renderReport(input: ReportInput): string {
  const a = input.analysis;
  const img = a.image;
  const title = displayName(img);
  const eff = a.efficiency;
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');
  const scanCard = input.scan
    ? `<div class="card"><b>${input.scan.total}</b><span>vulnerabilities (${input.scan.summary.CRITICAL} critical, ${input.scan.summary.HIGH} high)</span></div>`
    : '';
  const data = {
    image: img,
    layers: a.layers.map((l) => ({
      index: l.index,
      size: l.size,
      diffId: l.diffId,
      command: shortCommand(l.createdBy, l.comment),
    })),
    efficiency: {
      score: eff.efficiency,
      wastedBytes: eff.wastedBytes,
      userWastedPercent: Number.isFinite(eff.wastedUserPercent) ? eff.wastedUserPercent : null,
    },
  };
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(title)} — kiln report</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(title)}</h1>
<div class="meta">id <code>${esc(img.id)}</code>${img.digest ? ` · digest <code>${esc(img.digest)}</code>` : ''} · ${esc(img.platform)}${img.created ? ` · created ${esc(img.created)}` : ''}${img.user ? ` · user <code>${esc(img.user)}</code>` : ' · user <code>root</code> (none set)'}</div>
<div class="cards">
<div class="card"><b>${esc(human(a.finalSize))}</b><span>${a.fileCount} files in the final filesystem</span></div>
<div class="card"><b>${a.layers.length}</b><span>layers, ${esc(human(eff.sizeBytes))} in all</span></div>
<div class="card"><b>${pct(eff.efficiency)}</b><span>efficiency (dive's score)</span></div>
<div class="card"><b>${esc(human(eff.wastedBytes))}</b><span>wasted (${pct(eff.wastedUserPercent)} of user layers)</span></div>
<div class="card"><b>${a.packages?.length ?? 0}</b><span>packages${a.os?.prettyName ? ` · ${esc(a.os.prettyName)}` : ''}</span></div>
${scanCard}
</div>
</header>
${baselineSection(input.baseline, esc)}
<section id="layers-section"><h2>Layers</h2>
${layerBar(a)}
${layerTable(a)}
</section>
${stageGraph(a, input.plan, input.copiedFrom)}
<section id="directories"><h2>Largest directories</h2>
${treemap(a.directories)}
</section>
<section id="waste"><h2>Wasted space</h2>
<p>Files written in one layer and overwritten or deleted in a later one still take space in the image (dive's definition: every copy of such a path counts).</p>
${wastedTable(a)}
</section>
<section id="packages-section"><h2>Packages</h2>
${packageTable(a)}
</section>
<section id="vulnerabilities"><h2>Vulnerabilities</h2>
${scanSection(input.scan)}
</section>
<footer>Made by ${esc(input.tool.name)} ${esc(input.tool.version)}${input.generated ? ` on ${esc(input.generated)}` : ''}. Self-contained: this page loads nothing from the network.</footer>
<script type="application/json" id="kiln-data">${json}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
