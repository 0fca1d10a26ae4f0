/**
 * Streaming multi-pattern byte search (Aho-Corasick compiled into a DFA). Chunks are fed in order;
 * the automaton's state carries over, so a pattern split across two chunks is found. Memory is the
 * table (states × 256 × 2 bytes), whatever the input's size: callers keep patterns short.
 */

export interface ByteMatch {
  /** Index of the pattern in the list given to the constructor. */
  pattern: number;
  /** Offset just past the match's last byte, counted from the first byte fed since reset(). */
  end: number;
}

export class MultiSearch {
  /** Next state by (state << 8 | byte): 16-bit entries while the states fit, half the cache footprint. */
  private readonly delta: Uint16Array | Uint32Array;
  /** Per state: the patterns that end there (its own and those of its suffix states), or undefined. */
  private readonly outputs: (number[] | undefined)[];
  /** 1 where a state has outputs: the hot loop reads this flat array. */
  private readonly final: Uint8Array;
  private state = 0;
  private offset = 0;
  readonly states: number;

  constructor(readonly patterns: readonly Uint8Array[]) {
    // The trie first (sparse), then the failure links breadth-first, filling the dense table.
    const trie: Map<number, number>[] = [new Map()];
    const outs: (number[] | undefined)[] = [undefined];
    patterns.forEach((p, i) => {
      if (p.length === 0) throw new Error('MultiSearch: empty pattern');
      let s = 0;
      for (const b of p) {
        let next = trie[s]!.get(b);
        if (next === undefined) {
          next = trie.length;
          trie.push(new Map());
          outs.push(undefined);
          trie[s]!.set(b, next);
        }
        s = next;
      }
      (outs[s] ??= []).push(i);
    });
    this.states = trie.length;
    const delta = this.states <= 0xffff ? new Uint16Array(this.states * 256) : new Uint32Array(this.states * 256);
    const fail = new Uint32Array(this.states);
    const queue: number[] = [];
    for (let b = 0; b < 256; b++) {
      const t = trie[0]!.get(b);
      if (t !== undefined) {
        delta[b] = t;
        fail[t] = 0;
        queue.push(t);
      }
    }
    for (let qi = 0; qi < queue.length; qi++) {
      const s = queue[qi]!;
      const f = fail[s]!;
      const fo = outs[f];
      if (fo) outs[s] = [...(outs[s] ?? []), ...fo];
      for (let b = 0; b < 256; b++) {
        const t = trie[s]!.get(b);
        if (t !== undefined) {
          fail[t] = delta[f * 256 + b]!;
          delta[s * 256 + b] = t;
          queue.push(t);
        } else delta[s * 256 + b] = delta[f * 256 + b]!;
      }
    }
    this.delta = delta;
    this.outputs = outs;
    this.final = new Uint8Array(this.states);
    outs.forEach((o, i) => {
      if (o) this.final[i] = 1;
    });
  }

  /** Start over (a new, unrelated stream): nothing carries over from what was fed before. */
  reset(): void {
    this.state = 0;
    this.offset = 0;
  }

  /** Feed the next chunk; calls onMatch for each pattern occurrence that ends in it. */
  feed(chunk: Uint8Array, onMatch: (m: ByteMatch) => void): void {
    const delta = this.delta;
    const final = this.final;
    let s = this.state;
    for (let i = 0; i < chunk.length; i++) {
      s = delta[(s << 8) | chunk[i]!]!;
      if (final[s] === 1) for (const p of this.outputs[s]!) onMatch({ pattern: p, end: this.offset + i + 1 });
    }
    this.state = s;
    this.offset += chunk.length;
  }

  /** Every match in one buffer, from a fresh state (the automaton's streaming state is kept). */
  findAll(buf: Uint8Array): ByteMatch[] {
    const saved = [this.state, this.offset] as const;
    this.reset();
    const found: ByteMatch[] = [];
    this.feed(buf, (m) => found.push(m));
    [this.state, this.offset] = saved;
    return found;
  }
}
