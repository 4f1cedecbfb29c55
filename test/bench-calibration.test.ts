/**
 * The calibration proxies of `npm run bench` (loadtest/bench/calibration.ts): their
 * figures only mean something if they really relay to the mock, status and body intact.
 * nginx runs only where it is installed (CI: .ci/run does not need it).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCalibrationTargets, type CalibrationTarget } from '../loadtest/bench/calibration.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { findBinary } from './support/prometheus.js';

describe('bench calibration proxies', () => {
  let mock: MockUpstream;
  let targets: CalibrationTarget[] = [];

  beforeAll(async () => {
    mock = await startMockUpstream({ defaults: { text: 'calibrated answer' } });
    targets = await startCalibrationTargets(mock.url);
  });

  afterAll(async () => {
    for (const t of targets) await t.stop();
    await mock?.close();
  });

  it('include the bare relay, and nginx exactly when it is installed', () => {
    const names = targets.map((t) => t.name);
    expect(names).toContain('bare uWS+undici relay');
    expect(names.includes('nginx')).toBe(Boolean(findBinary('nginx')));
    for (const t of targets) expect(t.pids.every((p) => Number.isInteger(p) && p > 0)).toBe(true);
  });

  it('each relays a chat completion to the mock and its answer back', async () => {
    for (const t of targets) {
      const before = mock.requests.length;
      const client = new OpenAI({ apiKey: 'unused', baseURL: t.url.replace(/\/chat\/completions$/, ''), maxRetries: 0 });
      const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `via ${t.name}` }] });
      expect(r.choices[0]!.message.content, t.name).toBe('calibrated answer');
      expect(mock.requests.length, t.name).toBe(before + 1);
      expect(JSON.stringify(mock.requests.at(-1)!.body), t.name).toContain(`via ${t.name}`);
    }
  });

  it('pass an upstream error status through', async () => {
    for (const t of targets) {
      mock.enqueue({ status: 429, errorBody: { error: { message: 'slow down', type: 'rate_limit_error', param: null, code: null } } });
      const r = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}' });
      expect(r.status, t.name).toBe(429);
      expect(await r.text(), t.name).toContain('slow down');
    }
  });
});
