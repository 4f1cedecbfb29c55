import { describe, expect, it } from 'vitest';
import { GatewayError, UpstreamHttpError } from '../gateway/errors.js';
import { backoffMs, isRetryableError, isRetryableStatus, parseRetryAfter, relayableRetryAfter, retryAfterSeconds, retryDelayMs, runWithRetries, sleep } from '../gateway/upstream/retry.js';

const policy = { attempts: 3, backoff_ms: 100, max_backoff_ms: 1000 };

describe('which failures are retried', () => {
  it.each([
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    [504, true],
    [529, true],
    [501, false],
    [400, false],
    [401, false],
    [404, false],
  ])('status %i retryable: %s', (status, expected) => {
    expect(isRetryableStatus(status)).toBe(expected);
    expect(isRetryableError(new UpstreamHttpError(status, ''))).toBe(expected);
  });

  it.each([
    ['a refused connection', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), true],
    ['an undici connect timeout', Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), true],
    ['a wrapped reset', Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }), true],
    ['a timeout signal', new DOMException('t', 'TimeoutError'), true],
    ['a client abort', new DOMException('a', 'AbortError'), false],
    ['upstream_timeout', new GatewayError('upstream_timeout'), true],
    ['upstream_unreachable', new GatewayError('upstream_unreachable'), true],
    ['a content filter rejection', new GatewayError('content_filter'), false],
    ['a plain bug', new Error('bug'), false],
  ])('%s retryable: %s', (_n, err, expected) => {
    expect(isRetryableError(err)).toBe(expected);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    [{ 'retry-after': '3' }, 3000],
    [{ 'retry-after': '1.5' }, 1500],
    [{ 'retry-after': 'Thu, 01 Jan 2026 00:00:10 GMT' }, 10000],
    [{ 'retry-after': 'Wed, 31 Dec 2025 23:59:00 GMT' }, 0],
    [{ 'retry-after-ms': '250', 'retry-after': '9' }, 250],
    [{ 'retry-after': ['2', '5'] }, 2000],
    [{ 'retry-after': 'soon' }, undefined],
    // V8's Date.parse reads a date into this; a Retry-After it is not.
    [{ 'retry-after': 'Bearer sk-upstream-SECRET-1234' }, undefined],
    [{}, undefined],
  ])('reads %j as %s ms', (headers, expected) => {
    expect(parseRetryAfter(headers, now)).toBe(expected);
  });

  it('relays only what it can read, as it came, and writes whole seconds of its own', () => {
    expect(relayableRetryAfter({ 'retry-after': ' 7 ' })).toBe('7');
    expect(relayableRetryAfter({ 'retry-after': 'Thu, 01 Jan 2026 00:00:10 GMT' })).toBe('Thu, 01 Jan 2026 00:00:10 GMT');
    expect(relayableRetryAfter({ 'retry-after': 'Bearer sk-upstream-SECRET-1234' })).toBeUndefined();
    expect(relayableRetryAfter({})).toBeUndefined();
    expect([0, 1, 999, 1000, 1001, 2500].map(retryAfterSeconds)).toEqual(['1', '1', '1', '1', '2', '3']);
  });
});

describe('backoff', () => {
  it('grows exponentially with full jitter and stops at the cap', () => {
    expect(backoffMs(0, policy, () => 0.999)).toBe(99);
    expect(backoffMs(2, policy, () => 0.999)).toBe(399);
    expect(backoffMs(10, policy, () => 0.999)).toBe(999);
    expect(backoffMs(3, policy, () => 0)).toBe(0);
  });

  it('waits what Retry-After asks, or gives the target up when that is longer than the cap', () => {
    expect(retryDelayMs(0, policy, 700)).toBe(700);
    expect(retryDelayMs(0, policy, 5000)).toBeUndefined();
  });
});

describe('runWithRetries', () => {
  it('retries retryable failures up to attempts + 1 tries and returns the first success', async () => {
    const delays: number[] = [];
    let calls = 0;
    const out = await runWithRetries(
      async () => {
        if (++calls < 3) throw new UpstreamHttpError(503, '');
        return 'ok';
      },
      { policy, random: () => 0.5, sleep: async (ms) => void delays.push(ms) },
    );
    expect(out).toBe('ok');
    expect(calls).toBe(3);
    expect(delays).toEqual([50, 100]);
  });

  it('gives up after the last attempt with the last error', async () => {
    let calls = 0;
    const err = new UpstreamHttpError(500, 'boom');
    await expect(runWithRetries(async () => (calls++, Promise.reject(err)), { policy: { ...policy, attempts: 2 }, sleep: async () => {} })).rejects.toBe(err);
    expect(calls).toBe(3);
  });

  it('does not retry a 400 or once the caller says bytes were sent', async () => {
    let calls = 0;
    await expect(runWithRetries(async () => (calls++, Promise.reject(new UpstreamHttpError(400, ''))), { policy, sleep: async () => {} })).rejects.toBeInstanceOf(UpstreamHttpError);
    expect(calls).toBe(1);
    calls = 0;
    await expect(runWithRetries(async () => (calls++, Promise.reject(new UpstreamHttpError(502, ''))), { policy, shouldRetry: () => false, sleep: async () => {} })).rejects.toBeInstanceOf(UpstreamHttpError);
    expect(calls).toBe(1);
  });

  it('honours Retry-After from the failure', async () => {
    const delays: number[] = [];
    let calls = 0;
    await runWithRetries(
      async () => {
        if (++calls === 1) throw new UpstreamHttpError(429, '', { 'retry-after': '0.2' });
        return 'ok';
      },
      { policy, retryAfterMs: (e) => parseRetryAfter((e as UpstreamHttpError).headers), sleep: async (ms) => void delays.push(ms) },
    );
    expect(delays).toEqual([200]);
  });

  it('stops waiting as soon as the client leaves', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = runWithRetries(async () => Promise.reject(new UpstreamHttpError(503, '')), { policy: { attempts: 1, backoff_ms: 60_000, max_backoff_ms: 60_000 }, signal: ac.signal, random: () => 0.99 });
    setTimeout(() => ac.abort(new Error('client left')), 20);
    await expect(p).rejects.toThrow('client left');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('sleeps for real when nothing aborts', async () => {
    const t0 = Date.now();
    await sleep(20);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(15);
  });
});
