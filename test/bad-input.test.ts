/**
 * Bad input never crashes the gateway and always gets a clear OpenAI-style error:
 * a table of malformed requests, each answered 4xx with an {"error": {...}} body, and
 * the gateway still serving afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { mockConfig, startTestGateway, type TestGateway } from './support/gateway.js';

let mock: MockUpstream;
let gw: TestGateway;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(
    mockConfig(mock.url, {
      models: {
        'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini', price: { input: 0.15, output: 0.6 }, context_window: 1000 },
        renamed: { backend: 'mock', model: 'gpt-4o-mini' },
      },
      cache: { exact: { enabled: true } },
      routes: [{ name: 'all', match: { model: '*' }, context: 'reject', filters: { pii: { prompts: true } } }],
    }),
  );
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});

const CASES: Array<[string, string, number]> = [
  ['empty body', '', 400],
  ['not JSON', '{"model":', 400],
  ['a JSON array', '[1,2,3]', 400],
  ['a JSON string', '"hello"', 400],
  ['null', 'null', 400],
  ['model missing', '{"messages":[{"role":"user","content":"x"}]}', 400],
  ['model a number', '{"model":42,"messages":[{"role":"user","content":"x"}]}', 400],
  ['unknown model', '{"model":"nope","messages":[{"role":"user","content":"x"}]}', 404],
  ['messages missing', '{"model":"gpt-4o-mini"}', 400],
  ['messages an object', '{"model":"gpt-4o-mini","messages":{"role":"user"}}', 400],
  ['messages empty', '{"model":"gpt-4o-mini","messages":[]}', 400],
  ['max_tokens negative', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":-1}', 400],
  ['max_tokens fractional', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":1.5}', 400],
  ['max_tokens a string', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":"10"}', 400],
  ['max_completion_tokens negative', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_completion_tokens":-5}', 400],
  ['max_completion_tokens a string', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_completion_tokens":"lots"}', 400],
  ['max_completion_tokens beyond any integer', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_completion_tokens":1e308}', 400],
  ['model longer than 512 characters', `{"model":"${'m'.repeat(20000)}","messages":[{"role":"user","content":"x"}]}`, 400],
  ['nested 200 levels deep', `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"x":${'['.repeat(200)}${']'.repeat(200)}}`, 400],
  ['max_tokens beyond the context window', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":5000}', 400],
];

describe('bad input', () => {
  it.each(CASES)('answers %s with an OpenAI error', async (_name, body, status) => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error?: { message?: unknown; type?: unknown; code?: unknown } };
    expect(typeof json.error?.message).toBe('string');
    expect(typeof json.error?.type).toBe('string');
    expect(json.error).toHaveProperty('param');
    expect(json.error).toHaveProperty('code');
  });

  // Message shapes are the backend's to judge (it knows its own rules); the gateway must only survive them.
  it('survives odd message shapes without a 500', async () => {
    const odd = [
      [{ role: 'user', content: null }],
      [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }],
      [{ role: 'user', content: [{ type: 'mystery', data: 1 }] }],
      [{ role: 'tool', content: 'orphan tool result', tool_call_id: 'x' }],
      [{ role: 42, content: 'x' }],
      ['just a string'],
      [null],
    ];
    for (const messages of odd) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages }) });
      expect(res.status, JSON.stringify(messages)).toBeLessThan(500);
      await res.arrayBuffer();
    }
  });

  it('refuses 5,000 levels of nesting with a 400, wherever they are and whatever would walk them', async () => {
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const bodies = [
      `{"model":"gpt-4o-mini","messages":[{"role":"user","content":${deep}}]}`,
      // temperature 0: the exact cache would canonicalise the body for its key.
      `{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"x"}],"x":${deep}}`,
      // an alias whose upstream name differs: the body would be re-serialised.
      `{"model":"renamed","messages":[{"role":"user","content":"x"}],"x":${deep}}`,
    ];
    for (const body of bodies) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status, body.slice(0, 80)).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/nested more than 128 levels/);
    }
  });

  it('accepts a body nested 100 levels deep (deep tool schemas are real)', async () => {
    let schema: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 45; i++) schema = { type: 'object', properties: { child: schema } };
    const tools = [{ type: 'function', function: { name: 'deep', parameters: schema } }];
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], tools }) });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  it('answers a malformed percent-escape in a path with a 400 and keeps serving', async () => {
    for (const [method, path] of [['GET', '/v1/models/%'], ['GET', '/v1/models/%E0%A4%A'], ['POST', '/admin/keys/%/reset']]) {
      const res = await fetch(`${gw.url}${path}`, { method });
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    }
    expect((await fetch(`${gw.url}/health`)).status).toBe(200);
  });

  it('does not take inherited object properties for model ids', async () => {
    for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const res = await fetch(`${gw.url}/v1/models/${id}`);
      expect(res.status, id).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    }
    expect((await fetch(`${gw.url}/v1/models/gpt-4o-mini`)).status).toBe(200);
  });

  it('keeps serving after all of that', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    expect(gw.logs.some((l) => l.level === 50 && l.msg !== 'request')).toBe(false);
  });
});
