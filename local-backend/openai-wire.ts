/**
 * OpenAI wire-format builders for the local backend: response objects, stream chunks and
 * SSE framing (https://platform.openai.com/docs/api-reference/chat). Pure; per request.
 */
import { randomBytes } from 'node:crypto';
import type { FinishReason, GenerationResult, ToolCallResult } from './generate.js';

const encoder = new TextEncoder();

/** One SSE event. Stream frames are strings: the channel joins a delivery's frames and encodes once. */
export function sse(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}
export const SSE_DONE = 'data: [DONE]\n\n';

export function json(payload: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(payload));
}

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

export function usageOf(r: Pick<GenerationResult, 'promptTokens' | 'completionTokens'>) {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}

function toolCallsOf(calls: readonly ToolCallResult[]) {
  return calls.map((c, index) => ({ index, id: newId('call'), type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function chatCompletion(meta: ResponseMeta, r: GenerationResult) {
  const toolCalls = r.toolCalls.length ? toolCallsOf(r.toolCalls).map(({ index: _index, ...c }) => c) : undefined;
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: toolCalls && !r.text ? null : r.text, refusal: null, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
      logprobs: null,
      finish_reason: r.finishReason,
    }],
    usage: usageOf(r),
  };
}

/**
 * Stream chunks of one chat completion; `usage: null` on every chunk when include_usage is
 * on, as OpenAI does. Content chunks are the hot path (one per token): their JSON is a
 * precomputed prefix + the escaped text + a suffix, with no object and no bytes built per
 * token (the channel encodes one string per delivery).
 */
export function createChatChunks(meta: ResponseMeta, includeUsage: boolean) {
  const base = (choices: unknown[]) => ({
    id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices,
    ...(includeUsage ? { usage: null } : {}),
  });
  const choice = (delta: Record<string, unknown>, finish: FinishReason | null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });
  const template = JSON.stringify(base([choice({ content: '\u0000' }, null)]));
  const [head, tail] = template.split('"\\u0000"') as [string, string];
  const contentPrefix = `data: ${head}`;
  const contentSuffix = `${tail}\n\n`;
  return {
    role: () => sse(base([choice({ role: 'assistant', content: '' }, null)])),
    content: (text: string) => contentPrefix + JSON.stringify(text) + contentSuffix,
    toolCalls: (calls: readonly ToolCallResult[]) => sse(base([choice({ tool_calls: toolCallsOf(calls) }, null)])),
    finish: (reason: FinishReason) => sse(base([choice({}, reason)])),
    usage: (r: GenerationResult) => sse({ id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [], usage: usageOf(r) }),
  };
}

export function textCompletion(meta: ResponseMeta, text: string, r: GenerationResult) {
  return {
    id: meta.id, object: 'text_completion', created: meta.created, model: meta.model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: r.finishReason }],
    usage: usageOf(r),
  };
}

export function createCompletionChunks(meta: ResponseMeta, includeUsage: boolean) {
  const base = (choices: unknown[]) => ({
    id: meta.id, object: 'text_completion', created: meta.created, model: meta.model, choices,
    ...(includeUsage ? { usage: null } : {}),
  });
  return {
    text: (text: string, finish: FinishReason | null = null) => sse(base([{ text, index: 0, logprobs: null, finish_reason: finish }])),
    usage: (r: GenerationResult) => sse({ id: meta.id, object: 'text_completion', created: meta.created, model: meta.model, choices: [], usage: usageOf(r) }),
  };
}

export function embeddingList(model: string, vectors: readonly Float32Array[], promptTokens: number, base64: boolean) {
  return {
    object: 'list',
    data: vectors.map((v, index) => ({
      object: 'embedding',
      index,
      // base64 = the little-endian float32 bytes, which is what the openai SDK asks for by default.
      embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
    })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

export function modelObject(id: string, created: number) {
  return { id, object: 'model', created, owned_by: 'switchyard' };
}

export function modelList(id: string, created: number) {
  return { object: 'list', data: [modelObject(id, created)] };
}
