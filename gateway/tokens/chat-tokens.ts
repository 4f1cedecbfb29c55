/**
 * Prompt tokens of a chat request the way OpenAI bills them
 * (https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken):
 * every message costs 3 tokens plus its role, content and name (+1 for a name), and
 * the reply is primed with 3 more. Tool definitions are rendered the way OpenAI
 * injects them into the system prompt (a TypeScript-like `namespace functions`,
 * gpt-tokenizer's formatFunctionDefinitions) plus 9 tokens, minus 4 when a system
 * message exists, whose content gets a trailing newline. Tool calls in assistant
 * messages cost their name, arguments and 3. Exact for text and tools; images use
 * OpenAI's published tile costs with an assumed 1024×1024 high-detail image.
 */
import { formatFunctionDefinitions } from 'gpt-tokenizer/functionCalling';
import type { ChatCompletionFunctionDefinition } from 'gpt-tokenizer/functionCalling';
import type { CountText } from './encodings.js';

export interface ChatTokenCount {
  /** Tokens of each message, in order; the sum plus `fixed` is the prompt total. */
  perMessage: number[];
  /** Reply priming, tool definitions and tool_choice. */
  fixed: number;
}

const PER_MESSAGE = 3;
const PER_NAME = 1;
const REPLY_PRIMING = 3;
const FUNCTION_DEFINITIONS = 9;
const SYSTEM_WITH_FUNCTIONS = -4;
const PER_FUNCTION_CALL = 3;
const IMAGE_LOW_DETAIL = 85;
const IMAGE_HIGH_DETAIL_1024 = 765;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function contentTokens(content: unknown, count: CountText, padNewline: boolean): number {
  if (typeof content === 'string') return count(padNewline && !content.endsWith('\n') && content ? `${content}\n` : content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content) {
    if (!isObject(part)) continue;
    if (typeof part.text === 'string') n += count(part.text);
    else if (part.type === 'image_url') {
      const detail = isObject(part.image_url) ? part.image_url.detail : undefined;
      n += detail === 'low' ? IMAGE_LOW_DETAIL : IMAGE_HIGH_DETAIL_1024;
    } else if (typeof part.refusal === 'string') n += count(part.refusal);
  }
  return n;
}

function callTokens(call: unknown, count: CountText): number {
  if (!isObject(call)) return 0;
  const fn = isObject(call.function) ? call.function : call;
  let n = PER_FUNCTION_CALL;
  if (typeof fn.name === 'string') n += count(fn.name);
  if (typeof fn.arguments === 'string') n += count(fn.arguments);
  return n;
}

export function messageTokens(msg: unknown, count: CountText, padSystem = false): number {
  if (!isObject(msg)) return 0;
  let n = PER_MESSAGE;
  if (typeof msg.role === 'string') n += count(msg.role);
  n += contentTokens(msg.content, count, padSystem);
  if (typeof msg.name === 'string' && msg.name) n += count(msg.name) + PER_NAME;
  if (msg.function_call) n += callTokens(msg.function_call, count);
  if (Array.isArray(msg.tool_calls)) for (const c of msg.tool_calls) n += callTokens(c, count);
  // OpenAI bills the legacy "function" role 2 tokens less than other roles.
  if (msg.role === 'function') n -= 2;
  return n;
}

/** `tools` (current API) and `functions` (legacy) as one list of definitions. */
function functionDefinitions(body: Json): ChatCompletionFunctionDefinition[] {
  const defs: ChatCompletionFunctionDefinition[] = [];
  const add = (f: unknown) => {
    if (isObject(f) && typeof f.name === 'string') defs.push(f as unknown as ChatCompletionFunctionDefinition);
  };
  if (Array.isArray(body.tools)) for (const t of body.tools) if (isObject(t)) add(t.function);
  if (Array.isArray(body.functions)) for (const f of body.functions) add(f);
  return defs;
}

function choiceTokens(body: Json, count: CountText): number {
  const choice = body.tool_choice ?? body.function_call;
  if (choice === 'none') return 1;
  if (isObject(choice)) {
    const fn = isObject(choice.function) ? choice.function : choice;
    if (typeof fn.name === 'string') return count(fn.name) + 4;
  }
  return 0;
}

export function countChat(body: Json, count: CountText): ChatTokenCount {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const defs = functionDefinitions(body);
  const hasFunctions = defs.length > 0;
  let paddedSystem = false;
  let hasSystem = false;
  const perMessage = messages.map((m) => {
    const isSystem = isObject(m) && m.role === 'system';
    hasSystem ||= isSystem;
    const pad = hasFunctions && isSystem && !paddedSystem;
    if (pad) paddedSystem = true;
    return messageTokens(m, count, pad);
  });
  let fixed = REPLY_PRIMING + choiceTokens(body, count);
  if (hasFunctions) {
    fixed += count(formatFunctionDefinitions(defs)) + FUNCTION_DEFINITIONS;
    if (hasSystem) fixed += SYSTEM_WITH_FUNCTIONS;
  }
  return { perMessage, fixed };
}
