/**
 * Streamed chunks → the complete response JSON, so a streamed miss can be stored and
 * later served to stream and non-stream requests alike. Dispatch feeds it the SSE text
 * it relayed to the client (in whatever splits the text came); `finish()` yields a
 * response only for a stream that ended properly: [DONE] seen (or the translator's
 * state says done), no error event, every choice finished, usage known. A cut-short
 * stream or any error yields nothing (PEERS 8: never cache an error).
 * One assembler per streamed miss; it holds the answer's text, nothing more.
 */
import { createParser, type EventSourceParser } from 'eventsource-parser';
import { toOpenAIUsage, type CacheEndpoint } from './entry.js';
import type { Usage } from '../providers/types.js';

type Json = Record<string, unknown>;

interface ToolCallAcc {
  id?: string;
  type: string;
  name: string;
  arguments: string;
}

interface ChoiceAcc {
  role: string;
  content: string | null;
  text: string;
  refusal: string | null;
  toolCalls: ToolCallAcc[];
  /**
   * Message fields beyond the four above, as the deltas carried them: strings joined
   * (vLLM's and DeepSeek's `reasoning_content`), arrays concatenated (`annotations`).
   */
  extra: Record<string, string | unknown[]>;
  finishReason?: string;
  logprobs: unknown[] | null;
  /** Legacy completions' logprobs, concatenated across chunks. */
  legacyLogprobs?: Record<(typeof LEGACY_LOGPROB_FIELDS)[number], unknown[]>;
}

const LEGACY_LOGPROB_FIELDS = ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'] as const;

/** Delta fields the assembler handles itself; any other is kept as it came (ChoiceAcc.extra). */
const KNOWN_DELTA_FIELDS: ReadonlySet<string> = new Set(['role', 'content', 'refusal', 'tool_calls', 'function_call']);

export interface StreamEnd {
  /** The upstream stream reached its proper end (StreamState.done). */
  done: boolean;
  /** StreamState.error: an error event came inside the stream. */
  error?: unknown;
  /** StreamState.usage: used when the client-facing text carried no usage chunk. */
  usage?: Usage;
}

export interface StreamAssembler {
  /** SSE text exactly as relayed to the client; any split. */
  push(sseText: string): void;
  /** A `data: [DONE]` event went by. */
  readonly sawDone: boolean;
  /** An error event went by (it was relayed to the client already). */
  readonly sawError: boolean;
  /** The complete response, or undefined when the stream must not be stored. */
  finish(end: StreamEnd): Json | undefined;
}

