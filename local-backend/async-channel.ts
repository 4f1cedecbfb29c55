/**
 * Bridge between node-llama-cpp's callbacks (one call per generated piece of text) and the
 * transport. One per streamed request. Pushed text is coalesced: deliveries are at least
 * `minIntervalMs` apart (the first one and the end are never delayed), and each delivery
 * is everything pushed since the previous one, as one string, so a fast model costs one
 * socket write per few tokens and one allocation per write instead of per token. With a
 * shared FlushTick (flush-tick.ts), text that must wait goes out at the tick all streams
 * share, so the writes of concurrent streams leave together.
 *
 * Two ways to read it:
 * - attach(sink): push-based, no Promise per delivery (the standalone server; per-token
 *   work on the event loop delays the next decode, see docs/local-backend.md);
 * - AsyncIterable<Uint8Array>: pull-based (the gateway's in-process client). A reader that
 *   falls behind gets everything buffered so far as one chunk.
 * A reader that stops early (`cancel()`, or the iterator's `return()`, e.g. the client went
 * away) triggers `onCancel`, which aborts the generation and frees its sequence.
 */
import type { FlushTick } from './flush-tick.js';

/** The push-based reader: the standalone server's response. */
export interface TextSink {
  /** One delivery. Returns false when full: the channel then holds everything until resume(). */
  write(text: string): boolean;
  /** The end: after a clean end or, with `error`, after the stream broke (its error event already written). */
  end(error?: unknown): void;
}

export class AsyncChannel implements AsyncIterable<Uint8Array> {
  private pending = '';
  /** No more pushes: ended, failed or cancelled. */
  private finished = false;
  private failure: { error: unknown } | undefined;
  private pushedAny = false;
  private settleStarted!: { resolve: () => void; reject: (e: unknown) => void };
  /**
   * Settles at the first push (resolve), a clean end (resolve), or a failure before any
   * push (reject): the transport decides the HTTP status only then, so an error that
   * happens before the first byte still gets its own status instead of a broken 200.
   */
  readonly started: Promise<void>;

  private lastDelivery = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  /** Registered with the shared tick. */
  private ticked = false;
  /** Pull mode: a delivery is due and waits for the reader's next(). */
  private ready = false;
  private wake: (() => void) | undefined;
  /** Push mode. */
  private sink: TextSink | undefined;
  private sinkFull = false;
  private sinkEnded = false;

  /**
   * `minIntervalMs`: deliveries to the reader are at least this far apart (the first one
   * and the end are never delayed). A model slower than the interval sees no delay at all.
   * `tick` (optional, shared by all streams of a handler): text that must wait goes out at
   * the shared tick instead of a timer of its own, so a delivery may follow the previous
   * one sooner than `minIntervalMs`, and a push waits at most one tick; a slow stream is
   * written at once only while no other stream waits for the tick.
   */
  constructor(private readonly onCancel: () => void, private readonly minIntervalMs = 0, private readonly tick?: FlushTick) {
    this.started = new Promise<void>((resolve, reject) => { this.settleStarted = { resolve, reject }; });
    this.started.catch(() => {});
  }

  push(text: string): void {
    if (this.finished) return;
    this.pending += text;
    if (!this.pushedAny) {
      this.pushedAny = true;
      this.settleStarted.resolve();
    }
    if (this.waiting() || this.ready || this.sinkFull) return;
    const wait = this.lastDelivery + this.minIntervalMs - performance.now();
    const tick = this.tick;
    if (tick) {
      // Immediate only for the first delivery, or a slow stream while no other stream waits
      // (else it joins the pending tick: writes of all streams leave together).
      if (this.lastDelivery === Number.NEGATIVE_INFINITY || (wait <= 0 && !tick.armed)) this.deliver();
      else { this.ticked = true; tick.schedule(this.onTimer); }
    } else if (wait <= 0) this.deliver();
    else this.timer = setTimeout(this.onTimer, wait);
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.settleStarted.resolve();
    this.finish();
  }

  fail(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = { error };
    if (!this.pushedAny) this.settleStarted.reject(error);
    this.finish();
  }

  /** Push mode: everything pending is written now, later deliveries as they come. */
  attach(sink: TextSink): void {
    this.sink = sink;
    this.ready = false;
    if (this.finished) this.finish();
    else if (this.pending !== '' && !this.waiting()) this.deliver();
  }

  /** Push mode: the sink drained after write() returned false. */
  resume(): void {
    if (!this.sinkFull) return;
    this.sinkFull = false;
    if (this.finished) this.finish();
    else if (this.pending !== '' && !this.waiting()) this.deliver();
  }

  /** The reader went away: stop the generation, drop what is buffered. */
  cancel(): void {
    this.stopWaiting();
    this.pending = '';
    this.sinkEnded = true;
    if (this.finished) return;
    this.finished = true;
    this.onCancel();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.ticked = false;
    this.deliver();
  };

  private waiting(): boolean {
    return this.timer !== undefined || this.ticked;
  }

  private stopWaiting(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.ticked) { this.ticked = false; this.tick!.unschedule(this.onTimer); }
  }

  private deliver(): void {
    const sink = this.sink;
    if (!sink) {
      this.ready = true;
      this.wakeReader();
      return;
    }
    if (this.sinkFull || this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    this.lastDelivery = performance.now();
    if (!sink.write(text)) this.sinkFull = true;
  }

  /** After end/fail: the rest goes out at once (the sink's backpressure is advisory: it buffers). */
  private finish(): void {
    this.stopWaiting();
    const sink = this.sink;
    if (!sink) {
      this.wakeReader();
      return;
    }
    if (this.sinkEnded) return;
    this.sinkEnded = true;
    const text = this.pending;
    this.pending = '';
    if (text !== '') sink.write(text);
    sink.end(this.failure?.error);
  }

  private wakeReader(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        while (!this.finished && !this.ready) {
          await new Promise<void>((resolve) => { this.wake = resolve; });
        }
        this.ready = false;
        if (this.pending !== '') {
          this.lastDelivery = performance.now();
          const value = Buffer.from(this.pending, 'utf8');
          this.pending = '';
          return { done: false, value };
        }
        if (this.failure) throw this.failure.error;
        return { done: true, value: undefined };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        this.cancel();
        return { done: true, value: undefined };
      },
    };
  }
}
