/**
 * One flush tick shared by every stream of a handler (so, of a standalone server): streams
 * that have text waiting register here, and every `intervalMs` all of them are written in
 * one synchronous pass. At 4 concurrent fast streams, per-stream timers meant four separate
 * socket writes per 16 ms at four different phases, each waking the client process on its
 * own; one pass writes them back to back and the client wakes once for all sockets
 * (loadtest/bench/local-backend.ts). The timer is armed only while some stream waits, so
 * an idle server holds no timer. Created by createOpenAIHandler; used by AsyncChannel.
 */
export interface FlushTick {
  /** Deliver `flush` at the next tick. Idempotent per callback until the tick runs. */
  schedule(flush: () => void): void;
  /** Drop a scheduled callback (the stream ended or was cancelled). */
  unschedule(flush: () => void): void;
  /** A tick is armed: some stream is already waiting for it. */
  readonly armed: boolean;
}

export function createFlushTick(intervalMs: number): FlushTick {
  let due = new Set<() => void>();
  let timer: NodeJS.Timeout | undefined;
  const run = (): void => {
    timer = undefined;
    const now = due;
    due = new Set();
    for (const flush of now) flush();
  };
  return {
    schedule(flush) {
      due.add(flush);
      if (timer === undefined) timer = setTimeout(run, intervalMs);
    },
    unschedule(flush) {
      due.delete(flush);
      if (due.size === 0 && timer !== undefined) { clearTimeout(timer); timer = undefined; }
    },
    get armed() { return timer !== undefined; },
  };
}
