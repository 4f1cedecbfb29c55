/**
 * Deadlines that all have the same length (one backend's timeout_ms), checked by one
 * coarse timer instead of a Node timer per request: a Timeout object per request, alive
 * for the request's whole life, cost ~1.5 µs of the request path (GC and timer-list
 * work, measured in the bench's saturation harness). Same length means deadlines expire
 * in the order they were added, so each tick looks only at the front of the queue.
 * A deadline fires between `ms` and `ms + granularity` after it was added.
 *
 * An item is released (its slot emptied) the moment it settles: holding finished
 * requests until the next tick kept them alive across young-generation collections and
 * cost more than the timers did.
 */
export interface Expirable {
  /** The deadline passed while unsettled. */
  expire(): void;
}

export class DeadlineQueue {
  private items: Array<Expirable | undefined> = [];
  private at: number[] = [];
  /** Slot number of items[0]. */
  private base = 0;
  private head = 0;
  private live = 0;
  private timer: NodeJS.Timeout | undefined;
  /** How often the front is checked: a tenth of the deadline, at most 100 ms. */
  readonly granularityMs: number;

  constructor(
    readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {
    this.granularityMs = Math.max(1, Math.min(100, Math.floor(ms / 10)));
  }

  /** Adds an item; the returned slot releases it (release(slot)) once it has settled. */
  add(item: Expirable): number {
    this.items.push(item);
    this.at.push(this.now() + this.ms);
    this.live++;
    if (!this.timer) {
      this.timer = setInterval(this.tick, this.granularityMs);
      this.timer.unref();
    }
    return this.base + this.items.length - 1;
  }

  /** The item settled: its deadline no longer matters. Idempotent. */
  release(slot: number): void {
    const i = slot - this.base;
    if (i < this.head || i >= this.items.length || this.items[i] === undefined) return;
    this.items[i] = undefined;
    this.live--;
  }

  /** Items still waiting for their deadline. */
  get size(): number {
    return this.live;
  }

  private readonly tick = (): void => {
    const t = this.now();
    while (this.head < this.items.length) {
      const item = this.items[this.head];
      if (item !== undefined) {
        if (this.at[this.head]! > t) break;
        this.items[this.head] = undefined;
        this.live--;
        item.expire();
      }
      this.head++;
    }
    if (this.head === this.items.length) {
      this.base += this.items.length;
      this.items = [];
      this.at = [];
      this.head = 0;
      clearInterval(this.timer);
      this.timer = undefined;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.base += this.head;
      this.items = this.items.slice(this.head);
      this.at = this.at.slice(this.head);
      this.head = 0;
    }
  };
}
