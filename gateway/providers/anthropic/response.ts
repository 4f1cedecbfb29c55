/**
 * Anthropic Messages response → OpenAI chat.completion (or text_completion) body,
 * plus the mappings the stream translator shares: stop_reason → finish_reason and
 * Anthropic usage → OpenAI usage.
 */
import { GatewayError } from '../../errors.js';
import type { Endpoint, TranslatedResponse, Usage } from '../types.js';
import type { AnthropicResponseBody, AnthropicUsage } from './wire.js';

/** https://docs.anthropic.com/en/api/handling-stop-reasons */
const FINISH_REASONS: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

export function finishReason(stopReason: string | null | undefined): string {
  return (stopReason && FINISH_REASONS[stopReason]) || 'stop';
}

/** Cache writes and reads are prompt tokens too: OpenAI's prompt_tokens counts everything the model read. */
export function toUsage(u: AnthropicUsage): Usage {
  const prompt = (u.input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);
  const completion = u.output_tokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The usage object as OpenAI clients expect it, with cached reads surfaced as cached_tokens. */
export function openAIUsage(usage: Usage, u: AnthropicUsage): Record<string, unknown> {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.total_tokens,
    prompt_tokens_details: { cached_tokens: u.cache_read_input_tokens ?? 0 },
  };
}

/** OpenAI's id shape: `chatcmpl-…` for chat, `cmpl-…` for legacy completions. */
export function completionId(messageId: string | undefined, legacy = false): string {
  return `${legacy ? 'cmpl' : 'chatcmpl'}-${messageId ?? Date.now().toString(36)}`;
}

function parse(body: Uint8Array): AnthropicResponseBody {
  let msg: unknown;
  try {
    msg = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw new GatewayError('upstream_bad_response', { detail: err });
  }
  const m = msg as AnthropicResponseBody;
  if (!m || typeof m !== 'object' || !Array.isArray(m.content)) {
    throw new GatewayError('upstream_bad_response', { detail: 'anthropic response without content array' });
  }
  return m;
}

export function translateAnthropicResponse(endpoint: Endpoint, bytes: Uint8Array, clientModel: string): TranslatedResponse {
  const msg = parse(bytes);
  let text = '';
  let reasoning = '';
  const toolCalls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = [];
  for (const block of msg.content) {
    if (block.type === 'text') text += block.text;
    else if (block.type === 'thinking') reasoning += block.thinking;
    else if (block.type === 'tool_use') {
      toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    }
  }
  // No usage from an Anthropic-compatible proxy: the dispatcher estimates it (never 0).
  const usage = msg.usage ? toUsage(msg.usage) : undefined;
  const finish = finishReason(msg.stop_reason);
  const created = Math.floor(Date.now() / 1000);
  const id = completionId(msg.id, endpoint === 'completions');
  let out: Record<string, unknown>;
  if (endpoint === 'completions') {
    out = {
      id,
      object: 'text_completion',
      created,
      model: clientModel,
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
      ...(usage && { usage: openAIUsage(usage, msg.usage ?? {}) }),
    };
  } else {
    const message: Record<string, unknown> = {
      role: 'assistant',
      content: text === '' && toolCalls.length ? null : text,
      refusal: null,
    };
    if (reasoning) message.reasoning_content = reasoning;
    if (toolCalls.length) message.tool_calls = toolCalls;
    out = {
      id,
      object: 'chat.completion',
      created,
      model: clientModel,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
      ...(usage && { usage: openAIUsage(usage, msg.usage ?? {}) }),
    };
  }
  return {
    body: JSON.stringify(out),
    usage,
    toolCalls: toolCalls.map((t) => t.function.name),
    finishReason: finish,
  };
}
