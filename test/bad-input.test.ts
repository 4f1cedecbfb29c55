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
      models: { 'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini', price: { input: 0.15, output: 0.6 }, context_window: 1000 } },
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

  it('parses 5,000 levels of nesting without a stack overflow', async () => {
    const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":${'['.repeat(5000)}${']'.repeat(5000)}}]}`;
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBeLessThan(500);
    await res.arrayBuffer();
  });

  it('keeps serving after all of that', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    expect(gw.logs.some((l) => l.level === 50 && l.msg !== 'request')).toBe(false);
  });
});
