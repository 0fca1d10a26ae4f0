/** Squarified treemap layout (Bruls, Huizing, van Wijk): rectangles for sized items in a box. */

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

function worst(row: number[], side: number): number {
  const s = row.reduce((a, b) => a + b, 0);
  const max = Math.max(...row);
  const min = Math.min(...row);
  return Math.max((side * side * max) / (s * s), (s * s) / (side * side * min));
}

/** Lay out `values` (any order; zeros get empty rects) in `box`; returns rects in input order. */
export function squarify(values: number[], box: Rect): Rect[] {
  const total = values.reduce((a, b) => a + Math.max(0, b), 0);
  const out: Rect[] = values.map(() => ({ x: box.x, y: box.y, w: 0, h: 0 }));
  if (total <= 0 || box.w <= 0 || box.h <= 0) return out;
  const scale = (box.w * box.h) / total;
  const order = values
    .map((v, i) => ({ i, a: Math.max(0, v) * scale }))
    .filter((o) => o.a > 0)
    .sort((p, q) => q.a - p.a);
  let free = { ...box };
  let row: typeof order = [];
  const layoutRow = (r: typeof order) => {
    const sum = r.reduce((a, b) => a + b.a, 0);
    if (free.w >= free.h) {
      // Column on the left.
      const w = sum / free.h;
      let y = free.y;
      for (const o of r) {
        const h = o.a / w;
        out[o.i] = { x: free.x, y, w, h };
        y += h;
      }
      free = { x: free.x + w, y: free.y, w: free.w - w, h: free.h };
    } else {
      const h = sum / free.w;
      let x = free.x;
      for (const o of r) {
        const w = o.a / h;
        out[o.i] = { x, y: free.y, w, h };
        x += w;
      }
      free = { x: free.x, y: free.y + h, w: free.w, h: free.h - h };
    }
  };
  for (const o of order) {
    const side = Math.min(free.w, free.h);
    if (
      row.length === 0 ||
      worst([...row.map((r) => r.a), o.a], side) <=
        worst(
          row.map((r) => r.a),
          side,
        )
    )
      row.push(o);
    else {
      layoutRow(row);
      row = [o];
    }
  }
  if (row.length) layoutRow(row);
  return out;
}
