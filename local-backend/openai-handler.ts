/**
 * The one transport-free OpenAI handler of the local backend: (path, parsed body, signal)
 * in, status + headers + body bytes out. The standalone HTTP server (server.ts) and the
 * gateway's in-process client (in-process-client.ts) both call it, so the two deployments
 * speak byte-identical OpenAI. Every failure leaves as an OpenAI error body through the
 * gateway's error table (gateway/errors.ts).
 */
import type { ChatModelFunctions, GbnfJsonSchema, LlamaContextSequence, LlamaGrammar } from 'node-llama-cpp';
import type { z } from 'zod';
import { GatewayError, toOpenAIError } from '../gateway/errors.js';
import { AsyncChannel } from './async-channel.js';
import { createFlushTick } from './flush-tick.js';
import { toChatHistory, toFunctions } from './chat-messages.js';
import type { LoadedModel, LocalEngine } from './engine.js';
import { generateChat, generateCompletion, type GenerationResult, type SamplingParams } from './generate.js';
import { ChatRequestSchema, CompletionRequestSchema, EmbeddingRequestSchema, type ChatRequest, type CompletionRequest } from './openai-schemas.js';
import { chatCompletion, createChatChunks, createCompletionChunks, embeddingList, json, modelList, modelObject, newId, SSE_DONE, textCompletion, type ResponseMeta } from './openai-wire.js';
import { QueueFullError } from './slot-pool.js';

export interface HandlerResponse {
  status: number;
  headers: Record<string, string>;
  body: AsyncIterable<Uint8Array>;
}

/** `path` may carry the `/v1` prefix or not; `body` is the parsed JSON (undefined for GET). */
export type OpenAIHandler = (path: string, body: unknown, signal: AbortSignal) => Promise<HandlerResponse>;

export interface HandlerOptions {
  /** Unexpected errors (the client only sees a generic 500). */
  onError?: (err: unknown) => void;
}

/**
 * Streamed tokens are handed to the transport at most every 16 ms (the first token and the
 * end at once; at least 60 deliveries a second, below what a reader notices), at one tick
 * shared by all streams of the handler (flush-tick.ts). A loopback
 * socket write costs the event loop ~50 µs, which at 4 ms meant ~10 µs per token of a
 * fast model at 4 concurrent streams (loadtest/bench/local-backend.ts); a model slower
 * than ~60 tokens/s per stream is unaffected.
 */
const STREAM_COALESCE_MS = 16;
const JSON_HEADERS = { 'content-type': 'application/json' };
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function jsonResponse(payload: unknown, status = 200): HandlerResponse {
  return { status, headers: JSON_HEADERS, body: once(json(payload)) };
}

/** The abort reason a server gives its requests when its shutdown grace period ends. */
export class ShutdownError extends Error {
  constructor() {
    super('The server is shutting down; retry the request.');
    this.name = 'ShutdownError';
  }
}

function toError(err: unknown) {
  const mapped = err instanceof QueueFullError
    ? new GatewayError('queue_full', { headers: { 'retry-after': String(err.retryAfterSeconds) } })
    : err instanceof ShutdownError
      ? new GatewayError('shutting_down', { message: err.message, headers: { 'retry-after': '1' } })
      : err;
  const e = toOpenAIError(mapped);
  return { ...e, body: typeof e.body === 'string' ? new TextEncoder().encode(e.body) : e.body };
}

export function errorResponse(err: unknown): HandlerResponse {
  const e = toError(err);
  return { status: e.status, headers: { ...JSON_HEADERS, ...e.headers }, body: once(e.body) };
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.join('.') || null;
  throw new GatewayError('invalid_request', { message: param ? `${param}: ${issue.message}` : issue.message, param });
}

function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop == null) return [];
  return (typeof stop === 'string' ? [stop] : stop).filter((s) => s.length > 0);
}

function sampling(req: ChatRequest | CompletionRequest, maxTokens: number | null | undefined, grammar?: LlamaGrammar): SamplingParams {
  return {
    maxTokens: maxTokens ?? undefined,
    // OpenAI's defaults (temperature 1, top_p 1), not llama.cpp's 0.8.
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? undefined,
    seed: req.seed ?? undefined,
    stop: stopList(req.stop),
    frequencyPenalty: req.frequency_penalty ?? undefined,
    presencePenalty: req.presence_penalty ?? undefined,
    grammar,
  };
}

/** Keywords the grammar builder ignores rather than enforces: accepting them would promise what the output does not keep. */
const UNENFORCED_KEYWORDS = ['$ref', '$defs', 'definitions', 'pattern', 'patternProperties', 'allOf', 'not', 'if', 'then', 'else', 'dependentRequired', 'dependentSchemas', 'unevaluatedProperties', 'contains'];
const JSON_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

