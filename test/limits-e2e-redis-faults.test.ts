/**
 * Redis going away under two gateway PROCESSES, through HTTP with the openai SDK: the
 * fail_open one keeps serving against per-replica limits (limit / replicas_hint), the
 * fail_closed one answers 503 store_unavailable at once (never hangs), and both return
 * to the shared limits by themselves when Redis is back — after a crash (SIGKILL,
 * restarted empty on the same port) and after a hang (SIGSTOP/SIGCONT).
 */
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from './support/gateway-process.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway } from './support/gateway.js';
import { startRedis, type TestRedis } from './support/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const KEYS = { KEY_CRASH: 'sk-faults-crash', KEY_HANG: 'sk-faults-hang', KEY_AFTER: 'sk-faults-after' };

function config(policy: 'fail_open' | 'fail_closed'): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0 },
    store: { kind: 'redis', redis_url: '${REDIS_URL}', on_failure: policy, replicas_hint: 2, timeout_ms: 200, key_prefix: `${policy}:` },
    backends: { mock: { type: 'openai-compatible', base_url: '${MOCK_URL}' } },
    models: { 'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini', price: { input: 0.15, output: 0.6 } } },
    keys: [
      { id: 'crash', key: '${KEY_CRASH}', limits: { rpm: 4 } },
      { id: 'hang', key: '${KEY_HANG}', limits: { rpm: 4 } },
      { id: 'after', key: '${KEY_AFTER}', limits: { rpm: 4 } },
    ],
  };
}

let redis: TestRedis;
let mock: MockUpstream;
let open: GatewayProcess;
let closed: GatewayProcess;

beforeAll(async () => {
  [redis, mock] = await Promise.all([startRedis(), startMockUpstream()]);
  const env = { ...KEYS, REDIS_URL: redis.url, MOCK_URL: mock.url };
  [open, closed] = await Promise.all([startGatewayProcess(config('fail_open'), env), startGatewayProcess(config('fail_closed'), env)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([open?.stop(), closed?.stop()]);
  await Promise.all([mock?.close(), redis?.close()]);
});

type Outcome = { status: number; code?: string | null; limit: string | null; retryAfter?: string | null; ms: number };

async function ask(gw: { url: string }, apiKey: string): Promise<Outcome> {
  const c = new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 10_000 });
  const t0 = Date.now();
  try {
    const { response } = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'ping' }] }).withResponse();
    return { status: response.status, limit: response.headers.get('x-ratelimit-limit-requests'), ms: Date.now() - t0 };
  } catch (err) {
    if (!(err instanceof APIError)) throw err;
    return { status: err.status ?? 0, code: err.code, limit: err.headers?.get('x-ratelimit-limit-requests') ?? null, retryAfter: err.headers?.get('retry-after') ?? null, ms: Date.now() - t0 };
  }
}

/** Asks until `done` holds (the store's probe notices a returning Redis within about a second). */
async function askUntil(gw: GatewayProcess, apiKey: string, done: (o: Outcome) => boolean, timeoutMs = 10_000): Promise<Outcome> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const o = await ask(gw, apiKey);
    if (done(o) || Date.now() > end) return o;
    await sleep(150);
  }
}

const count = (gw: GatewayProcess, msg: string) => gw.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg)).length;

describe('Redis killed and restarted under two gateway processes', () => {
  it('fail_open keeps serving on per-replica limits, fail_closed answers 503, and both return to Redis', async () => {
    expect(await ask(open, KEYS.KEY_CRASH)).toMatchObject({ status: 200, limit: '4' });
    expect(await ask(closed, KEYS.KEY_CRASH)).toMatchObject({ status: 200, limit: '4' });

    await redis.stop();
    // fail_open: rpm 4 across replicas_hint 2 → 2 per replica, from this replica's memory.
    const during = [await ask(open, KEYS.KEY_CRASH), await ask(open, KEYS.KEY_CRASH), await ask(open, KEYS.KEY_CRASH)];
    expect(during.map((o) => [o.status, o.limit])).toEqual([
      [200, '2'],
      [200, '2'],
      [429, '2'],
    ]);
    expect(during[2].code).toBe('rate_limit_exceeded');
    for (let i = 0; i < 2; i++) {
      const refused = await ask(closed, KEYS.KEY_CRASH);
      expect(refused).toMatchObject({ status: 503, code: 'store_unavailable', retryAfter: '1' });
      expect(refused.ms).toBeLessThan(2000);
    }
    expect(count(open, 'shared store unreachable')).toBe(1);
    expect(count(closed, 'shared store unreachable')).toBe(1);

    await redis.restart();
    expect(await askUntil(closed, KEYS.KEY_CRASH, (o) => o.status === 200)).toMatchObject({ status: 200, limit: '4' });
    // Back on the (restarted, empty) shared limits: a key this replica did not serve during
    // the outage gets the full figure again...
    expect(await askUntil(open, KEYS.KEY_AFTER, (o) => o.status === 200 && o.limit === '4')).toMatchObject({ status: 200, limit: '4' });
    // ...while the one it served locally has spent its share of this minute: Redis, which
    // never saw those requests, must not admit a whole limit on top of them.
    expect(await ask(open, KEYS.KEY_CRASH)).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
    expect(count(open, 'shared store reachable again')).toBe(1);
    expect(count(closed, 'shared store reachable again')).toBe(1);
    const metrics = await (await fetch(`${closed.url}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_store_outages_total 1/);
    expect(metrics).toMatch(/switchyard_store_degraded 0/);
  }, 30_000);
});

describe('Redis hanging under two gateway processes', () => {
  it('answers within the command timeout instead of hanging, and recovers when Redis wakes up', async () => {
    expect(await ask(open, KEYS.KEY_HANG)).toMatchObject({ status: 200, limit: '4' });
    expect(await ask(closed, KEYS.KEY_HANG)).toMatchObject({ status: 200, limit: '4' });

    await redis.pause();
    try {
      const [o, c] = await Promise.all([ask(open, KEYS.KEY_HANG), ask(closed, KEYS.KEY_HANG)]);
      expect(o).toMatchObject({ status: 200, limit: '2' });
      expect(c).toMatchObject({ status: 503, code: 'store_unavailable' });
      expect(o.ms).toBeLessThan(2000);
      expect(c.ms).toBeLessThan(2000);
    } finally {
      await redis.resume();
    }
    expect(await askUntil(closed, KEYS.KEY_HANG, (x) => x.status === 200)).toMatchObject({ status: 200, limit: '4' });
    expect(await askUntil(open, KEYS.KEY_AFTER, (x) => x.status === 200 && x.limit === '4')).toMatchObject({ status: 200, limit: '4' });
  }, 30_000);
});

describe('a replica starting before its Redis is reachable', () => {
  it('is not ready until Redis answers, so its first requests use the shared limits', async () => {
    const late = await startRedis();
    await late.stop();
    const starting = startTestGateway({ ...config('fail_closed'), store: { kind: 'redis', redis_url: '${REDIS_URL}', on_failure: 'fail_closed', timeout_ms: 200 } }, {
      env: { ...KEYS, REDIS_URL: late.url, MOCK_URL: mock.url },
    });
    let resolved = false;
    void starting.then(() => (resolved = true), () => {});
    await sleep(400);
    expect(resolved).toBe(false);
    await late.restart();
    const gw = await starting;
    try {
      expect((await fetch(`${gw.url}/ready`)).status).toBe(200);
      expect(await ask(gw, KEYS.KEY_CRASH)).toMatchObject({ status: 200, limit: '4' });
    } finally {
      await gw.close();
      await late.close();
    }
  }, 15_000);
});
