import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { batchedCounter, batchedGauge } from '../gateway/metrics.js';

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
