/**
 * Cancellation of one request's upstream work (the client went away).
 *
 * A request-scoped AbortController costs ~5 µs per request (event-target machinery),
 * and nearly no request is ever cancelled, so the pipeline carries this instead: a flag
 * plus callbacks, with an AbortSignal made only when someone asks for one (the local
 * backend, admission waits, retry sleeps).
 */
export interface Cancellation {
  readonly aborted: boolean;
  /** Called once when the request is cancelled (at once if it already is). */
  onAbort(cb: () => void): void;
  /** An AbortSignal for APIs that want one; made on first use. */
  readonly signal: AbortSignal;
}

export class RequestCancellation implements Cancellation {
  aborted = false;
  private callbacks: Array<() => void> | undefined;
  private controller: AbortController | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort();
    const cbs = this.callbacks;
    this.callbacks = undefined;
    if (cbs) for (const cb of cbs) cb();
  }

  onAbort(cb: () => void): void {
    if (this.aborted) cb();
    else (this.callbacks ??= []).push(cb);
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }
}

/** A Cancellation over an existing AbortSignal (timeouts, probes). */
export function cancellationFromSignal(signal: AbortSignal): Cancellation {
  return {
    get aborted() {
      return signal.aborted;
    },
    onAbort(cb) {
      if (signal.aborted) cb();
      else signal.addEventListener('abort', cb, { once: true });
    },
    signal,
  };
}

/** The error a cancelled or timed-out upstream operation rejects with (classify-error reads its name). */
export function abortError(name: 'AbortError' | 'TimeoutError', message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}