/** The first part of a schema that would not be enforced (by path), or undefined. */
export function unsupportedSchemaPart(schema: unknown, path = 'schema'): string | undefined {
  if (Array.isArray(schema)) {
    for (const [i, item] of schema.entries()) {
      const found = unsupportedSchemaPart(item, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (!schema || typeof schema !== 'object') return undefined;
  const o = schema as Record<string, unknown>;
  for (const k of UNENFORCED_KEYWORDS) if (k in o) return `'${k}' at ${path}`;
  const types = Array.isArray(o.type) ? o.type : o.type === undefined ? [] : [o.type];
  for (const t of types) if (typeof t !== 'string' || !JSON_TYPES.has(t)) return `type ${JSON.stringify(t)} at ${path}`;
  for (const [k, v] of Object.entries(o)) {
    // Schemas nest under these; `enum`/`const` values and `default`/examples are data, not schemas.
    if (k === 'enum' || k === 'const' || k === 'default' || k === 'examples') continue;
    if (k === 'properties' && v && typeof v === 'object' && !Array.isArray(v)) {
      // Property names are the caller's ("pattern" is a fine name): only their schemas are checked.
      for (const [name, sub] of Object.entries(v)) {
        const found = unsupportedSchemaPart(sub, `${path}.properties.${name}`);
        if (found) return found;
      }
      continue;
    }
    if (v && typeof v === 'object') {
      const found = unsupportedSchemaPart(v, `${path}.${k}`);
      if (found) return found;
    }
  }
  return undefined;
}

async function grammarFor(req: ChatRequest, loaded: LoadedModel, functions: ChatModelFunctions | undefined): Promise<LlamaGrammar | undefined> {
  const format = req.response_format?.type;
  if (format === undefined || format === 'text') return undefined;
  if (functions) throw new GatewayError('invalid_request', { message: 'response_format cannot be combined with tools on a local model.', param: 'response_format' });
  if (format === 'json_object') return loaded.jsonGrammar();
  const schema = req.response_format?.json_schema?.schema;
  if (!schema) throw new GatewayError('invalid_request', { message: 'response_format.json_schema.schema is required.', param: 'response_format.json_schema.schema' });
  const unsupported = unsupportedSchemaPart(schema);
  if (unsupported) throw new GatewayError('invalid_request', { message: `Unsupported JSON schema: ${unsupported} cannot be enforced by this local model.`, param: 'response_format.json_schema.schema' });
  try {
    return await loaded.llama.createGrammarForJsonSchema<GbnfJsonSchema>(schema as GbnfJsonSchema);
  } catch (err) {
    throw new GatewayError('invalid_request', { message: `Unsupported JSON schema: ${(err as Error).message}`, param: 'response_format.json_schema.schema' });
  }
}

export function createOpenAIHandler(engine: LocalEngine, opts: HandlerOptions = {}): OpenAIHandler {
  const created = Math.floor(Date.now() / 1000);
  /** One per handler, so one per server: the writes of all streams leave in one pass. */
  const flushTick = createFlushTick(STREAM_COALESCE_MS);
  const metaFor = (prefix: string, model: string | undefined): ResponseMeta => ({ id: newId(prefix), created: Math.floor(Date.now() / 1000), model: model ?? engine.options.modelId });

  /**
   * Runs one generation on a leased sequence. Streaming: returns once the first bytes
   * exist (or the generation failed before any, which then gets its own status).
   */
  async function run(
    signal: AbortSignal,
    stream: boolean,
    generate: (sequence: LlamaContextSequence, s: AbortSignal, onText: (t: string) => void, onFirstToken: () => void) => Promise<GenerationResult>,
    frames: { start?: () => string; text: (t: string) => string; end: (r: GenerationResult) => string[] },
    whole: (r: GenerationResult) => unknown,
  ): Promise<HandlerResponse> {
    const arrival = performance.now();
    const ac = new AbortController();
    const combined = AbortSignal.any([signal, ac.signal]);
    const lease = await engine.acquireSequence(combined);
    let firstTokenMs: number | undefined;
    const onFirstToken = () => {
      firstTokenMs = performance.now();
      engine.observeFirstToken((firstTokenMs - arrival) / 1000);
    };
    const finish = (r: GenerationResult) => engine.recordGeneration(r.completionTokens, firstTokenMs, performance.now());

    if (!stream) {
      try {
        const r = await generate(lease.item, combined, () => {}, onFirstToken);
        finish(r);
        // Stopped by the server's shutdown: a 503 to retry, not a truncated answer.
        if (combined.aborted && combined.reason instanceof ShutdownError) throw combined.reason;
        return jsonResponse(whole(r));
      } finally {
        lease.release();
      }
    }

    const channel = new AsyncChannel(() => ac.abort(new Error('client stopped reading')), STREAM_COALESCE_MS, flushTick);
    let startSent = false;
    const onText = (t: string) => {
      if (t.length === 0) return;
      if (!startSent && frames.start) channel.push(frames.start());
      startSent = true;
      channel.push(frames.text(t));
    };
    generate(lease.item, combined, onText, onFirstToken)
      .then((r) => {
        finish(r);
        if (combined.aborted && combined.reason instanceof ShutdownError) {
          // Stopped by the server's shutdown, not finished: never a clean-looking end.
          if (!startSent) return channel.fail(combined.reason);
          const e = toError(combined.reason);
          channel.push(`data: ${new TextDecoder().decode(e.body)}\n\n`);
          return channel.fail(combined.reason);
        }
        // One push: the closing frames leave in one write with the end.
        channel.push((!startSent && frames.start ? frames.start() : '') + frames.end(r).join('') + SSE_DONE);
        channel.end();
      })
      .catch((err: unknown) => {
        if (!combined.aborted) opts.onError?.(err);
        // Before the first byte the error gets its own status (channel.started rejects:
        // a 400 for a prompt too long, not a 200 with an error event).
        if (!startSent) return channel.fail(err);
        // After it the status is sent: end the stream with an explicit error event.
        const e = toError(err);
        channel.push(`data: ${new TextDecoder().decode(e.body)}\n\n`);
        channel.fail(err);
      })
      .finally(() => lease.release());
    await channel.started;
    return { status: 200, headers: SSE_HEADERS, body: channel };
  }

  async function chat(body: unknown, signal: AbortSignal): Promise<HandlerResponse> {
    const req = parse(ChatRequestSchema, body);
    const loaded = await engine.load();
    const functions = toFunctions(req);
    const grammar = await grammarFor(req, loaded, functions);
    const history = toChatHistory(req.messages);
    const params = sampling(req, req.max_completion_tokens ?? req.max_tokens, grammar);
    const meta = metaFor('chatcmpl', req.model);
    const chunks = createChatChunks(meta, req.stream_options?.include_usage === true);
    return run(
      signal,
      req.stream === true,
      (sequence, s, onText, onFirstToken) => generateChat(sequence, loaded.chatWrapper, history, functions, params, { signal: s, onText, onFirstToken }),
      {
        start: chunks.role,
        text: chunks.content,
        end: (r) => [
          ...(r.toolCalls.length ? [chunks.toolCalls(r.toolCalls)] : []),
          chunks.finish(r.finishReason),
          ...(req.stream_options?.include_usage ? [chunks.usage(r)] : []),
        ],
      },
      (r) => chatCompletion(meta, r),
    );
  }

  async function completions(body: unknown, signal: AbortSignal): Promise<HandlerResponse> {
    const req = parse(CompletionRequestSchema, body);
    await engine.load();
    const prompt = typeof req.prompt === 'string' ? req.prompt : req.prompt[0]!;
    const params = sampling(req, req.max_tokens);
    const meta = metaFor('cmpl', req.model);
    const chunks = createCompletionChunks(meta, req.stream_options?.include_usage === true);
    const echo = req.echo === true ? prompt : '';
    return run(
      signal,
      req.stream === true,
      (sequence, s, onText, onFirstToken) => generateCompletion(sequence, prompt, params, { signal: s, onText, onFirstToken }),
      {
        start: echo ? () => chunks.text(echo) : undefined,
        text: (t) => chunks.text(t),
        end: (r) => [chunks.text('', r.finishReason), ...(req.stream_options?.include_usage ? [chunks.usage(r)] : [])],
      },
      (r) => textCompletion(meta, echo + r.text, r),
    );
  }

  async function embeddings(body: unknown, signal: AbortSignal): Promise<HandlerResponse> {
    const req = parse(EmbeddingRequestSchema, body);
    const inputs = typeof req.input === 'string' ? [req.input] : req.input;
    const r = await engine.embed(inputs, signal);
    const size = r.vectors[0]?.length;
    if (req.dimensions != null && size !== undefined && req.dimensions !== size) {
      throw new GatewayError('invalid_request', { message: `This model's embeddings have ${size} dimensions; it cannot return ${req.dimensions}.`, param: 'dimensions' });
    }
    return jsonResponse(embeddingList(req.model ?? engine.options.modelId, r.vectors, r.promptTokens, req.encoding_format === 'base64'));
  }

  return async (path, body, signal) => {
    try {
      switch (path.replace(/^\/v1(?=\/)/, '').replace(/\/+$/, '')) {
        case '/chat/completions': return await chat(body, signal);
        case '/completions': return await completions(body, signal);
        case '/embeddings': return await embeddings(body, signal);
        case '/models': return jsonResponse(modelList(engine.options.modelId, created));
        default: {
          // GET /v1/models/{id} (the SDK's models.retrieve): the one model this server holds.
          const one = /^\/models\/([^/]+)$/.exec(path.replace(/^\/v1(?=\/)/, ''));
          if (!one) throw new GatewayError('not_found');
          let id: string;
          try {
            id = decodeURIComponent(one[1]!);
          } catch {
            throw new GatewayError('invalid_request', { message: 'The model id in the path is not valid percent-encoding.' });
          }
          if (id !== engine.options.modelId) throw new GatewayError('model_not_found', { message: `The model '${id.slice(0, 200)}' does not exist.`, param: 'model' });
          return jsonResponse(modelObject(id, created));
        }
      }
    } catch (err) {
      const unexpected = !(err instanceof GatewayError) || err.status >= 500;
      if (unexpected && !(err instanceof QueueFullError) && !signal.aborted) opts.onError?.(err instanceof GatewayError && err.detail ? err.detail : err);
      return errorResponse(err);
    }
  };
}
