/**
 * Anthropic Messages SSE events → OpenAI chat.completion.chunk SSE text, one event at a
 * time as they arrive (https://docs.anthropic.com/en/api/messages-streaming). One
 * translator per streamed request; the relay feeds it events from eventsource-parser
 * and writes whatever string it returns.
 *
 *   message_start            → first chunk {role:'assistant', content:''}; input usage noted
 *   content_block_start      → tool_use: chunk announcing the tool call (id, name, arguments '')
 *   content_block_delta      → text_delta: content; input_json_delta: tool arguments;
 *                              thinking_delta: reasoning_content
 *   message_delta            → chunk with finish_reason; output usage noted
 *   message_stop             → usage chunk (choices: []) when the client asked, then [DONE]
 *   content_block_stop       → a tool call that streamed no arguments gets "{}"
 *   ping                     → nothing
 *   error                    → an OpenAI-shaped error event; state.error set
 */
import type { Endpoint, SseEvent, StreamOptions, StreamState, StreamTranslator } from '../types.js';
import { mapAnthropicError } from './errors.js';
import { completionId, finishReason, openAIUsage, toUsage } from './response.js';
import type { AnthropicContentBlock, AnthropicUsage } from './wire.js';

interface AnthropicStreamEvent {
  type?: string;
  message?: { id?: string; usage?: AnthropicUsage };
  index?: number;
  content_block?: AnthropicContentBlock;
  delta?: {
    type?: string;
    text?: string;
    partial_json?: string;
    thinking?: string;
    stop_reason?: string | null;
  };
  usage?: AnthropicUsage;
  error?: { type?: string; message?: string };
}

const DONE = 'data: [DONE]\n\n';

export function createAnthropicStreamTranslator(endpoint: Endpoint, opts: StreamOptions): StreamTranslator {
  const state: StreamState = { done: false, toolCalls: [], contentChars: 0 };
  if (opts.collectText) state.text = '';
  const created = Math.floor(Date.now() / 1000);
  const usage: AnthropicUsage = {};
  /** content block index → OpenAI tool_calls index (tool calls are numbered 0.. in order). */
  const toolIndex = new Map<number, number>();
  /** Tool calls (by OpenAI index) that have streamed argument text. */
  const argsSent = new Set<number>();
  let id = completionId(undefined, endpoint === 'completions');
  const legacy = endpoint === 'completions';
  const usageNull = opts.clientWantsUsage ? ',"usage":null' : '';

  function chunk(delta: Record<string, unknown>, finish: string | null = null): string {
    const choice = legacy
      ? { index: 0, text: typeof delta.content === 'string' ? delta.content : '', logprobs: null, finish_reason: finish }
      : { index: 0, delta, logprobs: null, finish_reason: finish };
    const object = legacy ? 'text_completion' : 'chat.completion.chunk';
    return `data: {"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(opts.clientModel)},"choices":[${JSON.stringify(choice)}]${usageNull}}\n\n`;
  }

  function text(t: string): string {
    if (t === '') return '';
    state.contentChars += t.length;
    if (state.text !== undefined) state.text += t;
    return chunk({ content: t });
  }

  function mergeUsage(u: AnthropicUsage | undefined): void {
    if (!u) return;
    for (const k of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) {
      if (typeof u[k] === 'number') usage[k] = u[k];
    }
    state.usage = toUsage(usage);
  }

  function push(event: SseEvent): string {
    if (state.done || state.error) return '';
    let ev: AnthropicStreamEvent;
    try {
      ev = JSON.parse(event.data) as AnthropicStreamEvent;
    } catch {
      return fail('api_error', 'The upstream stream sent an event that is not JSON.');
    }
    switch (ev.type ?? event.event) {
      case 'message_start':
        id = completionId(ev.message?.id, legacy);
        mergeUsage(ev.message?.usage);
        return legacy ? '' : chunk({ role: 'assistant', content: '' });
      case 'content_block_start': {
        const b = ev.content_block;
        if (b?.type === 'text') return text(b.text ?? '');
        if (b?.type === 'tool_use' && !legacy) {
          const n = toolIndex.size;
          toolIndex.set(ev.index ?? n, n);
          state.toolCalls.push(b.name);
          state.contentChars += b.name?.length ?? 0;
          return chunk({ tool_calls: [{ index: n, id: b.id, type: 'function', function: { name: b.name, arguments: '' } }] });
        }
        return '';
      }
      case 'content_block_delta': {
        const d = ev.delta;
        if (d?.type === 'text_delta') return text(d.text ?? '');
        if (d?.type === 'input_json_delta') {
          const n = toolIndex.get(ev.index ?? -1);
          if (n === undefined || !d.partial_json) return '';
          argsSent.add(n);
          state.contentChars += d.partial_json.length;
          return chunk({ tool_calls: [{ index: n, function: { arguments: d.partial_json } }] });
        }
        if (d?.type === 'thinking_delta' && d.thinking && !legacy) return chunk({ reasoning_content: d.thinking });
        return '';
      }
      case 'content_block_stop': {
        // A tool call without input streams no argument text: its arguments are "{}", as
        // in a whole answer (JSON.parse('') throws in the client).
        const n = toolIndex.get(ev.index ?? -1);
        if (n === undefined || argsSent.has(n)) return '';
        argsSent.add(n);
        return chunk({ tool_calls: [{ index: n, function: { arguments: '{}' } }] });
      }
      case 'message_delta':
        mergeUsage(ev.usage);
        if (ev.delta?.stop_reason === undefined || ev.delta.stop_reason === null || state.finishReason !== undefined) return '';
        state.finishReason = finishReason(ev.delta.stop_reason);
        return chunk({}, state.finishReason);
      case 'message_stop': {
        state.done = true;
        if (!opts.clientWantsUsage || !state.usage) return DONE;
        const u = JSON.stringify(openAIUsage(state.usage, usage));
        const object = legacy ? 'text_completion' : 'chat.completion.chunk';
        return `data: {"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(opts.clientModel)},"choices":[],"usage":${u}}\n\n${DONE}`;
      }
      case 'error':
        return fail(ev.error?.type, ev.error?.message);
      default:
        // ping, and event types added after this was written.
        return '';
    }
  }

  function fail(type: string | undefined, message: string | undefined): string {
    const { body } = mapAnthropicError(500, type, message);
    state.error = { message: body.error.message, code: body.error.code, type: body.error.type };
    return `data: ${JSON.stringify(body)}\n\n`;
  }

  return { push, state };
}
