// Requests to the gateway's OpenAI-compatible API, with checks. Used by every scenario.
import http from 'k6/http';
import { check } from 'k6';
import { HEADERS, MAX_TOKENS, MODEL, URLS } from './config.js';

const PROMPTS = [
  'Say hello in one short sentence.',
  'Name three primary colours.',
  'What is 17 times 3? Answer with the number only.',
  'Write a haiku about load balancers.',
  'Give one tip for writing clear commit messages.',
];

/** A chat request body; `seed` varies the prompt unless `fixed` asks for identical requests. */
export function chatBody({ stream = false, seed = 0, fixed = false, maxTokens = MAX_TOKENS, extra = {} } = {}) {
  const prompt = fixed ? PROMPTS[0] : `${PROMPTS[seed % PROMPTS.length]} (#${seed})`;
  const body = {
    model: MODEL,
    messages: [{ role: 'user', content: prompt }],
    max_tokens: maxTokens,
    temperature: 0,
    ...extra,
  };
  if (stream) body.stream = true;
  return JSON.stringify(body);
}

/** POST /v1/chat/completions (JSON). Returns the k6 response. */
export function chat(opts = {}, params = {}) {
  const res = http.post(URLS.chat, chatBody(opts), { headers: HEADERS, tags: { name: 'chat' }, ...params });
  check(res, {
    'chat: status 200': (r) => r.status === 200,
    'chat: has a choice': (r) => r.status !== 200 || (r.json('choices.0.message') !== undefined && r.json('choices.0.message') !== null),
    'chat: reports usage': (r) => r.status !== 200 || Number(r.json('usage.total_tokens')) > 0,
  });
  return res;
}

/**
 * Parses an SSE body as the gateway sends it: `data: {...}` events ending with
 * `data: [DONE]`. k6's http module buffers the whole response, so chunks are
 * counted after the fact.
 */
export function parseSse(body) {
  const events = [];
  let done = false;
  for (const line of String(body || '').split('\n')) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    try {
      events.push(JSON.parse(data));
    } catch (_e) {
      events.push({ unparsable: data });
    }
  }
  return { events, done };
}

/** POST a streaming chat request; returns { res, events, done }. */
export function chatStream(opts = {}, params = {}) {
  const res = http.post(URLS.chat, chatBody({ ...opts, stream: true }), {
    headers: HEADERS,
    tags: { name: 'chat_stream' },
    responseType: 'text',
    ...params,
  });
  const { events, done } = parseSse(res.body);
  check(res, {
    'stream: status 200': (r) => r.status === 200,
    'stream: text/event-stream': (r) => String(r.headers['Content-Type'] || '').startsWith('text/event-stream'),
    'stream: ends with [DONE]': () => done,
    'stream: no error event': () => !events.some((e) => e.error),
    'stream: at least one content chunk': () => events.some((e) => e.choices && e.choices.length > 0),
  });
  return { res, events, done };
}
