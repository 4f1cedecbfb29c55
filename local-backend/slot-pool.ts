/**
 * Admission for a fixed set of slots (context sequences, or the one embedding context):
 * up to `slots.length` holders at once, then a FIFO queue of at most `maxQueue` waiters,
 * then refusal (QueueFullError → 429 + Retry-After). Shared by all requests of one engine.
 * A waiter whose signal aborts leaves the queue at once; a released slot goes straight to
 * the next waiter, so nothing can overtake the queue.
 */

export class QueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('The local model queue is full.');
    this.name = 'QueueFullError';
  }
}

export interface Lease<T> {
  readonly item: T;
  /** Idempotent. */
  release(): void;
}

export interface SlotPool<T> {
  acquire(signal: AbortSignal): Promise<Lease<T>>;
  readonly busy: number;
  readonly queued: number;
}

interface Waiter<T> {
  resolve(lease: Lease<T>): void;
  reject(err: unknown): void;
}

export function createSlotPool<T>(slots: readonly T[], maxQueue: number, onChange: () => void = () => {}): SlotPool<T> {
  const free = [...slots];
  const waiters: Waiter<T>[] = [];

  const lease = (item: T): Lease<T> => {
    let released = false;
    return {
      item,
      release() {
        if (released) return;
        released = true;
        const next = waiters.shift();
        if (next) next.resolve(lease(item));
        else free.push(item);
        onChange();
      },
    };
  };

  return {
    get busy() { return slots.length - free.length; },
    get queued() { return waiters.length; },
    acquire(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      const item = free.pop();
      if (item !== undefined) {
        onChange();
        return Promise.resolve(lease(item));
      }
      if (waiters.length >= maxQueue) return Promise.reject(new QueueFullError(1));
      return new Promise<Lease<T>>((resolve, reject) => {
        const onAbort = () => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          onChange();
          reject(signal.reason);
        };
        const waiter: Waiter<T> = {
          resolve: (l) => { signal.removeEventListener('abort', onAbort); resolve(l); },
          reject,
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
        onChange();
      });
    },
  };
}
