/**
 * Layer efficiency exactly as dive (github.com/wagoodman/dive) defines it, so kiln's numbers can
 * be compared with dive's and its CI thresholds mean the same thing:
 *
 * - Each layer's tar becomes a tree (dive's FileTree: entry names cleaned; ".wh..wh..opq" markers
 *   ignored; intermediate directories without their own entry get an empty FileInfo).
 * - For every layer, every LEAF of its tree is a "reference" to its path (whiteout leaves refer to
 *   the path they delete). A reference's size is the entry's tar size; for a whiteout, the total
 *   size of the deleted subtree when it was a directory in the layers below (stacked the way dive
 *   stacks them), else 0.
 * - Per path: CumulativeSize = sum of its references' sizes; minDiscoveredSize = the smallest.
 *   A path referenced twice or more is an inefficiency.
 * - efficiency score = Σ minDiscoveredSize / Σ CumulativeSize over all paths (1 when the sum is 0).
 * - wasted bytes = Σ CumulativeSize over the inefficiencies (the first copy counts too).
 * - layer size = Σ tar entry sizes; user size = all layers but the first;
 *   user wasted percent = wasted bytes / user size (a fraction, as dive's rule compares it).
 *
 * One deliberate difference: a whiteout of a path that no lower layer has makes dive stop
 * counting the rest of that layer (an error it only logs); kiln counts that whiteout as 0 bytes
 * and goes on.
 */
import { type EntryType } from '../layer/index.js';

export interface LayerEntry {
  /** Cleaned tar entry name (no leading "/" or "./"). Whiteouts keep their ".wh." names. */
  path: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  /** Content digest of a regular file, when it was computed. */
  hash?: string;
}

interface DiveInfo {
  size: number;
  isDir: boolean;
}

const ZERO: DiveInfo = { size: 0, isDir: false };
const WH = '.wh.';
const WH_META = '.wh..wh.';

class DiveNode {
  children = new Map<string, DiveNode>();
  constructor(
    readonly name: string,
    public info: DiveInfo,
    readonly parent?: DiveNode,
  ) {}
  get isWhiteout(): boolean {
    return this.name.startsWith(WH);
  }
  /** dive's Path(): "/a/b", the whiteout prefix trimmed from the node's own name. */
  path(): string {
    const names: string[] = [];
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the walk up starts at this node; nothing captures it
    for (let n: DiveNode | undefined = this; n?.parent; n = n.parent)
      names.push(n === this && n.name.startsWith(WH) ? n.name.slice(WH.length) : n.name);
    return `/${names.reverse().join('/')}`;
  }
  sortedChildren(): DiveNode[] {
    return [...this.children.values()].sort((a, b) => byteCompare(a.name, b.name));
  }
}

