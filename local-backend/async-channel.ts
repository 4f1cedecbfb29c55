/**
 * Push → pull bridge between node-llama-cpp's callbacks (one call per generated piece of
 * text) and the AsyncIterable<Uint8Array> body both transports consume. One per streamed
 * request. A reader that falls behind gets everything buffered so far as one chunk (one
 * socket write instead of one per token). A reader that stops early (`return()`, e.g. the
 * client went away) triggers `onCancel`, which aborts the generation and frees its sequence.
 */

export class AsyncChannel implements AsyncIterable<Uint8Array> {
  private buffered: Uint8Array[] = [];
  private wake: (() => void) | undefined;
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

  private lastDelivery = 0;
  private timer: NodeJS.Timeout | undefined;

  /**
   * `minIntervalMs`: deliveries to the reader are at least this far apart (the first one
   * and the end are never delayed). Each delivery costs the transport a socket write, so
   * a fast model (hundreds of tokens/s per stream) gets a few tokens per write instead of
   * one, which keeps the event loop free to schedule the next decode; a model slower than
   * the interval sees no delay at all.
   */
  constructor(private readonly onCancel: () => void, private readonly minIntervalMs = 0) {
    this.started = new Promise<void>((resolve, reject) => { this.settleStarted = { resolve, reject }; });
    this.started.catch(() => {});
  }

  push(chunk: Uint8Array): void {
    if (this.finished) return;
    this.buffered.push(chunk);
    if (!this.pushedAny) {
      this.pushedAny = true;
      this.settleStarted.resolve();
    }
    if (this.timer) return;
    const wait = this.lastDelivery + this.minIntervalMs - performance.now();
    if (wait <= 0) this.signal();
    else this.timer = setTimeout(() => { this.timer = undefined; this.signal(); }, wait);
  }

  end(): void {
    this.finished = true;
    this.settleStarted.resolve();
    this.signal();
  }

  fail(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = { error };
    if (!this.pushedAny) this.settleStarted.reject(error);
    this.signal();
  }

  private signal(): void {
    if (this.timer && this.finished) { clearTimeout(this.timer); this.timer = undefined; }
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private take(): Uint8Array {
    this.lastDelivery = performance.now();
    const parts = this.buffered;
    this.buffered = [];
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        while (!this.finished && (this.buffered.length === 0 || this.timer !== undefined)) {
          await new Promise<void>((resolve) => { this.wake = resolve; });
        }
        if (this.buffered.length > 0) return { done: false, value: this.take() };
        if (this.failure) throw this.failure.error;
        return { done: true, value: undefined };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        if (!this.finished) {
          this.finished = true;
          this.onCancel();
        }
        this.buffered = [];
        return { done: true, value: undefined };
      },
    };
  }
}
