/**
 * A node:http server speaking Anthropic's documented Messages wire format
 * (https://docs.anthropic.com/en/api/messages, .../messages-streaming, .../errors):
 * JSON and SSE answers, tool use, errors, with every request recorded.
 *
 * Replies come from a FIFO of scripted replies (`enqueue`); with none queued it answers
 * "You said: <last user text>", or calls the first tool when tool_choice forces one.
 * Streams are written in many small writes with pings in between, as the real API does.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

export type MockAnthropicReply =
  | { kind: 'text'; text: string; stopReason?: string; usage?: { input_tokens: number; output_tokens: number; cache_read_input_tokens?: number } }
  | { kind: 'tool_use'; name: string; input: Record<string, unknown>; text?: string; id?: string }
  | { kind: 'error'; status: number; errorType: string; message: string; headers?: Record<string, string> }
  /** A 200 stream that sends some text and then an `event: error` (e.g. overloaded mid-stream). */
  | { kind: 'stream_error'; text: string; errorType: string; message: string };

export interface MockAnthropic {
  url: string;
  port: number;
  requests: RecordedRequest[];
  enqueue(...replies: MockAnthropicReply[]): void;
  /** Forgets recorded requests and scripted replies not used yet. */
  reset(): void;
  close(): Promise<void>;
}

export interface MockAnthropicOptions {
  /** When set, requests without this x-api-key get a 401 authentication_error. */
  apiKey?: string;
}

let seq = 0;

function lastUserText(body: Record<string, unknown>): string {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<{ role: string; content: unknown }>) : [];
  const last = [...messages].reverse().find((m) => m.role === 'user');
  if (!last) return '';
  if (typeof last.content === 'string') return last.content;
  if (!Array.isArray(last.content)) return '';
  return last.content
    .map((b: { type?: string; text?: string; content?: unknown }) => (b.type === 'text' ? b.text : b.type === 'tool_result' ? String(typeof b.content === 'string' ? b.content : '[tool result]') : ''))
    .join(' ');
}

function defaultReply(body: Record<string, unknown>): MockAnthropicReply {
  const tools = body.tools as Array<{ name: string }> | undefined;
  const choice = body.tool_choice as { type?: string; name?: string } | undefined;
  if (tools?.length && (choice?.type === 'any' || choice?.type === 'tool')) {
    return { kind: 'tool_use', name: choice.type === 'tool' && choice.name ? choice.name : tools[0].name, input: { city: 'Paris', unit: 'celsius' } };
  }
  return { kind: 'text', text: `You said: ${lastUserText(body)}` };
}

function blocksOf(reply: Extract<MockAnthropicReply, { kind: 'text' | 'tool_use' }>): Array<Record<string, unknown>> {
  if (reply.kind === 'text') return [{ type: 'text', text: reply.text }];
  const blocks: Array<Record<string, unknown>> = [];
  if (reply.text) blocks.push({ type: 'text', text: reply.text });
  blocks.push({ type: 'tool_use', id: reply.id ?? `toolu_${++seq}`, name: reply.name, input: reply.input });
  return blocks;
}

function sse(res: ServerResponse, type: string, data: Record<string, unknown>): void {
  res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
}

/** Splits s into pieces of up to n characters (text deltas and partial JSON arrive in pieces). */
function pieces(s: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

function writeStream(res: ServerResponse, model: string, reply: MockAnthropicReply): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const usage = reply.kind === 'text' && reply.usage ? reply.usage : { input_tokens: 12, output_tokens: 1 };
  sse(res, 'message_start', {
    message: { id: `msg_${++seq}`, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
  });
  sse(res, 'ping', {});
  if (reply.kind === 'stream_error') {
    sse(res, 'content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    for (const p of pieces(reply.text, 4)) sse(res, 'content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } });
    sse(res, 'error', { error: { type: reply.errorType, message: reply.message } });
    res.end();
    return;
  }
  if (reply.kind === 'error') throw new Error('unreachable');
  blocksOf(reply).forEach((b, index) => {
    if (b.type === 'text') {
      sse(res, 'content_block_start', { index, content_block: { type: 'text', text: '' } });
      for (const p of pieces(b.text as string, 5)) sse(res, 'content_block_delta', { index, delta: { type: 'text_delta', text: p } });
    } else {
      sse(res, 'content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
      sse(res, 'content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
      for (const p of pieces(JSON.stringify(b.input), 7)) sse(res, 'content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: p } });
    }
    sse(res, 'content_block_stop', { index });
    sse(res, 'ping', {});
  });
  const stopReason = reply.kind === 'tool_use' ? 'tool_use' : (reply.stopReason ?? 'end_turn');
  const outputTokens = reply.kind === 'text' && reply.usage ? reply.usage.output_tokens : 9;
  sse(res, 'message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } });
  sse(res, 'message_stop', {});
  res.end();
}

function writeJson(res: ServerResponse, model: string, reply: Extract<MockAnthropicReply, { kind: 'text' | 'tool_use' }>): void {
  const usage = reply.kind === 'text' && reply.usage ? reply.usage : { input_tokens: 12, output_tokens: 9 };
  const stopReason = reply.kind === 'tool_use' ? 'tool_use' : (reply.stopReason ?? 'end_turn');
  const body = { id: `msg_${++seq}`, type: 'message', role: 'assistant', model, content: blocksOf(reply), stop_reason: stopReason, stop_sequence: null, usage };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function writeError(res: ServerResponse, status: number, errorType: string, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ type: 'error', error: { type: errorType, message } }));
}

export async function startMockAnthropic(opts: MockAnthropicOptions = {}): Promise<MockAnthropic> {
  const requests: RecordedRequest[] = [];
  const queue: MockAnthropicReply[] = [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      return writeError(res, 400, 'invalid_request_error', 'There was an issue with the format of the request body.');
    }
    const path = (req.url ?? '/').split('?')[0];
    requests.push({ method: req.method ?? 'GET', path, headers: req.headers, body });
    if (req.method !== 'POST' || path !== '/v1/messages') return writeError(res, 404, 'not_found_error', `Not found: ${path}`);
    if (opts.apiKey !== undefined && req.headers['x-api-key'] !== opts.apiKey) return writeError(res, 401, 'authentication_error', 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return writeError(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
    if (typeof body.max_tokens !== 'number') return writeError(res, 400, 'invalid_request_error', 'max_tokens: Field required');
    const reply = queue.shift() ?? defaultReply(body);
    if (reply.kind === 'error') return writeError(res, reply.status, reply.errorType, reply.message, reply.headers);
    const model = String(body.model ?? 'claude');
    if (body.stream === true) return writeStream(res, model, reply);
    if (reply.kind === 'stream_error') return writeError(res, 529, reply.errorType, reply.message);
    writeJson(res, model, reply);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) writeError(res, 500, 'api_error', 'mock failure');
      else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    enqueue: (...replies) => queue.push(...replies),
    reset: () => {
      requests.length = 0;
      queue.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
