import type { ViewChangeMsg } from './types.js';

/**
 * VIEW-CHANGE messages received (own included), bounded: per replica only the few highest views,
 * so a replica announcing ever higher views cannot grow memory.
 */
export class ViewChangeStore {
  private readonly byReplica: Map<number, ViewChangeMsg>[];

  constructor(n: number, private readonly perReplica = 3) {
    this.byReplica = Array.from({ length: n }, () => new Map<number, ViewChangeMsg>());
  }

  get(replica: number, view: number): ViewChangeMsg | undefined {
    return this.byReplica[replica]?.get(view);
  }

  add(vc: ViewChangeMsg): void {
    const byView = this.byReplica[vc.sender];
    if (!byView) return;
    byView.set(vc.newView, vc);
    if (byView.size > this.perReplica) byView.delete(Math.min(...byView.keys()));
  }

  /** View changes for exactly `view`, in replica order. */
  forView(view: number): ViewChangeMsg[] {
    const out: ViewChangeMsg[] = [];
    for (const byView of this.byReplica) {
      const vc = byView.get(view);
      if (vc) out.push(vc);
    }
    return out;
  }

  /**
   * How many replicas other than `self` ask for a view above `view`, and the smallest such view
   * (the Castro–Liskov rule: s+1 of them include a correct one, so it is safe to join).
   */
  aheadOf(view: number, self: number): { replicas: number; smallestView: number } {
    let replicas = 0;
    let smallestView = Infinity;
    this.byReplica.forEach((byView, replica) => {
      if (replica === self) return;
      let least = Infinity;
      for (const v of byView.keys()) if (v > view && v < least) least = v;
      if (least !== Infinity) {
        replicas++;
        smallestView = Math.min(smallestView, least);
      }
    });
    return { replicas, smallestView };
  }

  pruneThrough(view: number): void {
    for (const byView of this.byReplica) for (const v of [...byView.keys()]) if (v <= view) byView.delete(v);
  }

  get size(): number {
    let total = 0;
    for (const byView of this.byReplica) total += byView.size;
    return total;
  }
}
