/**
 * A mock OpenAI-compatible upstream speaking OpenAI's documented wire format: chat
 * (JSON and SSE), completions, embeddings, models. Tests and the benchmark use it.
 *
 * Behaviour per request = defaults ← next queued behaviour (enqueue) ← the body's
 * `mock` field (the gateway forwards unknown fields untouched). Faults: status with a
 * body and Retry-After, connection reset mid-stream, hang, stream without [DONE],
 * an error event inside a 200 stream.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bagOfWordsEmbedding } from './bow-embedding.js';

export interface MockBehaviour {
  /** Delay before the response head, ms. */
  latencyMs?: number;
  /** SSE content chunks for streams. */
  chunks?: number;
  /** Delay between SSE chunks, ms. */
  chunkDelayMs?: number;
  /** Text of each chunk (default "tok "). */
  chunkText?: string;
  /** Text of chunk i; overrides chunks and chunkText (tests of matches split across chunks). */
  chunkTexts?: string[];
  /** Answer with this status and body instead. */
  status?: number;
  errorBody?: unknown;
  retryAfter?: string;
  /** Destroy the socket after this many SSE chunks. */
  resetAfterChunks?: number;
  /** Never answer (until the client goes away). */
  hang?: boolean;
  /** End the stream cleanly but without `data: [DONE]`. */
  omitDone?: boolean;
  /** Send an OpenAI error object as an SSE event after this many chunks, then end. */
  errorEventAfterChunks?: number;
  /** Reply with tool calls instead of text. */
  toolCall?: { name: string; arguments: string };
  /** Prompt/completion usage to report (default derived from sizes). */
  usage?: { prompt_tokens: number; completion_tokens: number };
  /** Reply text for non-stream chat (default "Hello from mock"). */
  text?: string;
  /** Non-stream: leave `usage` out of the answer, as some servers do. */
  noUsage?: boolean;
}

export interface RecordedRequest {
  path: string;
  method: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown> | undefined;
  rawBody: string;
  /** When the response finished, or undefined. */
  finishedAt?: number;
  /** When the client (the gateway) closed the connection before the end. */
  abortedAt?: number;
  /** Chunks written so far (streams). */
  chunksSent: number;
}

export interface MockUpstream {
  url: string;
  port: number;
  requests: RecordedRequest[];
  defaults: MockBehaviour;
  enqueue(...b: MockBehaviour[]): void;
  reset(): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startMockUpstream(opts: { port?: number; host?: string; defaults?: MockBehaviour; record?: boolean } = {}): Promise<MockUpstream> {
  const queue: MockBehaviour[] = [];
  const requests: RecordedRequest[] = [];
  const defaults: MockBehaviour = { chunks: 5, chunkDelayMs: 0, latencyMs: 0, ...opts.defaults };
  const record = opts.record !== false;
  let seq = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.method === 'POST' ? await readBody(req) : '';
    let body: Record<string, unknown> | undefined;
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
    } catch {
      body = undefined;
    }
    const rec: RecordedRequest = { path: req.url ?? '', method: req.method ?? '', headers: req.headers, body, rawBody: raw, chunksSent: 0 };
    if (record) requests.push(rec);
    res.on('close', () => {
      if (!res.writableFinished) rec.abortedAt = Date.now();
      else rec.finishedAt = Date.now();
    });
    const b: MockBehaviour = { ...defaults, ...(queue.shift() ?? {}), ...((body?.mock as MockBehaviour) ?? {}) };
    if (b.hang) return;
    if (b.latencyMs) await sleep(b.latencyMs);

