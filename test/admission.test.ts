import { describe, expect, it } from 'vitest';
import { AdmissionSchema } from '../gateway/config/schema.js';
import { GatewayError, toOpenAIError } from '../gateway/errors.js';
import { createMetrics } from '../gateway/metrics.js';
import { createAdmission } from '../gateway/upstream/admission.js';
import { cancellationFromSignal } from '../gateway/upstream/cancellation.js';

function setup(cfg: Record<string, unknown>) {
  const metrics = createMetrics({ defaultMetrics: false });
  const adm = createAdmission('llm', AdmissionSchema.parse(cfg), metrics);
  const gauge = async (g: 'queueDepth' | 'tokenQueueDepth') => (await metrics[g].get()).values.find((v) => v.labels.backend === 'llm')?.value;
  return { adm, gauge };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('admission control', () => {
  it('admits up to max_concurrent at once and queues the rest in FIFO order', async () => {
    const { adm } = setup({ max_concurrent: 2, max_queue: 10 });
    const a = await adm.acquire({ tokens: 1 });
    await adm.acquire({ tokens: 1 });
    const order: number[] = [];
    const waiters = [3, 4, 5].map((n) => adm.acquire({ tokens: 1 }).then((t) => (order.push(n), t)));
    expect(adm.inflight).toBe(2);
    expect(adm.queued).toBe(3);
    a.release();
    a.release(); // idempotent: frees one slot, not two
    const t3 = await waiters[0];
    expect(order).toEqual([3]);
    expect(adm.queued).toBe(2);
    t3.release();
    await waiters[1];
    expect(order).toEqual([3, 4]);
  });

  it('answers 429 queue_full with Retry-After when the queue is full', async () => {
    const { adm } = setup({ max_concurrent: 1, max_queue: 1 });
    await adm.acquire({ tokens: 1 });
    void adm.acquire({ tokens: 1 }).catch(() => {});
    const err = await rejection(adm.acquire({ tokens: 1 }));
    expect(err).toBeInstanceOf(GatewayError);
    const out = toOpenAIError(err);
    expect(out.status).toBe(429);
    expect(JSON.parse(out.body as string).error.code).toBe('queue_full');
    expect(Number(out.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('answers 503 queue_timeout with Retry-After when the wait is too long', async () => {
    const { adm, gauge } = setup({ max_concurrent: 1, max_queue: 5, queue_timeout_ms: 30 });
    await adm.acquire({ tokens: 10 });
    const err = (await rejection(adm.acquire({ tokens: 7 }))) as GatewayError;
    expect(err.code).toBe('queue_timeout');
    expect(err.status).toBe(503);
    expect(err.headers?.['retry-after']).toMatch(/^\d+$/);
    expect(adm.queued).toBe(0);
    expect(await gauge('tokenQueueDepth')).toBe(10);
  });

  it('drops a queued request whose client left', async () => {
    const { adm, gauge } = setup({ max_concurrent: 1, max_queue: 5 });
    const first = await adm.acquire({ tokens: 1 });
    const ac = new AbortController();
    const gone = adm.acquire({ tokens: 50, cancel: cancellationFromSignal(ac.signal) });
    const next = adm.acquire({ tokens: 2 });
    expect(await gauge('queueDepth')).toBe(2);
    ac.abort(new Error('client left'));
    expect(((await rejection(gone)) as Error).name).toBe('AbortError');
    expect(await gauge('queueDepth')).toBe(1);
    first.release();
    await next;
    expect(adm.inflight).toBe(1);
    expect(await gauge('tokenQueueDepth')).toBe(2);
  });

  it('counts the tokens of queued and in-flight requests in the token queue depth', async () => {
    const { adm, gauge } = setup({ max_concurrent: 1, max_queue: 5 });
    const a = await adm.acquire({ tokens: 1000 });
    const b = adm.acquire({ tokens: 300 });
    expect(await gauge('tokenQueueDepth')).toBe(1300);
    expect(await gauge('queueDepth')).toBe(1);
    a.release();
    (await b).release();
    expect(await gauge('tokenQueueDepth')).toBe(0);
    expect(await gauge('queueDepth')).toBe(0);
  });

  it('never queues without max_concurrent but still counts in-flight requests', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const adm = createAdmission('free', undefined, metrics);
    const tickets = await Promise.all([1, 2, 3].map(() => adm.acquire({ tokens: 5 })));
    expect(adm.inflight).toBe(3);
    expect(adm.tokens).toBe(15);
    tickets.forEach((t) => t.release());
    expect(adm.inflight).toBe(0);
  });
});
