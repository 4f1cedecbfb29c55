/**
 * What both server implementations track per response: whether the client went away,
 * who to tell when it does, and the one writer waiting for the socket to drain (released
 * on drain and on abort, so a relay loop never hangs on a dead client).
 */
export abstract class ResponseLifecycle {
  aborted = false;
  private abortHandlers: Array<() => void> = [];
  private drainWaiter: (() => void) | undefined;

  onAborted(cb: () => void): void {
    if (this.aborted) cb();
    else this.abortHandlers.push(cb);
  }

  /** The server saw the client disconnect before the response ended. */
  protected markAborted(): void {
    this.aborted = true;
    this.releaseDrain();
    for (const cb of this.abortHandlers) cb();
  }

  /** A promise the writer awaits until releaseDrain() (socket drained, or aborted). */
  protected waitDrain(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.drainWaiter = resolve;
    });
  }

  protected releaseDrain(): void {
    const w = this.drainWaiter;
    this.drainWaiter = undefined;
    w?.();
  }
}
