/**
 * The standalone local-model server as users use it: the official openai SDK against
 * `switchyard-local-backend` serving the generated tiny LLaMA model on the CPU.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { LocalServer } from '../local-backend/server.js';
import { startTinyLocalServer } from './support/tiny-model.js';

const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];

function clientFor(server: LocalServer): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
}

async function health(server: LocalServer): Promise<{ busy: number; queued: number }> {
  return (await fetch(`${server.url}/health`)).json() as Promise<{ busy: number; queued: number }>;
}

async function until(check: () => Promise<boolean>, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the standalone local backend (parallel: 2)', () => {
  let server: LocalServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTinyLocalServer({ parallel: 2, contextSize: 2048 });
    client = clientFor(server);
  });
  afterAll(() => server?.close());

  it('answers greedy requests identically, and seeded sampling identically for the same seed', async () => {
    const greedy = () => client.chat.completions.create({ model: 'local', messages, max_tokens: 24, temperature: 0 });
    const [a, b] = [await greedy(), await greedy()];
    expect(a.choices[0]!.message.content).toHaveLength(24);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content);

    const seeded = () => client.chat.completions.create({ model: 'local', messages, max_tokens: 24, temperature: 0.9, seed: 7 });
    const [c, d] = [await seeded(), await seeded()];
    expect(d.choices[0]!.message.content).toBe(c.choices[0]!.message.content);
    expect(a.object).toBe('chat.completion');
    expect(a.id).toMatch(/^chatcmpl-/);
  });

  it('streams chunks that add up to the non-streamed answer, then a usage chunk and [DONE]', async () => {
    const whole = await client.chat.completions.create({ model: 'local', messages, max_tokens: 16, temperature: 0 });
    const stream = await client.chat.completions.create({ model: 'local', messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(1);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]!.finish_reason).toBe('length');
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    expect(last.usage!.completion_tokens).toBe(16);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('stops at max_tokens with finish_reason length and at a stop sequence with finish_reason stop', async () => {
    const long = await client.chat.completions.create({ model: 'local', messages, max_tokens: 40, temperature: 0 });
    const text = long.choices[0]!.message.content!;
    expect(long.choices[0]!.finish_reason).toBe('length');
    expect(long.usage!.completion_tokens).toBe(40);
    expect(long.usage!.prompt_tokens).toBeGreaterThan(0);

    // A two-character stop string that first occurs in the middle of the greedy text.
    let at = 5;
    while (text.indexOf(text.slice(at, at + 2)) !== at) at++;
    const stop = text.slice(at, at + 2);
    const stopped = await client.chat.completions.create({ model: 'local', messages, max_tokens: 40, temperature: 0, stop: [stop] });
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
    expect(stopped.choices[0]!.message.content).toBe(text.slice(0, at));
  });

  it('returns parseable JSON for response_format json_object', async () => {
    const res = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'Reply in JSON.' }], max_tokens: 300, temperature: 0, response_format: { type: 'json_object' } });
    expect(res.choices[0]!.finish_reason).toBe('stop');
    expect(() => JSON.parse(res.choices[0]!.message.content!)).not.toThrow();
  });

  it('constrains output to a JSON schema for response_format json_schema', async () => {
    const res = await client.chat.completions.create({
      model: 'local', messages: [{ role: 'user', content: 'A number, please.' }], max_tokens: 300, temperature: 0,
      response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] } } },
    });
    expect(Number.isInteger(JSON.parse(res.choices[0]!.message.content!).a)).toBe(true);
  });

  it('refuses a JSON schema whose keywords the grammar would not enforce, naming where', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ type: 'object', properties: { a: { $ref: '#/defs/q' } } }, /'\$ref' at schema\.properties\.a/],
      [{ type: 'string', pattern: '^a+$' }, /'pattern' at schema/],
      [{ type: 'nonsense' }, /type "nonsense" at schema/],
      [{ type: 'object', properties: { list: { type: 'array', items: { allOf: [{ type: 'string' }] } } } }, /'allOf' at schema\.properties\.list\.items/],
    ];
    for (const [schema, message] of cases) {
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages, max_tokens: 4, response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }) });
      expect(res.status, JSON.stringify(schema)).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
    }
    // A property may be called like a keyword.
    const ok = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages, max_tokens: 40, temperature: 0, response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object', properties: { pattern: { type: 'string' }, not: { enum: ['x', 'y'] } }, required: ['pattern', 'not'] } } } }) });
    expect(ok.status).toBe(200);
  });

  it('offers tools through the chat template and accepts tool results in the history', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const plain = await client.chat.completions.create({ model: 'local', messages, max_tokens: 4, temperature: 0 });
    const withTools = await client.chat.completions.create({ model: 'local', messages, max_tokens: 4, temperature: 0, tools });
    // The function documentation is part of the rendered prompt, and counted.
    expect(withTools.usage!.prompt_tokens).toBeGreaterThan(plain.usage!.prompt_tokens + 50);
    expect(withTools.choices[0]!.finish_reason).toBe('length');

    const followUp = await client.chat.completions.create({
      model: 'local', max_tokens: 4, temperature: 0, tools,
      messages: [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '"sunny"' },
      ],
    });
    expect(followUp.usage!.prompt_tokens).toBeGreaterThan(withTools.usage!.prompt_tokens);
  });

  it('refuses a prompt longer than the context window with context_length_exceeded, streamed or not', async () => {
    for (const stream of [false, true]) {
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(3000) }], max_tokens: 5, stream }) });
      expect(res.status, `stream: ${stream}`).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('context_length_exceeded');
    }
  });

  it('stops at the end of the context window when prompt + max_tokens does not fit: finish_reason length, not a 500', async () => {
    const r = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'y'.repeat(1950) }], max_tokens: 500, temperature: 0 });
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage!.prompt_tokens + r.usage!.completion_tokens).toBeLessThanOrEqual(2048);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('samples differently per request when no seed is given (not by the wall-clock second)', async () => {
    const unseeded = () => client.chat.completions.create({ model: 'local', messages, max_tokens: 24, temperature: 1 });
    const answers = new Set<string>();
    for (let i = 0; i < 3; i++) answers.add((await unseeded()).choices[0]!.message.content ?? '');
    expect(answers.size).toBeGreaterThan(1);
  });

  it('refuses logprobs, a forced tool_choice and a function name the model cannot take with a 400 naming the parameter', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ logprobs: true }, 'logprobs'],
      [{ top_logprobs: 3 }, 'top_logprobs'],
      [{ tools, tool_choice: 'required' }, 'tool_choice'],
      [{ tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'tool_choice'],
      [{ tools: [{ type: 'function', function: { name: 'a b' } }] }, 'tools.0.function.name'],
    ];
    for (const [extra, param] of cases) {
      for (const stream of [false, true]) {
        const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages, max_tokens: 4, stream, ...extra }) });
        expect(res.status, `${param} stream ${stream}`).toBe(400);
        expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
      }
    }
  });

  it('refuses the completions and embeddings parameters it cannot honour, naming them, instead of ignoring them', async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['/v1/completions', { prompt: 'hi', logprobs: 0 }, 'logprobs'],
      ['/v1/completions', { prompt: 'hi', suffix: ' the end' }, 'suffix'],
      ['/v1/completions', { prompt: 'hi', best_of: 3 }, 'best_of'],
      ['/v1/embeddings', { model: 'local-embed', input: 'hi', dimensions: 8 }, 'dimensions'],
      ['/v1/completions', { prompt: 'x'.repeat(3000) }, 'prompt'],
    ];
    for (const [path, body, param] of cases) {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', body: JSON.stringify({ max_tokens: 4, ...body }) });
      expect(res.status, param).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    }
    const ids = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ input: [1, 2, 3] }) });
    expect(ids.status).toBe(400);
    expect(((await ids.json()) as { error: { message: string; param: string } }).error).toMatchObject({ param: 'input', message: expect.stringContaining('token ids are not supported') });
    // Its own size is fine.
    const same = await client.embeddings.create({ model: 'local-embed', input: 'hi', dimensions: 64 });
    expect(same.data[0]!.embedding).toHaveLength(64);
  });

  it('refuses an empty embedding input and one that fills the whole window with a 400', async () => {
    for (const input of ['', ['a', ''], 'a'.repeat(2047)]) {
      const res = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ model: 'local-embed', input }) });
      expect(res.status, JSON.stringify(input).slice(0, 20)).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe('input');
    }
  });

  it('embeds with the model dimension, the same input giving the same vector', async () => {
    const res = await client.embeddings.create({ model: 'local-embed', input: ['hello world', 'hello world', 'something else'] });
    expect(res.data).toHaveLength(3);
    for (const d of res.data) expect(d.embedding).toHaveLength(64);
    expect(res.data[1]!.embedding).toEqual(res.data[0]!.embedding);
    expect(res.data[2]!.embedding).not.toEqual(res.data[0]!.embedding);
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);

    const floats = await client.embeddings.create({ model: 'local-embed', input: 'hello world', encoding_format: 'float' });
    expect(floats.data[0]!.embedding).toEqual(res.data[0]!.embedding);
  });

  it('completes 4 concurrent requests with 2 sequences', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) => client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: `Request ${i}` }], max_tokens: 64, temperature: 0 })),
    );
    for (const r of results) {
      expect(r.choices[0]!.finish_reason).toBe('length');
      expect(r.usage!.completion_tokens).toBe(64);
    }
    expect(await health(server)).toMatchObject({ busy: 0, queued: 0 });
  });

  it('serves raw text completions, streamed and not', async () => {
    const whole = await client.completions.create({ model: 'local', prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
    expect(whole.object).toBe('text_completion');
    expect(whole.choices[0]!.finish_reason).toBe('length');
    expect(whole.usage).toMatchObject({ completion_tokens: 12 });
    const stream = await client.completions.create({ model: 'local', prompt: 'Once upon a time', max_tokens: 12, temperature: 0, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(whole.choices[0]!.text);
  });

  it('lists the model, reports OpenAI-shaped errors and exposes metrics', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['switchyard-tiny-llama']);
    expect(await client.models.retrieve('switchyard-tiny-llama')).toMatchObject({ id: 'switchyard-tiny-llama', object: 'model' });
    const unknown = await client.models.retrieve('gpt-5').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');

    const bad = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [] }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: 'messages', code: 'invalid_request' } });
    const notJson = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    expect((await fetch(`${server.url}/v1/nope`)).status).toBe(404);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ['switchyard_local_tokens_generated_total', 'switchyard_local_tokens_per_second', 'switchyard_local_time_to_first_token_seconds_bucket', 'switchyard_local_queue_depth', 'switchyard_local_busy_sequences']) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/switchyard_local_tokens_generated_total\{backend="switchyard-tiny-llama"\} [1-9]/);
  });
});

describe('the standalone local backend (parallel: 1, queue_size: 1)', () => {
  let server: LocalServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTinyLocalServer({ parallel: 1, queueSize: 1 });
    client = clientFor(server);
  });
  afterAll(() => server?.close());

  // max_tokens far past the window: node-llama-cpp shifts the context, so only an abort ends it soon.
  const endless = (signal: AbortSignal) => client.chat.completions.create({ model: 'local', messages, max_tokens: 100_000, temperature: 0, stream: true }, { signal });

  it('stops generating and frees the sequence when a streaming client goes away', async () => {
    const ac = new AbortController();
    const stream = await endless(ac.signal);
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) break; // leaving the loop aborts the request
    }
    const started = Date.now();
    const next = await client.chat.completions.create({ model: 'local', messages, max_tokens: 5, temperature: 0 });
    expect(next.choices[0]!.finish_reason).toBe('length');
    expect(Date.now() - started).toBeLessThan(2000);
    await until(async () => (await health(server)).busy === 0);
  });

  it('refuses with 429 and Retry-After when the queue is full', async () => {
    const running = new AbortController();
    const waiting = new AbortController();
    const first = await endless(running.signal); // holds the only sequence
    const iterator = first[Symbol.asyncIterator]();
    await iterator.next();
    const second = endless(waiting.signal).catch((e: unknown) => e); // waits in the queue
    await until(async () => (await health(server)).queued === 1);

    const refused = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages, max_tokens: 5 }) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({ error: { message: expect.any(String), type: 'requests', param: null, code: 'queue_full' } });

    waiting.abort();
    running.abort();
    await second;
    await until(async () => (await health(server)).busy === 0 && (await health(server)).queued === 0);
  });
});

describe('the standalone local backend shutting down past its grace period', () => {
  it('ends a running stream with a shutting_down event and a running whole answer with a 503', async () => {
    const server = await startTinyLocalServer({ parallel: 2, contextSize: 2048 }, { shutdownGraceMs: 150 });
    const long = (stream: boolean) =>
      fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'go on' }], max_tokens: 100000, temperature: 0, stream }) });
    const streamed = await long(true);
    expect(streamed.status).toBe(200);
    const streamText = streamed.text();
    const whole = long(false);
    await new Promise((r) => setTimeout(r, 50));
    await server.close();
    const text = await streamText;
    expect(text).toContain('"code":"shutting_down"');
    expect(text).not.toContain('[DONE]');
    const answer = await whole;
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('shutting_down');
  });
});
