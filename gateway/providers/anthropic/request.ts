/**
 * OpenAI chat/completions (and legacy completions) body → Anthropic Messages body.
 * Called once per request by the anthropic translator's buildRequest. Anything the
 * Messages API cannot express is refused here with a 400 naming the parameter,
 * rather than silently dropped (n > 1, logprobs, audio/file parts, tool args that are
 * not a JSON object, a conversation of system messages only). response_format is asked
 * for in the system prompt; empty stop strings are dropped.
 */
import { GatewayError } from '../../errors.js';
import type { Endpoint } from '../types.js';
import type {
  AnthropicContentBlock,
  AnthropicImageBlock,
  AnthropicMessage,
  AnthropicRequestBody,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
} from './wire.js';

type Json = Record<string, unknown>;

export interface AnthropicRequestOptions {
  upstreamModel: string;
  stream: boolean;
  /** backend.max_tokens_default: Anthropic requires max_tokens, OpenAI does not. */
  maxTokensDefault: number;
}

function bad(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', { message, param });
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** data:image/png;base64,AAAA → base64 source; anything else is passed as a URL source. */
export function imageBlock(url: string, param: string): AnthropicImageBlock {
  if (url.startsWith('data:')) {
    const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
    if (!m) throw bad('Image data URLs must be base64 encoded (data:<media type>;base64,...).', param);
    return { type: 'image', source: { type: 'base64', media_type: m[1], data: m[2] } };
  }
  return { type: 'image', source: { type: 'url', url } };
}

/** OpenAI message content (string or parts) → Anthropic blocks. Empty text is dropped: Anthropic rejects it. */
function contentBlocks(content: unknown, param: string): Array<AnthropicTextBlock | AnthropicImageBlock> {
  if (content === null || content === undefined) return [];
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw bad('Message content must be a string or an array of content parts.', param);
  const out: Array<AnthropicTextBlock | AnthropicImageBlock> = [];
  content.forEach((part: unknown, i) => {
    const p = `${param}.${i}`;
    if (!isObj(part)) throw bad('Content parts must be objects.', p);
    if (part.type === 'text' || part.type === 'refusal') {
      const text = part.type === 'text' ? part.text : part.refusal;
      if (typeof text !== 'string') throw bad('A text part needs a string text.', p);
      if (text !== '') out.push({ type: 'text', text });
    } else if (part.type === 'image_url') {
      const iu = part.image_url;
      const url = typeof iu === 'string' ? iu : isObj(iu) ? iu.url : undefined;
      if (typeof url !== 'string') throw bad('An image_url part needs image_url.url.', p);
      out.push(imageBlock(url, `${p}.image_url.url`));
    } else {
      throw bad(`Content parts of type "${String(part.type)}" are not supported by this model's backend.`, p);
    }
  });
  return out;
}

function textOnly(content: unknown, param: string): string {
  return contentBlocks(content, param)
    .map((b) => {
      if (b.type !== 'text') throw bad('System messages may only contain text.', param);
      return b.text;
    })
    .join('\n');
}

function toolUseBlocks(toolCalls: unknown, param: string): AnthropicContentBlock[] {
  if (toolCalls === undefined || toolCalls === null) return [];
  if (!Array.isArray(toolCalls)) throw bad('tool_calls must be an array.', param);
  return toolCalls.map((tc: unknown, i) => {
    const p = `${param}.${i}`;
    if (!isObj(tc) || !isObj(tc.function) || typeof tc.id !== 'string' || typeof tc.function.name !== 'string') {
      throw bad('A tool call needs id and function.name.', p);
    }
    const args = tc.function.arguments;
    let input: unknown = {};
    // Arguments are a JSON string in OpenAI's format; an object sent as is (some clients
    // do) is taken as the object it is, anything else is refused.
    if (isObj(args)) input = args;
    else if (args !== undefined && args !== null && typeof args !== 'string') throw bad('Tool call arguments must be a JSON object.', `${p}.function.arguments`);
    if (typeof args === 'string' && args.trim() !== '') {
      try {
        input = JSON.parse(args);
      } catch {
        throw bad('Tool call arguments must be a JSON object.', `${p}.function.arguments`);
      }
      if (!isObj(input)) throw bad('Tool call arguments must be a JSON object.', `${p}.function.arguments`);
    }
    return { type: 'tool_use', id: tc.id, name: tc.function.name, input };
  });
}

/** Appends blocks to the last message when it has the same role: Anthropic wants alternating turns. */
function push(messages: AnthropicMessage[], role: 'user' | 'assistant', blocks: AnthropicContentBlock[]): void {
  if (blocks.length === 0) return;
  const last = messages[messages.length - 1];
  if (last && last.role === role) last.content.push(...blocks);
  else messages.push({ role, content: blocks });
}

export function translateMessages(raw: unknown): { system?: string; messages: AnthropicMessage[] } {
  if (!Array.isArray(raw) || raw.length === 0) throw bad('messages must be a non-empty array.', 'messages');
  const system: string[] = [];
  const messages: AnthropicMessage[] = [];
  raw.forEach((m: unknown, i) => {
    const p = `messages.${i}`;
    if (!isObj(m)) throw bad('Each message must be an object.', p);
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(textOnly(m.content, `${p}.content`));
        break;
      case 'user':
        push(messages, 'user', contentBlocks(m.content, `${p}.content`));
        break;
      case 'assistant':
        push(messages, 'assistant', [...contentBlocks(m.content, `${p}.content`), ...toolUseBlocks(m.tool_calls, `${p}.tool_calls`)]);
        break;
      case 'tool': {
        if (typeof m.tool_call_id !== 'string') throw bad('A tool message needs tool_call_id.', `${p}.tool_call_id`);
        const blocks = contentBlocks(m.content, `${p}.content`);
        const content = blocks.length === 1 && blocks[0].type === 'text' ? blocks[0].text : blocks;
        // Consecutive tool results become one user message of tool_result blocks (push merges them).
        push(messages, 'user', [{ type: 'tool_result', tool_use_id: m.tool_call_id, content }]);
        break;
      }
      default:
        throw bad(`Messages with role "${String(m.role)}" are not supported by this model's backend.`, `${p}.role`);
    }
  });
  return { system: system.length ? system.join('\n\n') : undefined, messages };
}

