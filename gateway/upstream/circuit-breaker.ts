/**
 * One circuit breaker per backend (backends.<name>.health), shared by all requests and
 * rebuilt on config reload. The router asks `available()` to skip open backends; the
 * dispatcher calls `tryAcquire()` before each attempt and reports the attempt's verdict
 * with `onSuccess()` / `onFailure()` — or `release()` when there is none (the client
 * left). Which answers count as failures is the dispatcher's call: connect errors,
 * timeouts and 5xx do; 4xx (the client's fault) and 429 (the backend protecting itself)
 * do not.
 *
 *   closed     → open       failure_threshold consecutive failures, or error_rate over
 *                           the last window_ms once min_requests were seen
 *   open       → half_open  cooldown_ms later, the next tryAcquire() takes the single probe
 *   half_open  → closed     the probe succeeds (window and counters start afresh)
 *   half_open  → open       the probe fails (a new cooldown starts)
 *
 * A probe that never reports (a leaked attempt) is given up after another cooldown_ms,
 * so a backend cannot stay half-open forever.
 */
import type { z } from 'zod';
import type { Config, HealthSchema } from '../config/schema.js';
import type { Metrics } from '../metrics.js';

export type HealthConfig = z.infer<typeof HealthSchema>;
export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Milliseconds; injectable for tests. */
  now?: () => number;
  /** Called on every state change (sets switchyard_backend_up). */
  onStateChange?: (state: CircuitState) => void;
}

export interface CircuitBreaker {
  readonly state: CircuitState;
  /** Would a request be let through now? Does not claim the half-open probe. */
  available(): boolean;
  /** Milliseconds until a request may be let through again (0 when it may now): the Retry-After of a refusal. */
  retryInMs(): number;
  /**
   * Claims permission for one attempt: a permit (NORMAL_PERMIT while closed, a probe
   * number for the half-open probe), or false: skip this backend. Pass the permit back
   * with the attempt's verdict: only the probe's verdict may close or re-open a
   * half-open circuit — attempts let through before it opened must not (their successes
   * or aborts would let more probes through).
   */
  tryAcquire(): Permit | false;
  /** Verdicts without a permit (active health checks) count as probes. */
  onSuccess(permit?: Permit): void;
  onFailure(permit?: Permit): void;
  /** The attempt ended without a verdict: frees the probe if this permit held it. */
  release(permit?: Permit): void;
}

/** A permit: NORMAL_PERMIT, or the number of the half-open probe it is. Always truthy. */
export type Permit = number;
export const NORMAL_PERMIT = -1;

const BUCKETS = 10;

