import { describe, expect, it } from 'vitest';
import { BackendSchema, HealthSchema } from '../gateway/config/schema.js';
import { createMetrics } from '../gateway/metrics.js';
import { createCircuitBreaker, createCircuitBreakers, isBackendFailure, startActiveHealthCheck } from '../gateway/upstream/circuit-breaker.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('the circuit breaker', () => {
  it('opens after N consecutive failures and lets nothing through during the cooldown', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 3, cooldown_ms: 1000 }), { now: c.now });
    cb.onFailure();
    cb.onFailure();
    expect(cb.state).toBe('closed');
    cb.onFailure();
    expect(cb.state).toBe('open');
    expect(cb.available()).toBe(false);
    expect(cb.tryAcquire()).toBe(false);
    c.advance(999);
    expect(cb.tryAcquire()).toBe(false);
  });

  it('says how long until it lets a request through, for Retry-After', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 1, cooldown_ms: 3000 }), { now: c.now });
    expect(cb.retryInMs()).toBe(0);
    cb.onFailure();
    expect(cb.retryInMs()).toBe(3000);
    c.advance(1200);
    expect(cb.retryInMs()).toBe(1800);
    c.advance(1800);
    expect(cb.retryInMs()).toBe(0);
    expect(cb.tryAcquire()).toBeTruthy(); // the half-open probe is out
    expect(cb.retryInMs()).toBe(3000);
    cb.onSuccess();
    expect(cb.retryInMs()).toBe(0);
  });

  it('resets the consecutive count on a success', () => {
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 2 }));
    cb.onFailure();
    cb.onSuccess();
    cb.onFailure();
    expect(cb.state).toBe('closed');
  });

  it('lets exactly one probe through after the cooldown and closes when it succeeds', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 1, cooldown_ms: 1000 }), { now: c.now });
    cb.onFailure();
    c.advance(1000);
    expect(cb.available()).toBe(true);
    expect(cb.tryAcquire()).toBeTruthy();
    expect(cb.state).toBe('half_open');
    expect(cb.tryAcquire()).toBe(false);
    expect(cb.available()).toBe(false);
    cb.onSuccess();
    expect(cb.state).toBe('closed');
    expect(cb.tryAcquire()).toBeTruthy();
  });

  it('reopens for a new cooldown when the probe fails', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 1, cooldown_ms: 1000 }), { now: c.now });
    cb.onFailure();
    c.advance(1000);
    cb.tryAcquire();
    cb.onFailure();
    expect(cb.state).toBe('open');
    c.advance(500);
    expect(cb.tryAcquire()).toBe(false);
    c.advance(500);
    expect(cb.tryAcquire()).toBeTruthy();
  });

  it('frees the probe when its attempt ended without a verdict, and gives up on a probe that never reports', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 1, cooldown_ms: 1000 }), { now: c.now });
    cb.onFailure();
    c.advance(1000);
    expect(cb.tryAcquire()).toBeTruthy();
    cb.release();
    expect(cb.tryAcquire()).toBeTruthy();
    expect(cb.tryAcquire()).toBe(false);
    c.advance(1000);
    expect(cb.tryAcquire()).toBeTruthy();
  });

  it('lets only the probe decide a half-open circuit: attempts admitted before it opened cannot', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 2, cooldown_ms: 1000 }), { now: c.now });
    const slow = [cb.tryAcquire(), cb.tryAcquire(), cb.tryAcquire()]; // in flight while it opens
    cb.onFailure(cb.tryAcquire() as number);
    cb.onFailure(cb.tryAcquire() as number);
    expect(cb.state).toBe('open');
    c.advance(1000);
    const probe = cb.tryAcquire();
    expect(probe).toBeTruthy();
    expect(cb.tryAcquire()).toBe(false);
    // The old attempts end: aborted (no verdict), one even succeeds, one fails. None frees,
    // closes or re-opens the circuit: the probe is still out and alone.
    cb.release(slow[0] as number);
    cb.onSuccess(slow[1] as number);
    cb.onFailure(slow[2] as number);
    expect(cb.state).toBe('half_open');
    expect(cb.tryAcquire()).toBe(false);
    // The probe's own verdict does.
    cb.onSuccess(probe as number);
    expect(cb.state).toBe('closed');
  });

  it("does not let a late active health check decide a half-open circuit it was not the probe of", async () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 1, cooldown_ms: 1000 }), { now: c.now });
    let finishCheck!: () => void;
    let started = 0;
    const check = startActiveHealthCheck(cb, () => { started++; return new Promise<void>((r) => (finishCheck = r)); }, 20);
    try {
      await expect.poll(() => started, { timeout: 2000, interval: 5 }).toBe(1); // a check is out while the circuit is closed
      cb.onFailure(cb.tryAcquire() as number); // a user request fails: open
      c.advance(1000);
      const probe = cb.tryAcquire(); // the half-open probe, a user request
      expect(probe).toBeTruthy();
      finishCheck(); // the old check succeeds late
      await new Promise((r) => setTimeout(r, 10));
      expect(cb.state).toBe('half_open');
      cb.onSuccess(probe as number);
      expect(cb.state).toBe('closed');
    } finally {
      check.stop();
    }
  });

  it('opens on the error rate over the window once enough requests were seen', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 100, error_rate: 0.5, min_requests: 10, window_ms: 10_000 }), { now: c.now });
    for (let i = 0; i < 4; i++) {
      cb.onSuccess();
      cb.onFailure();
    }
    expect(cb.state).toBe('closed'); // 8 requests < min_requests
    cb.onSuccess();
    cb.onFailure(); // 10 requests, 50% failed
    expect(cb.state).toBe('open');
  });

  it('forgets failures older than the window', () => {
    const c = clock();
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 100, error_rate: 0.5, min_requests: 4, window_ms: 10_000 }), { now: c.now });
    cb.onFailure();
    cb.onFailure();
    cb.onFailure();
    c.advance(11_000);
    cb.onSuccess();
    cb.onSuccess();
    cb.onSuccess();
    cb.onFailure(); // in-window: 4 requests, 25% failed
    expect(cb.state).toBe('closed');
  });

  it('keeps switchyard_backend_up in step with the circuit', async () => {
    const c = clock();
    const metrics = createMetrics({ defaultMetrics: false });
    const breakers = createCircuitBreakers(
      { backends: { a: BackendSchema.parse({ type: 'openai', health: { failure_threshold: 1, cooldown_ms: 100 } }), b: BackendSchema.parse({ type: 'openai' }) } },
      metrics,
      c.now,
    );
    const up = async () => Object.fromEntries((await metrics.backendUp.get()).values.map((v) => [v.labels.backend, v.value]));
    expect(await up()).toEqual({ a: 1, b: 1 });
    breakers.get('a')!.onFailure();
    expect(await up()).toEqual({ a: 0, b: 1 });
    c.advance(100);
    breakers.get('a')!.tryAcquire();
    expect(await up()).toEqual({ a: 1, b: 1 });
  });
});

describe('what counts as a backend failure', () => {
  it.each([
    [undefined, true],
    [500, true],
    [503, true],
    [429, false],
    [400, false],
    [200, false],
  ])('status %s counts: %s', (status, expected) => {
    expect(isBackendFailure(status)).toBe(expected);
  });
});

describe('the active health check', () => {
  it('opens a dead backend without user traffic and closes it once the probe succeeds', async () => {
    const cb = createCircuitBreaker(HealthSchema.parse({ failure_threshold: 2, cooldown_ms: 30 }));
    let healthy = false;
    const check = startActiveHealthCheck(cb, async () => {
      if (!healthy) throw new Error('down');
    }, 10);
    try {
      await until(() => cb.state === 'open');
      healthy = true;
      await until(() => cb.state === 'closed');
    } finally {
      check.stop();
    }
  });
});

async function until(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}