function translateTools(tools: unknown): AnthropicTool[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw bad('tools must be an array.', 'tools');
  return tools.map((t: unknown, i) => {
    if (!isObj(t) || t.type !== 'function' || !isObj(t.function) || typeof t.function.name !== 'string') {
      throw bad('Only function tools are supported by this model\'s backend.', `tools.${i}`);
    }
    const f = t.function;
    const tool: AnthropicTool = {
      name: f.name as string,
      input_schema: isObj(f.parameters) ? f.parameters : { type: 'object', properties: {} },
    };
    if (typeof f.description === 'string') tool.description = f.description;
    return tool;
  });
}

function translateToolChoice(choice: unknown, parallel: unknown): AnthropicToolChoice | undefined {
  const noParallel = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined || choice === null) return parallel === false ? { type: 'auto', ...noParallel } : undefined;
  if (choice === 'auto') return { type: 'auto', ...noParallel };
  if (choice === 'none') return { type: 'none' };
  if (choice === 'required') return { type: 'any', ...noParallel };
  if (isObj(choice) && isObj(choice.function) && typeof choice.function.name === 'string') {
    return { type: 'tool', name: choice.function.name, ...noParallel };
  }
  throw bad('tool_choice must be "auto", "none", "required" or {"type":"function","function":{"name":...}}.', 'tool_choice');
}

function positiveInt(v: unknown, param: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(`${param} must be a positive integer.`, param);
  return v;
}

function promptAsMessages(prompt: unknown): unknown[] {
  if (prompt === '' || (Array.isArray(prompt) && prompt.length === 1 && prompt[0] === '')) throw bad('The prompt is empty.', 'prompt');
  if (typeof prompt === 'string') return [{ role: 'user', content: prompt }];
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') return [{ role: 'user', content: prompt[0] }];
  throw bad('This model\'s backend accepts a single string prompt.', 'prompt');
}

