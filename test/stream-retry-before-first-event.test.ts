/**
 * A stream that breaks before its first event has sent the client nothing: the gateway
 * takes its 200 head back, so a retry (or a fallback) can still answer in full, and
 * without one the client gets a plain 502 it can act on instead of a 200 that carries
 * only an error event. On both HTTP servers.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { startQuirkyUpstream, type QuirkyUpstream } from './support/quirky-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

describe.each(['uws', 'node'] as const)('a stream that breaks before its first event, on %s', (serverKind) => {
  let up: QuirkyUpstream;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    up = await startQuirkyUpstream();
    gw = await startTestGateway(
      {
        server: { host: '127.0.0.1', port: 0 },
        backends: { q: { type: 'openai-compatible', base_url: up.url, health: { failure_threshold: 1000 } } },
        models: { plain: { backend: 'q', model: 'q' }, retried: { backend: 'q', model: 'q' } },
        routes: [{ name: 'retrying', match: { model: 'retried' }, targets: [{ model: 'retried' }], retries: { attempts: 1, backoff_ms: 1, max_backoff_ms: 5 } }],
      },
      { server: serverKind, metrics: createMetrics({ defaultMetrics: false }) },
    );
    client = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('is retried, and the client gets the whole second answer', async () => {
    const before = up.hits.get('head-reset-then-ok') ?? 0;
    const stream = await client.chat.completions.create({ model: 'retried', messages: [{ role: 'user', content: 'case:head-reset-then-ok' }], stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toBe('second try');
    expect((up.hits.get('head-reset-then-ok') ?? 0) - before).toBe(2);
  });

  it('is answered with a plain 502 when there is nothing to retry on', async () => {
    const err = await client.chat.completions
      .create({ model: 'plain', messages: [{ role: 'user', content: 'case:head-reset' }], stream: true })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_stream_interrupted');
  });
});
