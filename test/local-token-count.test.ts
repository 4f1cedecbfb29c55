/**
 * Local models count prompt tokens with their own tokenizer (BackendClient.countTokens,
 * node-llama-cpp's model.tokenize), not the estimator: tpm limits are charged, and
 * context windows enforced, on what the model will really see. The tiny test model's
 * vocabulary is byte-level, so a text of n ASCII bytes is n tokens (the estimator
 * would say n / 4).
 */
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './support/gateway.js';

describe('prompt tokens of a local model', () => {
  let gw: TestGateway;
  let client: OpenAI;
  beforeAll(async () => {
    gw = await startTestGateway(
      {
        server: { host: '127.0.0.1', port: 0 },
        backends: { inproc: { type: 'llama-cpp', context_size: 512, threads: 1, parallel: 1 } },
        models: {
          local: { backend: 'inproc', model: 'demo', price: { input: 0, output: 0 } },
          'local-small': { backend: 'inproc', model: 'demo', price: { input: 0, output: 0 }, context_window: 200 },
        },
        keys: [{ id: 'k', key: '${LOCAL_KEY}', limits: { tpm: 100_000 } }],
      },
      { env: { LOCAL_KEY: 'sk-local' } },
    );
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-local', maxRetries: 0 });
  }, 60_000);
  afterAll(async () => {
    await gw?.close();
  });

  it('charges tpm the count of the model’s own tokenizer', async () => {
    const content = 'Hello there, local model.';
    const { response } = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content }], max_tokens: 4 }).withResponse();
    // OpenAI's message overheads (3 per message, 3 priming) around role and content counted byte by byte.
    const prompt = 3 + 'user'.length + content.length + 3;
    expect(Number(response.headers.get('x-ratelimit-remaining-tokens'))).toBe(100_000 - prompt - 4);
  });

  it('rejects a prompt that only the model’s tokenizer finds too long for the context window', async () => {
    // 300 bytes: about 80 tokens for the estimator, 310 for the model; the window is 200.
    const err = await client.chat.completions
      .create({ model: 'local-small', messages: [{ role: 'user', content: 'x'.repeat(300) }], max_tokens: 4 })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBe(400);
    expect((err as APIError).code).toBe('context_length_exceeded');
    expect((err as APIError).message).toContain('310 in the messages');
  });

  it('counts a 1.5-million-character word with the model’s tokenizer in linear time (sliced, the rest extrapolated)', async () => {
    // Whole, node-llama-cpp's tokenizer took 12 s for 400,000 'a's on the event loop.
    const err = await client.chat.completions
      .create({ model: 'local-small', messages: [{ role: 'user', content: 'a'.repeat(1_500_000) }], max_tokens: 4 })
      .then(() => undefined, (e: unknown) => e);
    expect((err as APIError).code).toBe('context_length_exceeded');
    expect((err as APIError).message).toContain('1500010 in the messages');
  });
});
