import { describe, expect, it } from 'vitest';
import { Histogram, Registry } from 'prom-client';
import { batchedCounter, batchedGauge, batchedHistogram } from '../gateway/metrics.js';

const value = async (r: Registry, name: string, labels: Record<string, string> = {}) => {
  const m = (await r.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
};

describe('batched counters (request-path counters summed locally, handed to prom-client at scrape)', () => {
  it('shows every increment at the next scrape, labelled and unlabelled, in text and JSON', async () => {
    const r = new Registry();
    const c = batchedCounter({ name: 't_requests_total', help: 'h', labelNames: ['model', 'status'] as const, registers: [r] });
    const u = batchedCounter({ name: 't_saved_total', help: 'h', registers: [r] });
    const ok = c.labels('m1', '200');
    ok.inc();
    ok.inc(2);
    c.labels('m1', '200').inc(); // the same child again
    c.labels('m2', '500').inc(0.5);
    u.inc();
    u.inc(41);
    expect(await value(r, 't_requests_total', { model: 'm1', status: '200' })).toBe(4);
    expect(await value(r, 't_requests_total', { model: 'm2', status: '500' })).toBe(0.5);
    expect(await value(r, 't_saved_total')).toBe(42);
    // A second scrape without new increments shows the same totals (nothing counted twice).
    const text = await r.metrics();
    expect(text).toContain('t_requests_total{model="m1",status="200"} 4');
    expect(text).toContain('t_saved_total 42');
    ok.inc();
    expect(await r.metrics()).toContain('t_requests_total{model="m1",status="200"} 5');
  });

  it('refuses what a counter cannot take, like prom-client', () => {
    const c = batchedCounter({ name: 't_bad_total', help: 'h', labelNames: ['a'] as const, registers: [] });
    expect(() => c.labels('x').inc(-1)).toThrow(TypeError);
    expect(() => c.labels('x').inc(Number.NaN)).toThrow(TypeError);
    expect(() => c.inc(Infinity)).toThrow(TypeError);
    expect(() => c.labels('x', 'extra')).toThrow();
  });

  it('keeps the object forms and reset() of prom-client', async () => {
    const r = new Registry();
    const c = batchedCounter({ name: 't_obj_total', help: 'h', labelNames: ['a'] as const, registers: [r] });
    c.inc({ a: 'x' }, 3);
    c.labels({ a: 'y' }).inc();
    c.labels('x').inc();
    expect(await value(r, 't_obj_total', { a: 'x' })).toBe(4);
    expect(await value(r, 't_obj_total', { a: 'y' })).toBe(1);
    c.labels('x').inc(7); // pending when reset: dropped with the rest
    c.reset();
    expect(await value(r, 't_obj_total', { a: 'x' })).toBeUndefined();
  });
});

describe('batched gauges (request-path gauges kept locally, handed to prom-client at scrape)', () => {
  it('shows the latest value of each gauge at every scrape', async () => {
    const r = new Registry();
    const inflight = batchedGauge({ name: 't_inflight', help: 'h', registers: [r] });
    const queue = batchedGauge({ name: 't_queue', help: 'h', labelNames: ['backend'] as const, registers: [r] });
    expect(await value(r, 't_inflight')).toBe(0);
    inflight.inc();
    inflight.inc();
    inflight.inc(3);
    inflight.dec();
    const a = queue.labels('a');
    a.set(7);
    a.inc();
    queue.labels('b').set(2);
    queue.labels('b').dec(2);
    expect(await value(r, 't_inflight')).toBe(4);
    expect(await value(r, 't_queue', { backend: 'a' })).toBe(8);
    expect(await value(r, 't_queue', { backend: 'b' })).toBe(0);
    inflight.dec(4);
    inflight.set(1);
    expect(await r.metrics()).toContain('t_inflight 1');
    // Unchanged between scrapes: the same value again.
    expect(await value(r, 't_queue', { backend: 'a' })).toBe(8);
  });

  it('keeps the object forms and reset() of prom-client', async () => {
    const r = new Registry();
    const g = batchedGauge({ name: 't_gobj', help: 'h', labelNames: ['a'] as const, registers: [r] });
    g.set({ a: 'x' }, 5);
    g.labels({ a: 'y' }).set(3);
    expect(await value(r, 't_gobj', { a: 'x' })).toBe(5);
    expect(await value(r, 't_gobj', { a: 'y' })).toBe(3);
    g.labels('z').set(9);
    g.reset();
    expect(await value(r, 't_gobj', { a: 'z' })).toBeUndefined();
    g.labels('z').inc();
    expect(await value(r, 't_gobj', { a: 'z' })).toBe(1);
  });
});

describe('batched histograms (request-path observations counted locally, exposed through prom-client)', () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const samples = [0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.5, 1, 2, 30, -1, 0];
  /** The same metric both ways: prom-client's Histogram and ours, fed by `feed`. */
  async function both(feed: (h: Histogram<'model'>) => void) {
    const plain = new Registry();
    const batched = new Registry();
    feed(new Histogram({ name: 't_seconds', help: 'h', labelNames: ['model'] as const, buckets, registers: [plain] }));
    feed(batchedHistogram({ name: 't_seconds', help: 'h', labelNames: ['model'] as const, buckets, registers: [batched] }));
    return { plain, batched };
  }

  it("exposes exactly prom-client's text and JSON for the same observations", async () => {
    const { plain, batched } = await both((h) => {
      const m1 = h.labels('m1');
      for (const v of samples) m1.observe(v);
      h.labels('m2').observe(0.2);
      h.labels('m1').observe(0.003); // the same child again
    });
    expect(await batched.metrics()).toBe(await plain.metrics());
    expect(await batched.getMetricsAsJSON()).toEqual(await plain.getMetricsAsJSON());
    expect(await batched.metrics()).toContain('t_seconds_bucket{le="0.01",model="m1"} 7');
  });

  it('merges the object form and positional children of one label set', async () => {
    const { plain, batched } = await both((h) => {
      h.observe({ model: 'm1' }, 0.05);
      h.labels({ model: 'm1' }).observe(0.5);
      h.labels('m1').observe(0.005);
      h.zero({ model: 'm3' });
    });
    expect(await batched.metrics()).toBe(await plain.metrics());
  });

  it('shows new observations at every scrape, and reset() clears them', async () => {
    const r = new Registry();
    const h = batchedHistogram({ name: 't2_seconds', help: 'h', labelNames: ['model'] as const, buckets, registers: [r] });
    const c = h.labels('m');
    c.observe(0.05);
    expect(await r.metrics()).toContain('t2_seconds_count{model="m"} 1');
    c.observe(0.05);
    expect(await r.metrics()).toContain('t2_seconds_count{model="m"} 2');
    expect(await r.metrics()).toContain('t2_seconds_sum{model="m"} 0.1');
    h.reset();
    expect(await r.metrics()).not.toContain('t2_seconds_count');
    c.observe(2);
    expect(await r.metrics()).toContain('t2_seconds_bucket{le="+Inf",model="m"} 1');
  });

  it('keeps the rest of the child API: remove(), startTimer(), numeric label values', async () => {
    const { plain, batched } = await both((h) => {
      h.labels('gone').observe(0.2);
      h.labels('kept').observe(0.2);
      h.remove('gone');
      h.labels({ model: 'gone2' }).observe(0.3);
      h.labels('gone2').observe(0.3);
      h.remove({ model: 'gone2' });
      h.observe({ model: 5 as unknown as string }, 0.5);
      h.labels(5 as unknown as string).observe(0.5);
    });
    // The same lines (series may come in another order, which exposition allows).
    const sorted = async (r: Registry) => (await r.metrics()).split('\n').sort();
    expect(await sorted(batched)).toEqual(await sorted(plain));
    expect(await batched.metrics()).toContain('t_seconds_count{model="5"} 2');
    expect(await batched.metrics()).not.toContain('gone');
    const r = new Registry();
    const h = batchedHistogram({ name: 't4_seconds', help: 'h', labelNames: ['model'] as const, buckets, registers: [r] });
    const end = h.labels('m').startTimer();
    await new Promise((res) => setTimeout(res, 5));
    const seconds = end();
    expect(seconds).toBeGreaterThan(0.004);
    expect(await r.metrics()).toContain('t4_seconds_count{model="m"} 1');
  });

  it('refuses what prom-client refuses', () => {
    const h = batchedHistogram({ name: 't3_seconds', help: 'h', labelNames: ['model'] as const, buckets, registers: [] });
    expect(() => h.labels('m').observe(Number.NaN)).toThrow(TypeError);
    expect(() => h.labels('m', 'extra')).toThrow();
  });
});
