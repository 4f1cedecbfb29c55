/**
 * Retry policy for upstream attempts (routes[].retries): which failures are worth a
 * retry, how long to wait, and a small loop the dispatcher can run per candidate.
 * Pure functions apart from `sleep`, which is abort-aware so a client that leaves
 * stops the wait at once.
 *
 * Retryable: HTTP 429 and 5xx except 501 (Not Implemented is permanent), connect
 * errors, resets and timeouts. Never retryable: 4xx, client aborts, and anything after
 * a stream's first byte reached the client (the caller says so via `shouldRetry`).
 * Backoff: "full jitter" (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/),
 * random(0, min(max_backoff_ms, backoff_ms × 2^retry)). A Retry-After from the
 * upstream replaces the jittered delay; one longer than max_backoff_ms means "not
 * this target now", so the loop gives up and the dispatcher moves to the next candidate.
 */
import type { RouteConfig } from '../config/schema.js';
import { GatewayError, UpstreamHttpError } from '../errors.js';

export type RetryPolicy = RouteConfig['retries'];

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
]);

export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501);
}

/** Classifies anything an attempt threw. Aborts (the client left) are never retried. */
export function isRetryableError(err: unknown): boolean {
  if (err instanceof UpstreamHttpError) return isRetryableStatus(err.status);
  if (err instanceof GatewayError) return err.code === 'upstream_unreachable' || err.code === 'upstream_timeout';
  const e = err as { name?: string; code?: string; cause?: { code?: string; name?: string } } | null;
  if (!e) return false;
  if (e.name === 'AbortError') return false;
  if (e.name === 'TimeoutError' || e.cause?.name === 'TimeoutError') return true;
  const code = e.code ?? e.cause?.code;
  return code !== undefined && RETRYABLE_CODES.has(code);
}

type HeaderBag = Record<string, string | string[] | undefined>;

/** RFC 9110's IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT". */
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Milliseconds the upstream asked us to wait: `retry-after-ms` (OpenAI, Anthropic) or
 * `retry-after` as delta-seconds or an HTTP date (RFC 9110 §10.2.3). Undefined when
 * absent or unparseable; never negative.
 */
export function parseRetryAfter(headers: HeaderBag, now: number = Date.now()): number | undefined {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const v = first(headers['retry-after'])?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  // Only an IMF-fixdate: V8's Date.parse alone reads a date into nearly any text.
  const date = HTTP_DATE.test(v) ? Date.parse(v) : NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A `retry-after` worth relaying to a client as it came (delay-seconds or an IMF-fixdate), else undefined. */
export function relayableRetryAfter(headers: HeaderBag): string | undefined {
  const v = first(headers['retry-after'])?.trim();
  return v && parseRetryAfter({ 'retry-after': v }) !== undefined ? v : undefined;
}

/** Whole seconds, at least 1, for a Retry-After header the gateway sets. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/** Full-jitter backoff before retry number `retry` (0 = the first retry). */
export function backoffMs(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const cap = Math.min(policy.max_backoff_ms, policy.backoff_ms * 2 ** retry);
  return Math.floor(random() * cap);
}

/** The wait before the next try, or undefined when a Retry-After exceeds the cap (move on instead). */
export function retryDelayMs(retry: number, policy: RetryPolicy, retryAfterMs?: number, random?: () => number): number | undefined {
  if (retryAfterMs !== undefined) return retryAfterMs > policy.max_backoff_ms ? undefined : retryAfterMs;
  return backoffMs(retry, policy, random);
}

/** Resolves after ms, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RunWithRetriesOptions {
  policy: RetryPolicy;
  signal?: AbortSignal;
  /** Default isRetryableError. Return false once a stream's first byte went out. */
  shouldRetry?: (err: unknown, attempt: number) => boolean;
  /** The upstream's requested wait for this failure, if any (see parseRetryAfter). */
  retryAfterMs?: (err: unknown) => number | undefined;
  /** Called before each wait (count switchyard_retries_total here). */
  onRetry?: (err: unknown, retry: number, delayMs: number) => void;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Runs `fn` up to policy.attempts + 1 times. `attempt` is 0 for the first try. The
 * last error is rethrown when attempts run out, the failure is not retryable, a
 * Retry-After is too long, or the signal aborts during a wait.
 */
export async function runWithRetries<T>(fn: (attempt: number) => Promise<T>, opts: RunWithRetriesOptions): Promise<T> {
  const shouldRetry = opts.shouldRetry ?? ((err: unknown) => isRetryableError(err));
  const wait = opts.sleep ?? sleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= opts.policy.attempts || opts.signal?.aborted || !shouldRetry(err, attempt)) throw err;
      const delay = retryDelayMs(attempt, opts.policy, opts.retryAfterMs?.(err), opts.random);
      if (delay === undefined) throw err;
      opts.onRetry?.(err, attempt, delay);
      await wait(delay, opts.signal);
    }
  }
}