/**
 * response_format has no Messages API field: JSON output is asked for in the system
 * prompt (a schema is included verbatim), the way Anthropic's docs suggest. `text` and
 * absent need nothing; anything else is refused.
 */
function jsonFormatInstruction(format: unknown): string | undefined {
  if (format === undefined || format === null) return undefined;
  if (!isObj(format) || typeof format.type !== 'string') throw bad('response_format must be an object with a type.', 'response_format');
  if (format.type === 'text') return undefined;
  if (format.type === 'json_object') return 'Respond with a single valid JSON object and nothing else: no prose, no code fences.';
  if (format.type === 'json_schema') {
    const js = isObj(format.json_schema) ? format.json_schema : undefined;
    if (!js || !isObj(js.schema)) throw bad('response_format.json_schema.schema must be a JSON schema object.', 'response_format');
    return `Respond with a single valid JSON object and nothing else (no prose, no code fences) that conforms to this JSON schema:\n${JSON.stringify(js.schema)}`;
  }
  throw bad(`response_format type '${String(format.type).slice(0, 40)}' is not supported by this model's backend.`, 'response_format');
}

export function buildAnthropicBody(endpoint: Endpoint, body: Json, opts: AnthropicRequestOptions): AnthropicRequestBody {
  if (endpoint === 'embeddings') {
    throw bad('This model is served by an Anthropic backend, which has no embeddings endpoint.', 'model');
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1) throw bad('This model\'s backend supports only n = 1.', 'n');
  const { system, messages } = translateMessages(endpoint === 'completions' ? promptAsMessages(body.prompt) : body.messages);
  const maxTokens =
    positiveInt(body.max_completion_tokens, 'max_completion_tokens') ?? positiveInt(body.max_tokens, 'max_tokens') ?? opts.maxTokensDefault;

  if (messages.length === 0) throw bad('The conversation needs at least one user or assistant message besides the system prompt.', 'messages');
  for (const param of ['logprobs', 'top_logprobs'] as const) {
    if (body[param] !== undefined && body[param] !== null && body[param] !== false) throw bad(`This model's backend cannot return ${param}.`, param);
  }
  if (endpoint === 'completions') {
    // Legacy completions features the Messages API has no way to express.
    if (typeof body.suffix === 'string' && body.suffix !== '') throw bad('This model\'s backend cannot insert text before a suffix.', 'suffix');
    if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) throw bad('This model\'s backend supports only best_of = 1.', 'best_of');
    if (body.echo === true) throw bad('This model\'s backend cannot echo the prompt.', 'echo');
  }
  // The deprecated function-calling fields: refused, not dropped (the model would answer
  // as if it had no functions).
  for (const param of ['functions', 'function_call'] as const) {
    if (body[param] !== undefined && body[param] !== null) throw bad(`${param} is deprecated and not translated for this model's backend; use tools and tool_choice.`, param);
  }

  const format = jsonFormatInstruction(body.response_format);
  const sys = format === undefined ? system : system === undefined ? format : `${system}\n\n${format}`;
  const out: AnthropicRequestBody = { model: opts.upstreamModel, max_tokens: maxTokens, messages };
  if (sys !== undefined) out.system = sys;
  const stops = (typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop : []).filter((s): s is string => typeof s === 'string' && s !== '');
  if (stops.length) out.stop_sequences = stops;
  // OpenAI allows 0..2, Anthropic 0..1: clamp rather than fail a request that works elsewhere.
  if (typeof body.temperature === 'number') out.temperature = Math.min(Math.max(body.temperature, 0), 1);
  if (typeof body.top_p === 'number') out.top_p = body.top_p;
  const tools = translateTools(body.tools);
  if (tools && tools.length) out.tools = tools;
  const toolChoice = translateToolChoice(body.tool_choice, body.parallel_tool_calls);
  if (toolChoice && out.tools) out.tool_choice = toolChoice;
  if (typeof body.user === 'string') out.metadata = { user_id: body.user };
  if (opts.stream) out.stream = true;
  return out;
}
