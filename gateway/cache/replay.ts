/**
 * Cache entry → OpenAI SSE text, for a stream request answered from the cache
 * (https://platform.openai.com/docs/api-reference/chat/streaming). Per choice: a role
 * chunk, content chunks, a refusal chunk, tool_calls chunks (name first, then the
 * arguments), a finish chunk; then, when the client asked for include_usage, one
 * usage chunk with `"choices": []`, and `data: [DONE]`. As in OpenAI's streams, every
 * other chunk carries `"usage": null` when include_usage is set and omits it otherwise.
 * Called per cache hit (check-cache) and per coalesced follower; pure.
 */
import { toOpenAIUsage, type CacheEntry } from './entry.js';

export interface ReplayOptions {
  /** The client set stream_options.include_usage. */
  includeUsage: boolean;
  /** Echoed in every chunk instead of the entry's model (which hits send: what the miss sent). */
  model?: string;
  /** Split content into chunks of at most this many characters; 0 = one chunk per choice. */
  chunkChars?: number;
}

type Json = Record<string, unknown>;

/** Message fields the replay sends in their own shapes; `parsed` is the SDK's, never the wire's. */
const REPLAYED_MESSAGE_FIELDS: ReadonlySet<string> = new Set(['role', 'content', 'refusal', 'tool_calls', 'function_call', 'parsed']);

function splitText(text: string, size: number): string[] {
  if (!size || text.length <= size) return [text];
  const out: string[] = [];
  // Split on code points, never inside a surrogate pair.
  const cps = Array.from(text);
  for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
  return out;
}

function chatChoiceChunks(choice: Json, chunkChars: number): Json[] {
  const index = typeof choice.index === 'number' ? choice.index : 0;
  const message = (choice.message ?? {}) as Json;
  const content = typeof message.content === 'string' ? message.content : null;
  const out: Json[] = [];
  const c = (delta: Json, extra: Json = {}): Json => ({ index, delta, logprobs: null, finish_reason: null, ...extra });

  out.push(c({ role: message.role ?? 'assistant', content: content === null ? null : '' }));
  // Other message fields (reasoning_content, annotations...) as the live stream carried
  // them: one delta each, before the content, as reasoning comes first live.
  for (const k in message) {
    if (!REPLAYED_MESSAGE_FIELDS.has(k) && message[k] != null) out.push(c({ [k]: message[k] }));
  }
  if (content) {
    const parts = splitText(content, chunkChars);
    parts.forEach((part, i) => out.push(c({ content: part }, i === 0 && choice.logprobs ? { logprobs: choice.logprobs } : {})));
  }
  if (typeof message.refusal === 'string' && message.refusal) out.push(c({ refusal: message.refusal }));
  const toolCalls = Array.isArray(message.tool_calls) ? (message.tool_calls as Json[]) : [];
  toolCalls.forEach((tc, i) => {
    const fn = (tc.function ?? {}) as Json;
    const args = typeof fn.arguments === 'string' ? fn.arguments : '';
    out.push(c({ tool_calls: [{ index: i, id: tc.id, type: tc.type ?? 'function', function: { name: fn.name, arguments: '' } }] }));
    for (const part of args ? splitText(args, chunkChars) : []) out.push(c({ tool_calls: [{ index: i, function: { arguments: part } }] }));
  });
  out.push(c({}, { finish_reason: choice.finish_reason ?? 'stop' }));
  return out;
}

function completionChoiceChunks(choice: Json, chunkChars: number): Json[] {
  const index = typeof choice.index === 'number' ? choice.index : 0;
  const text = typeof choice.text === 'string' ? choice.text : '';
  const out: Json[] = splitText(text, chunkChars).map((part, i) => ({ text: part, index, logprobs: i === 0 ? (choice.logprobs ?? null) : null, finish_reason: null }));
  out.push({ text: '', index, logprobs: null, finish_reason: choice.finish_reason ?? 'stop' });
  return out;
}

/** The chunk objects, in order, without the SSE framing or [DONE]. */
export function replayChunks(entry: CacheEntry, opts: ReplayOptions): Json[] {
  const r = entry.response;
  const chat = entry.endpoint === 'chat';
  const head: Json = {
    id: r.id,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created: r.created,
    model: opts.model ?? r.model,
  };
  if (r.system_fingerprint !== undefined) head.system_fingerprint = r.system_fingerprint;
  if (r.service_tier !== undefined) head.service_tier = r.service_tier;
  const chunkChars = opts.chunkChars ?? 0;
  const choices = (r.choices as Json[]).slice().sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0));
  const out: Json[] = [];
  for (const choice of choices) {
    for (const ch of chat ? chatChoiceChunks(choice, chunkChars) : completionChoiceChunks(choice, chunkChars)) {
      out.push(opts.includeUsage ? { ...head, choices: [ch], usage: null } : { ...head, choices: [ch] });
    }
  }
  if (opts.includeUsage) out.push({ ...head, choices: [], usage: r.usage ?? toOpenAIUsage(entry.usage) });
  return out;
}

/** The complete SSE body for the client, ending with `data: [DONE]`. */
export function replaySse(entry: CacheEntry, opts: ReplayOptions): string {
  let s = '';
  for (const chunk of replayChunks(entry, opts)) s += `data: ${JSON.stringify(chunk)}\n\n`;
  return s + 'data: [DONE]\n\n';
}
