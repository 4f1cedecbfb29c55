/**
 * The shared store's failure bookkeeping: an unreachable Redis is an outage (policy
 * applies, one warning, degraded until a probe succeeds); a Redis that answers with an
 * error (a script bug) fails that call only.
 */
import { describe, expect, it } from 'vitest';
import { ReplyError } from 'ioredis';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import { createStoreHealth, isOutage, SILENT_PROBES } from '../gateway/stores/redis/connection.js';
import { GatewayError } from '../gateway/errors.js';

function health(onFailure: 'fail_open' | 'fail_closed') {
  const metrics = createMetrics({ defaultMetrics: false });
  const h = createStoreHealth({ logger: createLogger({ level: 'silent' }), metrics, onFailure, ping: async () => {}, isConnected: () => false, probeMs: 60_000 });
  return { h, metrics };
}

describe('store health', () => {
  it('tells outages from error replies', () => {
    expect(isOutage(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isOutage(new Error('Command timed out'))).toBe(true);
    expect(isOutage(new ReplyError('ERR Error running script (call to f_abc): user_script:1: bad argument'))).toBe(false);
    expect(isOutage(new ReplyError('LOADING Redis is loading the dataset in memory'))).toBe(true);
    expect(isOutage(new ReplyError('READONLY You can\'t write against a read only replica.'))).toBe(true);
  });

  it('does not degrade the store when Redis answers with an error', async () => {
    const { h, metrics } = health('fail_open');
    const r = await h.run('probe', () => Promise.reject(new ReplyError('ERR wrong number of arguments')), () => 'fallback');
    expect(r).toBe('fallback');
    expect(h.degraded).toBe(false);
    expect((await metrics.storeFailures.get()).values[0].value).toBe(1);
    expect(await h.run('next', async () => 'shared', () => 'fallback')).toBe('shared');
    h.close();
  });

  it('degrades on an outage and applies the policy to later calls', async () => {
    const { h } = health('fail_closed');
    await expect(h.run('consume', () => Promise.reject(new Error('Connection is closed.')), () => 'fallback')).rejects.toBeInstanceOf(GatewayError);
    expect(h.degraded).toBe(true);
    await expect(h.run('consume', async () => 'shared', () => 'fallback')).rejects.toMatchObject({ code: 'store_unavailable' });
    h.close();
  });

  it('replaces a connection that says it is up but answers no probe (a silent peer), and only that one', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let reconnects = 0;
    let answering = false;
    const h = createStoreHealth({
      logger: createLogger({ level: 'silent' }),
      metrics,
      onFailure: 'fail_open',
      probeMs: 10,
      isConnected: () => true,
      ping: () => (answering ? Promise.resolve() : Promise.reject(new Error('Command timed out'))),
      reconnect: () => reconnects++,
    });
    await h.run('consume', () => Promise.reject(new Error('Command timed out')), () => 'fallback');
    expect(h.degraded).toBe(true);
    await new Promise((r) => setTimeout(r, 10 * SILENT_PROBES * 4));
    expect(reconnects).toBeGreaterThanOrEqual(1);
    answering = true;
    await new Promise((r) => setTimeout(r, 50));
    expect(h.degraded).toBe(false);
    const after = reconnects;
    await new Promise((r) => setTimeout(r, 50));
    expect(reconnects).toBe(after);
    h.close();
  });

  it('replaces a silent connection also when each probe waits longer than the probe interval (the command timeout)', async () => {
    let reconnects = 0;
    const h = createStoreHealth({
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
      onFailure: 'fail_open',
      probeMs: 10,
      isConnected: () => true,
      ping: () => new Promise((_resolve, reject) => setTimeout(() => reject(new Error('Command timed out')), 25)),
      reconnect: () => reconnects++,
    });
    await h.run('consume', () => Promise.reject(new Error('Command timed out')), () => 'fallback');
    await new Promise((r) => setTimeout(r, 35 * SILENT_PROBES * 3));
    expect(reconnects).toBeGreaterThanOrEqual(1);
    h.close();
  });
});