/** Go's sort.Strings order (bytes), not JS's UTF-16 code units. */
const ASCII = /^[\x00-\x7f]*$/;
function byteCompare(a: string, b: string): number {
  if (a === b) return 0;
  // UTF-16 order equals byte order for ASCII; only other names need encoding.
  if (ASCII.test(a) && ASCII.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

class DiveTree {
  root = new DiveNode('', ZERO);

  addPath(p: string, info: DiveInfo): void {
    const names =
      p.indexOf('//') < 0 && !p.startsWith('/') && !p.endsWith('/') && !p.startsWith('./') && !p.includes('/./')
        ? p.split('/')
        : p.split('/').filter((n) => n !== '' && n !== '.');
    let node = this.root;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      let child = node.children.get(name);
      if (!child) {
        if (name.startsWith(WH_META)) return; // dive never adds opaque markers
        child = new DiveNode(name, ZERO, node);
        node.children.set(name, child);
      }
      node = child;
      if (i === names.length - 1) node.info = info;
    }
  }

  getNode(p: string): DiveNode | undefined {
    let node: DiveNode | undefined = this.root;
    for (const name of p.split('/')) {
      if (name === '') continue;
      node = node.children.get(name);
      if (!node) return undefined;
    }
    return node;
  }

  removePath(p: string): void {
    const n = this.getNode(p);
    if (n?.parent) n.parent.children.delete(n.name);
  }

  /** Depth-first, children (sorted) before their parent; never the root. */
  visitChildFirst(fn: (n: DiveNode) => void, node: DiveNode = this.root): void {
    for (const c of node.sortedChildren()) this.visitChildFirst(fn, c);
    if (node !== this.root) fn(node);
  }

  copy(): DiveTree {
    const t = new DiveTree();
    const rec = (from: DiveNode, to: DiveNode) => {
      for (const [name, c] of from.children) {
        const n = new DiveNode(name, c.info, to);
        to.children.set(name, n);
        rec(c, n);
      }
    };
    rec(this.root, t.root);
    return t;
  }

  /** dive's Stack: graft `upper` onto this tree (whiteouts remove, everything else is added/replaced). */
  stack(upper: DiveTree): void {
    upper.visitChildFirst((n) => {
      if (n.isWhiteout) this.removePath(n.path());
      else this.addPath(n.path(), n.info);
    });
  }
}

function buildLayerTree(entries: LayerEntry[]): DiveTree {
  const t = new DiveTree();
  for (const e of entries) {
    if (e.path === '' || e.path === '.') continue;
    t.addPath(e.path, { size: e.size, isDir: e.type === 'directory' });
  }
  return t;
}

export interface Inefficiency {
  /** Path with a leading "/", as dive prints it. */
  path: string;
  /** Bytes of all references (dive's "wasted space" column). */
  cumulativeSize: number;
  /** Number of references (dive's "count"). */
  count: number;
  /** Layers that referenced it, in order. */
  layers: number[];
}

export interface EfficiencyResult {
  /** dive's efficiency score, 0..1. */
  efficiency: number;
  wastedBytes: number;
  /** Σ layer sizes. */
  sizeBytes: number;
  /** Σ layer sizes except the first layer's. */
  userSizeBytes: number;
  /** wastedBytes / userSizeBytes (NaN for 0/0, Infinity for x/0, as dive's float division). */
  wastedUserPercent: number;
  /** dive's layer sizes: Σ tar entry sizes per layer. */
  layerSizes: number[];
  /** Largest first. */
  inefficiencies: Inefficiency[];
}

export function computeEfficiency(layers: LayerEntry[][]): EfficiencyResult {
  const data = new Map<string, { cumulative: number; min: number; count: number; layers: number[] }>();
  const matches: { path: string; d: { cumulative: number; min: number; count: number; layers: number[] } }[] = [];
  const layerSizes = layers.map((l) => l.reduce((s, e) => s + e.size, 0));
  let stacked: DiveTree | undefined;
  layers.forEach((entries, idx) => {
    const tree = buildLayerTree(entries);
    // StackTreeRange(trees, 0, idx-1) as dive computes it: layer 0's own tree for idx 0.
    const below = idx === 0 ? tree : stacked!;
    tree.visitChildFirst((node) => {
      if (node.children.size) return; // leaves only
      const p = node.path();
      let size = 0;
      if (node.isWhiteout) {
        const prev = below.getNode(p);
        if (prev?.info.isDir) {
          const sum = (n: DiveNode): number => {
            let s = n.info.size;
            for (const c of n.children.values()) s += sum(c);
            return s;
          };
          size = sum(prev);
        }
      } else size = node.info.size;
      let d = data.get(p);
      if (!d) {
        d = { cumulative: 0, min: -1, count: 0, layers: [] };
        data.set(p, d);
      }
      d.cumulative += size;
      if (d.min < 0 || size < d.min) d.min = size;
      d.count++;
      d.layers.push(idx);
      if (d.count === 2) matches.push({ path: p, d });
    });
    if (idx === layers.length - 1) return; // nothing above needs the stacked tree
    if (idx === 0) {
      stacked = tree.copy();
      stacked.stack(tree);
    } else stacked!.stack(tree);
  });
  let minimum = 0;
  let discovered = 0;
  for (const d of data.values()) {
    minimum += d.min;
    discovered += d.cumulative;
  }
  const inefficiencies = matches
    .map(({ path, d }) => ({ path, cumulativeSize: d.cumulative, count: d.count, layers: d.layers }))
    .sort((a, b) => b.cumulativeSize - a.cumulativeSize || byteCompare(a.path, b.path));
  const wastedBytes = inefficiencies.reduce((s, i) => s + i.cumulativeSize, 0);
  const sizeBytes = layerSizes.reduce((a, b) => a + b, 0);
  const userSizeBytes = sizeBytes - (layerSizes[0] ?? 0);
  return {
    efficiency: discovered === 0 ? 1 : minimum / discovered,
    wastedBytes,
    sizeBytes,
    userSizeBytes,
    wastedUserPercent: wastedBytes / userSizeBytes,
    layerSizes,
    inefficiencies,
  };
}

export interface CiThresholds {
  /** Fail when efficiency < this (dive's rules.lowestEfficiency, default 0.9). */
  lowestEfficiency?: number;
  /** Fail when wasted bytes > this (rules.highestWastedBytes, default disabled). */
  highestWastedBytes?: number;
  /** Fail when wasted/user bytes > this fraction (rules.highestUserWastedPercent, default 0.1). */
  highestUserWastedPercent?: number;
}

export const DIVE_CI_DEFAULTS: Required<Pick<CiThresholds, 'lowestEfficiency' | 'highestUserWastedPercent'>> = {
  lowestEfficiency: 0.9,
  highestUserWastedPercent: 0.1,
};

export interface CiRuleResult {
  rule: 'lowestEfficiency' | 'highestWastedBytes' | 'highestUserWastedPercent';
  status: 'pass' | 'fail' | 'skip';
  message: string;
}

/** dive's CI rules, same comparisons (a NaN user-wasted percent passes, as in Go). */
export function evaluateCi(r: EfficiencyResult, t: CiThresholds): { pass: boolean; rules: CiRuleResult[] } {
  const rules: CiRuleResult[] = [];
  if (t.lowestEfficiency === undefined)
    rules.push({ rule: 'lowestEfficiency', status: 'skip', message: 'rule disabled' });
  else if (t.lowestEfficiency > r.efficiency)
    rules.push({
      rule: 'lowestEfficiency',
      status: 'fail',
      message: `image efficiency is too low (efficiency=${r.efficiency} < threshold=${t.lowestEfficiency})`,
    });
  else rules.push({ rule: 'lowestEfficiency', status: 'pass', message: '' });
  if (t.highestWastedBytes === undefined)
    rules.push({ rule: 'highestWastedBytes', status: 'skip', message: 'rule disabled' });
  else if (r.wastedBytes > t.highestWastedBytes)
    rules.push({
      rule: 'highestWastedBytes',
      status: 'fail',
      message: `too many bytes wasted (wasted-bytes=${r.wastedBytes} > threshold=${t.highestWastedBytes})`,
    });
  else rules.push({ rule: 'highestWastedBytes', status: 'pass', message: '' });
  if (t.highestUserWastedPercent === undefined)
    rules.push({ rule: 'highestUserWastedPercent', status: 'skip', message: 'rule disabled' });
  else if (t.highestUserWastedPercent < r.wastedUserPercent)
    rules.push({
      rule: 'highestUserWastedPercent',
      status: 'fail',
      message: `too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=${r.wastedUserPercent} > threshold=${t.highestUserWastedPercent})`,
    });
  else rules.push({ rule: 'highestUserWastedPercent', status: 'pass', message: '' });
  return { pass: rules.every((x) => x.status !== 'fail'), rules };
}