    if (b.status && b.status >= 400) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (b.retryAfter) headers['retry-after'] = b.retryAfter;
      res.writeHead(b.status, headers);
      res.end(JSON.stringify(b.errorBody ?? { error: { message: `mock failure ${b.status}`, type: 'server_error', param: null, code: null } }));
      return;
    }

    const path = (req.url ?? '').split('?')[0];
    const model = typeof body?.model === 'string' ? body.model : 'mock';
    const id = `chatcmpl-mock-${++seq}`;
    const created = Math.floor(Date.now() / 1000);

    if (path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created, owned_by: 'mock' }] }));
      return;
    }
    if (path === '/v1/embeddings') {
      const inputs = Array.isArray(body?.input) ? (body!.input as string[]) : [String(body?.input ?? '')];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          object: 'list',
          model,
          data: inputs.map((t, index) => {
            const v = bagOfWordsEmbedding(String(t));
            // The openai SDK asks for base64 by default (little-endian float32).
            const embedding = body?.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
            return { object: 'embedding', index, embedding };
          }),
          usage: { prompt_tokens: inputs.join(' ').length >> 2, total_tokens: inputs.join(' ').length >> 2 },
        }),
      );
      return;
    }
    const isChat = path === '/v1/chat/completions';
    if (!isChat && path !== '/v1/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${path}`, type: 'invalid_request_error', param: null, code: null } }));
      return;
    }
    const promptTokens = b.usage?.prompt_tokens ?? Math.max(1, raw.length >> 2);

    if (body?.stream === true) {
      const chunks = b.chunkTexts?.length ?? b.chunks ?? 5;
      const textOf = (i: number) => b.chunkTexts?.[i] ?? b.chunkText ?? 'tok ';
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const obj = isChat ? 'chat.completion.chunk' : 'text_completion';
      const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
      const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      const usageField = includeUsage ? { usage: null } : {};
      if (isChat) send({ id, object: obj, created, model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], ...usageField });
      for (let i = 0; i < chunks; i++) {
        if (res.destroyed) return;
        if (b.resetAfterChunks !== undefined && i === b.resetAfterChunks) {
          await sleep(20); // let what was written reach the gateway first
          res.socket?.destroy();
          return;
        }
        if (b.errorEventAfterChunks !== undefined && i === b.errorEventAfterChunks) {
          send({ error: { message: 'mock in-stream failure', type: 'server_error', param: null, code: 'mock_error' } });
          res.end();
          return;
        }
        if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
        if (res.destroyed) return;
        if (isChat && b.toolCall && i === 0) {
          send({ id, object: obj, created, model, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: b.toolCall.name, arguments: b.toolCall.arguments } }] }, finish_reason: null }], ...usageField });
        } else {
          send(isChat
            ? { id, object: obj, created, model, choices: [{ index: 0, delta: { content: textOf(i) }, finish_reason: null }], ...usageField }
            : { id, object: obj, created, model, choices: [{ index: 0, text: textOf(i), finish_reason: null }], ...usageField });
        }
        rec.chunksSent++;
      }
      if (b.resetAfterChunks !== undefined && b.resetAfterChunks >= chunks) {
        await sleep(20);
        res.socket?.destroy();
        return;
      }
      const finish = b.toolCall ? 'tool_calls' : 'stop';
      send(isChat
        ? { id, object: obj, created, model, choices: [{ index: 0, delta: {}, finish_reason: finish }], ...usageField }
        : { id, object: obj, created, model, choices: [{ index: 0, text: '', finish_reason: finish }], ...usageField });
      if (includeUsage) {
        const completion = b.usage?.completion_tokens ?? chunks;
        send({ id, object: obj, created, model, choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion } });
      }
      if (!b.omitDone) res.write('data: [DONE]\n\n');
      res.end();
      return;
    }

    const content = b.text ?? 'Hello from mock';
    const completion = b.usage?.completion_tokens ?? Math.max(1, content.length >> 2);
    const usage = { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
    const answer = isChat
      ? {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            b.toolCall
              ? { index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: b.toolCall }] }, finish_reason: 'tool_calls' }
              : { index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' },
          ],
          usage,
        }
      : { id, object: 'text_completion', created, model, choices: [{ index: 0, text: content, finish_reason: 'stop' }], usage };
    if (b.noUsage) delete (answer as { usage?: unknown }).usage;
    const out = JSON.stringify(answer);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  }

  const server: Server = createServer({ keepAliveTimeout: 60000 }, (req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    defaults,
    enqueue: (...b) => queue.push(...b),
    reset() {
      queue.length = 0;
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