export function createStreamAssembler(endpoint: CacheEndpoint): StreamAssembler {
  const choices = new Map<number, ChoiceAcc>();
  let head: Json | undefined;
  let usage: Json | undefined;
  let sawDone = false;
  let sawError = false;
  let broken = false;

  const choiceAt = (i: number): ChoiceAcc => {
    let c = choices.get(i);
    if (!c) {
      c = { role: 'assistant', content: null, text: '', refusal: null, toolCalls: [], extra: {}, logprobs: null };
      choices.set(i, c);
    }
    return c;
  };

  const onChunk = (chunk: Json): void => {
    if (chunk.error != null) {
      sawError = true;
      return;
    }
    if (!head) head = { id: chunk.id, created: chunk.created, model: chunk.model, system_fingerprint: chunk.system_fingerprint, service_tier: chunk.service_tier };
    if (chunk.usage && typeof chunk.usage === 'object') usage = chunk.usage as Json;
    if (!Array.isArray(chunk.choices)) return;
    for (const raw of chunk.choices as Json[]) {
      const c = choiceAt(typeof raw.index === 'number' ? raw.index : 0);
      if (typeof raw.finish_reason === 'string') c.finishReason = raw.finish_reason;
      const lp = raw.logprobs as Json | null | undefined;
      if (lp && Array.isArray(lp.content)) (c.logprobs ??= []).push(...(lp.content as unknown[]));
      if (endpoint === 'completions' && lp && typeof lp === 'object') {
        // Legacy completions: parallel arrays per chunk, concatenated.
        const acc = (c.legacyLogprobs ??= { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] });
        for (const k of LEGACY_LOGPROB_FIELDS) if (Array.isArray(lp[k])) acc[k].push(...(lp[k] as unknown[]));
      }
      if (endpoint === 'completions') {
        if (typeof raw.text === 'string') c.text += raw.text;
        continue;
      }
      const delta = (raw.delta ?? {}) as Json;
      if (typeof delta.role === 'string') c.role = delta.role;
      if (typeof delta.content === 'string') c.content = (c.content ?? '') + delta.content;
      if (typeof delta.refusal === 'string') c.refusal = (c.refusal ?? '') + delta.refusal;
      for (const k in delta) {
        if (KNOWN_DELTA_FIELDS.has(k)) continue;
        const v = delta[k];
        if (typeof v === 'string') c.extra[k] = (typeof c.extra[k] === 'string' ? c.extra[k] : '') + v;
        else if (Array.isArray(v)) c.extra[k] = [...(Array.isArray(c.extra[k]) ? c.extra[k] : []), ...v];
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const tc of delta.tool_calls as Json[]) {
          const ti = typeof tc.index === 'number' ? tc.index : c.toolCalls.length;
          const acc = (c.toolCalls[ti] ??= { type: 'function', name: '', arguments: '' });
          if (typeof tc.id === 'string') acc.id = tc.id;
          if (typeof tc.type === 'string') acc.type = tc.type;
          const fn = (tc.function ?? {}) as Json;
          // OpenAI sends the name once; some compatible servers repeat the whole name on
          // every delta (the SDK keeps the last one it saw), a few split it. A delta that
          // starts with what is known so far repeats or extends it; any other is a piece.
          if (typeof fn.name === 'string' && fn.name) acc.name = fn.name.startsWith(acc.name) ? fn.name : acc.name + fn.name;
          if (typeof fn.arguments === 'string') acc.arguments += fn.arguments;
        }
      }
    }
  };

  const parser: EventSourceParser = createParser({
    // The relay refuses larger events before they reach here; a bound all the same.
    maxBufferSize: 16 * 1024 * 1024,
    onError(err) {
      if (err.type === 'max-buffer-size-exceeded') broken = true;
    },
    onEvent(ev) {
      if (ev.data === '[DONE]') {
        sawDone = true;
        return;
      }
      if (ev.event === 'error') sawError = true;
      try {
        const parsed: unknown = JSON.parse(ev.data);
        if (parsed && typeof parsed === 'object') onChunk(parsed as Json);
        else broken = true;
      } catch {
        broken = true;
      }
    },
  });

  const buildChoice = (index: number, c: ChoiceAcc): Json => {
    if (endpoint === 'completions') return { text: c.text, index, logprobs: c.legacyLogprobs ?? (c.logprobs ? { content: c.logprobs } : null), finish_reason: c.finishReason };
    const calls = c.toolCalls.filter(Boolean);
    // A message of tool calls only has content null, as OpenAI's JSON answer does — even
    // when the stream opened with `content: ""` in its role delta.
    const message: Json = { role: c.role, content: c.content === '' && calls.length ? null : c.content, refusal: c.refusal, ...c.extra };
    if (calls.length) message.tool_calls = calls.map((t) => ({ id: t.id, type: t.type, function: { name: t.name, arguments: t.arguments } }));
    return { index, message, logprobs: c.logprobs ? { content: c.logprobs } : null, finish_reason: c.finishReason };
  };

  return {
    push(sseText) {
      if (broken) return;
      parser.feed(sseText);
    },
    get sawDone() {
      return sawDone;
    },
    get sawError() {
      return sawError;
    },
    finish(end) {
      if (!end.done || end.error != null || sawError || broken || !head || choices.size === 0) return undefined;
      const indices = [...choices.keys()].sort((a, b) => a - b);
      if (indices.some((i) => choices.get(i)!.finishReason === undefined)) return undefined;
      const finalUsage = usage ?? (end.usage ? (toOpenAIUsage(end.usage) as Json) : undefined);
      if (!finalUsage) return undefined;
      const response: Json = {
        id: head.id,
        object: endpoint === 'chat' ? 'chat.completion' : 'text_completion',
        created: head.created,
        model: head.model,
        choices: indices.map((i) => buildChoice(i, choices.get(i)!)),
        usage: finalUsage,
      };
      if (head.system_fingerprint !== undefined) response.system_fingerprint = head.system_fingerprint;
      if (head.service_tier !== undefined) response.service_tier = head.service_tier;
      return response;
    },
  };
}
