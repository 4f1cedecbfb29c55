/**
 * An OpenAI-compatible upstream that misbehaves on request, the way real servers do
 * (vLLM, llama.cpp, proxies in between): the behaviour is picked by `case:NAME` in the
 * request body. Used by test/upstream-quirks.test.ts; the well-behaved mock is
 * mock-upstream.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface QuirkyUpstream {
  url: string;
  /** Requests seen per case. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

const chunk = (content: string) => JSON.stringify({ id: 'q', object: 'chat.completion.chunk', created: 1, model: 'q', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
const answer = (content: string) => JSON.stringify({ id: 'q', object: 'chat.completion', created: 1, model: 'q', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
const sseHead = { 'content-type': 'text/event-stream' };

type Handler = (req: IncomingMessage, res: ServerResponse, auth: string) => void;

/** An Anthropic Messages stream event (for the `type: anthropic` backend's cases). */
const antEvent = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** Calls of the alternating case so far (odd calls fail). */
let alternating = 0;

const CASES: Record<string, Handler> = {
  // A 200 event-stream head, then the connection drops before any event.
  'head-reset'(_req, res) {
    res.writeHead(200, sseHead);
    res.flushHeaders();
    setTimeout(() => res.socket?.destroy(), 20);
  },
  // The same on the 1st, 3rd... call; a proper stream on the 2nd, 4th... (a retry succeeds).
  'head-reset-then-ok'(_req, res) {
    res.writeHead(200, sseHead);
    if (++alternating % 2 === 1) {
      res.flushHeaders();
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    res.end(`data: ${chunk('second try')}\n\ndata: [DONE]\n\n`);
  },
  // Anthropic: message_start (output_tokens: 1, provisional), 4,000 characters of text,
  // then the connection drops: no message_delta with the real count ever comes.
  'anthropic-cut'(_req, res) {
    res.writeHead(200, sseHead);
    res.write(antEvent('message_start', { message: { id: 'msg_cut', usage: { input_tokens: 12, output_tokens: 1 } } }));
    res.write(antEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
    for (let i = 0; i < 40; i++) res.write(antEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'y'.repeat(100) } }));
    setTimeout(() => res.socket?.destroy(), 50);
  },
  // A stream of nothing but a tool call with 4,000 characters of arguments, and no usage.
  'tools-no-usage'(_req, res) {
    res.writeHead(200, sseHead);
    const tc = (delta: Record<string, unknown>, finish: string | null = null) => JSON.stringify({ id: 'q', object: 'chat.completion.chunk', created: 1, model: 'q', choices: [{ index: 0, delta, finish_reason: finish }] });
    let out = `data: ${tc({ role: 'assistant', tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'save', arguments: '' } }] })}\n\n`;
    for (let i = 0; i < 40; i++) out += `data: ${tc({ tool_calls: [{ index: 0, function: { arguments: 'z'.repeat(100) } }] })}\n\n`;
    res.end(`${out}data: ${tc({}, 'tool_calls')}\n\ndata: [DONE]\n\n`);
  },
  // One event whose data spans two `data:` lines (valid SSE; joined with \n by parsers).
  multiline(_req, res) {
    res.writeHead(200, sseHead);
    const json = chunk('multi');
    const cut = json.indexOf('"choices"');
    res.end(`data: ${json.slice(0, cut)}\ndata: ${json.slice(cut)}\n\ndata: [DONE]\n\n`);
  },
  // Keep-alive comments while "thinking", then the answer.
  keepalive(_req, res) {
    res.writeHead(200, sseHead);
    res.write(': ping\n\n');
    setTimeout(() => res.write(': ping\n\n'), 100);
    setTimeout(() => res.end(`data: ${chunk('after pings')}\n\ndata: [DONE]\n\n`), 250);
  },
  // One event, then `data: ` and 20 MiB with no newline: an event that never ends.
  async 'endless-event'(_req, res) {
    res.writeHead(200, sseHead);
    res.write(`data: ${chunk('first')}\n\ndata: `);
    const mib = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 20 && !res.destroyed; i++) {
      if (!res.write(mib)) await new Promise((r) => res.once('drain', r));
    }
  },
  // [DONE], then the connection is held open and never ended.
  'done-hold'(_req, res) {
    res.writeHead(200, sseHead);
    res.write(`data: ${chunk('held')}\n\ndata: [DONE]\n\n`);
  },
  // Bare CR line endings, the last event not terminated by a blank line.
  'bare-cr'(_req, res) {
    res.writeHead(200, sseHead);
    res.end(`data: ${chunk('cr')}\r\rdata: [DONE]\r`);
  },
  // The upstream echoes the credential it got, inside a 200 stream and a 200 answer.
  'echo-stream'(_req, res, auth) {
    res.writeHead(200, sseHead);
    res.end(`data: ${chunk('hi')}\n\ndata: ${JSON.stringify({ error: { message: `Incorrect API key provided: ${auth}`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } })}\n\n`);
  },
  'echo-json'(_req, res, auth) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(answer(`your key is ${auth}`));
  },
  // The key JSON-escaped (\u002d for '-') in a partial error the gateway completes and re-serialises.
  'echo-escaped'(_req, res, auth) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(`{"error":{"message":"key: ${auth.replaceAll('-', '\\u002d')}"}}`);
  },
  'retry-after-junk'(_req, res, auth) {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': auth });
    res.end('{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}');
  },
  redirect(_req, res) {
    res.writeHead(301, { location: 'http://elsewhere.invalid/v1/chat/completions' });
    res.end();
  },
  'status-600'(_req, res) {
    res.writeHead(600, { 'content-type': 'application/json' });
    res.end(answer('nonsense status'));
  },
  'html-200'(_req, res) {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body>Bad Gateway</body></html>');
  },
  'empty-200'(_req, res) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '0' });
    res.end();
  },
  'gzip-200'(_req, res) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    res.end(gzipSync(answer('compressed')));
  },
  // A server that ignores stream: true.
  'json-for-stream'(_req, res) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(answer('not a stream'));
  },
  // vLLM's older in-stream error shape.
  'vllm-error'(_req, res) {
    res.writeHead(200, sseHead);
    res.end(`data: ${chunk('partial')}\n\ndata: {"object":"error","message":"boom","type":"BadRequestError","param":null,"code":400}\n\ndata: [DONE]\n\n`);
  },
  // A whole answer trickling in one byte at a time, 200 ms apart: never a gap above a second.
  trickle(_req, res) {
    res.writeHead(200, { 'content-type': 'application/json' });
    const body = answer('slow');
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed || i >= body.length) {
        clearInterval(t);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(body[i++]);
    }, 200);
    res.on('close', () => clearInterval(t));
  },
  // A whole answer beyond the gateway's 64 MiB limit (65 MiB of spaces inside a JSON object).
  huge(_req, res) {
    res.writeHead(200, { 'content-type': 'application/json' });
    const mib = Buffer.alloc(1024 * 1024, 0x20);
    res.write('{"pad":"');
    let sent = 0;
    const more = () => {
      while (sent < 65) {
        sent++;
        if (!res.write(mib)) return void res.once('drain', more);
      }
      res.end('"}');
    };
    more();
  },
  // An error event, then the stream kept open (pings) and never ended.
  'error-hold'(_req, res) {
    res.writeHead(200, sseHead);
    res.write(`data: ${chunk('partial')}\n\ndata: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}\n\n`);
    const t = setInterval(() => res.write(': ping\n\n'), 100);
    res.on('close', () => clearInterval(t));
  },
  // Anthropic Messages API (type: anthropic backends post to /v1/messages).
  'ant-echo-escaped'(req, res) {
    const key = String(req.headers['x-api-key'] ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"id":"msg_q","type":"message","role":"assistant","content":[{"type":"text","text":"your key is ${key.replaceAll('S', '\\u0053')}"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":5}}`);
  },
  'ant-error-pings'(_req, res) {
    res.writeHead(200, sseHead);
    const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    res.write(ev('message_start', { message: { id: 'msg_e', usage: { input_tokens: 3, output_tokens: 1 } } }) + ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) + ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'partial' } }) + ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }));
    const t = setInterval(() => res.write(ev('ping', {})), 100);
    res.on('close', () => clearInterval(t));
  },
  // Never answers.
  hang() {},
  'not-implemented'(_req, res) {
    res.writeHead(501, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"no such thing here","type":"server_error","param":null,"code":null}}');
  },
};

export async function startQuirkyUpstream(): Promise<QuirkyUpstream> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      const name = /case:([\w-]+)/.exec(body)?.[1] ?? '';
      hits.set(name, (hits.get(name) ?? 0) + 1);
      const handler = CASES[name];
      if (!handler) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(answer('plain'));
        return;
      }
      handler(req, res, String(req.headers.authorization ?? ''));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
