/**
 * Admission control per backend (backends.<name>.admission): at most max_concurrent
 * upstream requests, then a bounded FIFO queue whose waiters give up after
 * queue_timeout_ms. One controller per backend, shared by all requests and kept across
 * reloads (reconfigured in place). The dispatcher awaits `acquire()` before an attempt and calls the ticket's
 * `release()` when the attempt's response has ended (idempotent; an onEnd hook is the
 * safe place).
 *
 *   queue full      → GatewayError queue_full (429) with Retry-After
 *   waited too long → GatewayError queue_timeout (503) with Retry-After
 *   client left     → the waiter is removed and acquire() rejects with the signal's reason
 *
 * Gauges: switchyard_queue_depth{backend} (waiters) and switchyard_token_queue_depth
 * {backend} (estimated prompt + max tokens of waiters AND in-flight requests: the
 * autoscaling signal, which must not drop to zero while a backend is busy).
 * Without max_concurrent nothing waits, but in-flight counts and tokens are still kept
 * (least-in-flight routing and the token gauge need them).
 */
import type { z } from 'zod';
import type { AdmissionSchema, Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { abortError, type Cancellation } from './cancellation.js';

export type AdmissionConfig = z.infer<typeof AdmissionSchema>;

export interface AdmissionTicket {
  /** Frees the slot and its tokens. Safe to call more than once. */
  release(): void;
}

export interface AcquireOptions {
  /** Estimated prompt tokens + max tokens of this request. */
  tokens: number;
  /** The client's cancellation: a waiter whose client left is dropped from the queue. */
  cancel?: Cancellation;
}

export interface AdmissionController {
  readonly inflight: number;
  readonly queued: number;
  /** Tokens of queued and in-flight requests. */
  readonly tokens: number;
  acquire(opts: AcquireOptions): Promise<AdmissionTicket>;
  /**
   * New limits from a reload, applied in place: the requests in flight and waiting stay
   * counted (a fresh controller let a backend run max_concurrent on top of them).
   * Waiters keep the timeout they started with.
   */
  reconfigure(cfg: AdmissionConfig | undefined): void;
}

export interface AdmissionOptions {
  now?: () => number;
}

interface Waiter {
  tokens: number;
  resolve: (t: AdmissionTicket) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

type Gauges = Pick<Metrics, 'queueDepth' | 'tokenQueueDepth'>;

export function createAdmission(backend: string, cfg: AdmissionConfig | undefined, metrics: Gauges, opts: AdmissionOptions = {}): AdmissionController {
  const now = opts.now ?? Date.now;
  let max = cfg?.max_concurrent ?? Infinity;
  let maxQueue = cfg?.max_queue ?? 0;
  let timeoutMs = cfg?.queue_timeout_ms ?? 30000;
  const queueGauge = metrics.queueDepth.labels(backend);
  const tokenGauge = metrics.tokenQueueDepth.labels(backend);
  // A Set keeps insertion order (FIFO) and removes a departed waiter in O(1).
  const queue = new Set<Waiter>();
  let inflight = 0;
  let tokens = 0;
  /** Moving average of how long a slot is held, for Retry-After. */
  let holdMs = 0;

  queueGauge.set(0);
  tokenGauge.set(0);
  const publish = () => {
    queueGauge.set(queue.size);
    tokenGauge.set(tokens);
  };

  /** Seconds until a slot is likely free for one more waiter: hold time × queue position / slots. */
  function retryAfter(): Record<string, string> {
    const slots = Number.isFinite(max) ? max : 1;
    const s = Math.ceil((holdMs * (queue.size + 1)) / slots / 1000);
    return { 'retry-after': String(Math.min(60, Math.max(1, s))) };
  }

  function admit(n: number): AdmissionTicket {
    inflight++;
    const start = now();
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        inflight--;
        tokens -= n;
        const held = now() - start;
        holdMs = holdMs === 0 ? held : holdMs * 0.8 + held * 0.2;
        drain();
        publish();
      },
    };
  }

  function remove(w: Waiter): void {
    queue.delete(w);
    clearTimeout(w.timer);
    tokens -= w.tokens;
  }

  function drain(): void {
    while (inflight < max && queue.size > 0) {
      const w = queue.values().next().value as Waiter;
      remove(w);
      tokens += w.tokens; // stays counted: it moves from queued to in-flight
      w.resolve(admit(w.tokens));
    }
  }

  return {
    get inflight() {
      return inflight;
    },
    get queued() {
      return queue.size;
    },
    get tokens() {
      return tokens;
    },
    acquire({ tokens: n, cancel }) {
      if (cancel?.aborted) return Promise.reject(abortError('AbortError', 'The client went away while queued.'));
      if (inflight < max && queue.size === 0) {
        tokens += n;
        const t = admit(n);
        publish();
        return Promise.resolve(t);
      }
      if (queue.size >= maxQueue) {
        return Promise.reject(new GatewayError('queue_full', { headers: retryAfter(), message: `The queue of backend '${backend}' is full.` }));
      }
      return new Promise<AdmissionTicket>((resolve, reject) => {
        const w: Waiter = {
          tokens: n,
          resolve,
          reject,
          timer: setTimeout(() => {
            remove(w);
            publish();
            reject(new GatewayError('queue_timeout', { headers: retryAfter(), message: `Timed out after ${timeoutMs} ms waiting for backend '${backend}'.` }));
          }, timeoutMs),
        };
        cancel?.onAbort(() => {
          if (!queue.has(w)) return; // admitted or timed out already
          remove(w);
          publish();
          reject(abortError('AbortError', 'The client went away while queued.'));
        });
        queue.add(w);
        tokens += n;
        publish();
      });
    },
    reconfigure(next) {
      max = next?.max_concurrent ?? Infinity;
      maxQueue = next?.max_queue ?? 0;
      timeoutMs = next?.queue_timeout_ms ?? 30000;
      // A higher limit admits waiters now; a lower one lets in-flight requests finish.
      drain();
      publish();
    },
  };
}

/** One controller per configured backend. */
export function createAdmissions(config: Pick<Config, 'backends'>, metrics: Gauges, opts: AdmissionOptions = {}): Map<string, AdmissionController> {
  const out = new Map<string, AdmissionController>();
  for (const [name, b] of Object.entries(config.backends)) out.set(name, createAdmission(name, b.admission, metrics, opts));
  return out;
}