export function createCircuitBreaker(health: HealthConfig, opts: CircuitBreakerOptions = {}): CircuitBreaker {
  const now = opts.now ?? Date.now;
  const bucketMs = Math.max(1, Math.ceil(health.window_ms / BUCKETS));
  // Ring of per-bucket counts: index = floor(t / bucketMs) % BUCKETS, stamped with the bucket number.
  const stamp = new Array<number>(BUCKETS).fill(-1);
  const total = new Array<number>(BUCKETS).fill(0);
  const failed = new Array<number>(BUCKETS).fill(0);

  let state: CircuitState = 'closed';
  let consecutive = 0;
  let openedAt = 0;
  let probeAt: number | undefined;
  /** The number of the current half-open probe (permits carry it). */
  let probeId = 0;

  function setState(s: CircuitState): void {
    if (s === state) return;
    state = s;
    opts.onStateChange?.(s);
  }

  function record(ok: boolean): { total: number; failed: number } {
    const t = now();
    const b = Math.floor(t / bucketMs);
    const i = b % BUCKETS;
    if (stamp[i] !== b) {
      stamp[i] = b;
      total[i] = 0;
      failed[i] = 0;
    }
    total[i]++;
    if (!ok) failed[i]++;
    let sumT = 0;
    let sumF = 0;
    for (let j = 0; j < BUCKETS; j++) {
      if (stamp[j] > b - BUCKETS) {
        sumT += total[j];
        sumF += failed[j];
      }
    }
    return { total: sumT, failed: sumF };
  }

  function reset(): void {
    consecutive = 0;
    probeAt = undefined;
    stamp.fill(-1);
  }

  function open(): void {
    openedAt = now();
    probeAt = undefined;
    setState('open');
  }

  const cooled = (): boolean => now() - openedAt >= health.cooldown_ms;
  const probeFree = (): boolean => probeAt === undefined || now() - probeAt >= health.cooldown_ms;

  return {
    get state() {
      return state;
    },
    available() {
      if (state === 'closed') return true;
      if (state === 'open') return cooled();
      return probeFree();
    },
    retryInMs() {
      if (state === 'closed') return 0;
      const since = state === 'open' ? openedAt : (probeAt ?? now());
      return Math.max(0, since + health.cooldown_ms - now());
    },
    tryAcquire() {
      if (state === 'closed') return NORMAL_PERMIT;
      if (state === 'open' && !cooled()) return false;
      if (state === 'half_open' && !probeFree()) return false;
      probeAt = now();
      setState('half_open');
      return ++probeId;
    },
    onSuccess(permit) {
      if (state === 'half_open') {
        if (permit !== undefined && permit !== probeId) return; // not the probe's verdict
        reset();
        setState('closed');
        return;
      }
      if (state === 'open') return;
      consecutive = 0;
      record(true);
    },
    onFailure(permit) {
      if (state === 'half_open') {
        if (permit !== undefined && permit !== probeId) return;
        return open();
      }
      if (state === 'open') return;
      consecutive++;
      const w = record(false);
      const rateTripped = health.error_rate !== undefined && w.total >= health.min_requests && w.failed / w.total >= health.error_rate;
      if (consecutive >= health.failure_threshold || rateTripped) open();
    },
    release(permit) {
      if (state === 'half_open' && (permit === undefined || permit === probeId)) probeAt = undefined;
    },
  };
}

/**
 * The dispatcher's verdict helper: does this attempt outcome count against the
 * backend's health? Connect errors, timeouts and 5xx do; 4xx and 429 do not.
 * `status` is the upstream HTTP status, or undefined when no response came.
 */
export function isBackendFailure(status: number | undefined): boolean {
  return status === undefined || status >= 500;
}

/** One breaker per configured backend; keeps switchyard_backend_up{backend} in step (1 closed/half-open, 0 open). */
export function createCircuitBreakers(config: Pick<Config, 'backends'>, metrics: Pick<Metrics, 'backendUp'>, now?: () => number): Map<string, CircuitBreaker> {
  const out = new Map<string, CircuitBreaker>();
  for (const [name, backend] of Object.entries(config.backends)) {
    const gauge = metrics.backendUp.labels(name);
    gauge.set(1);
    out.set(name, createCircuitBreaker(backend.health, { now, onStateChange: (s) => gauge.set(s === 'open' ? 0 : 1) }));
  }
  return out;
}

export interface ActiveHealthCheck {
  stop(): void;
}

/**
 * The optional active health check (health.active_check_ms): every interval, a probe
 * (e.g. GET /models through the backend's client; resolve = healthy) is run as if it
 * were a request: it needs tryAcquire() like one, so while the circuit is open it only
 * runs once the cooldown has passed, as the half-open probe — a recovered backend is
 * found without waiting for user traffic, and a dead one is found before users are.
 * Started by main.ts (the only place that starts timers); stop() on shutdown/reload.
 */
export function startActiveHealthCheck(breaker: CircuitBreaker, probe: (signal: AbortSignal) => Promise<void>, intervalMs: number): ActiveHealthCheck {
  let running = false;
  const ac = new AbortController();
  const timer = setInterval(() => {
    if (running) return;
    // The check holds a permit like a request: a late verdict of a check that started
    // before the circuit opened cannot decide a half-open circuit.
    const permit = breaker.tryAcquire();
    if (permit === false) return;
    running = true;
    probe(AbortSignal.any([ac.signal, AbortSignal.timeout(intervalMs)])).then(
      () => breaker.onSuccess(permit),
      () => (ac.signal.aborted ? breaker.release(permit) : breaker.onFailure(permit)),
    ).finally(() => {
      running = false;
    });
  }, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      ac.abort();
    },
  };
}
