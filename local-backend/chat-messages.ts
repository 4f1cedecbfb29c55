/**
 * OpenAI chat messages and tools → node-llama-cpp's chat history and function
 * definitions. The model's chat wrapper (ChatML for the demo model, the GGUF's own
 * template otherwise) renders them into the prompt. Per request, pure.
 */
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, ChatModelResponse, GbnfJsonSchema } from 'node-llama-cpp';
import { GatewayError } from '../gateway/errors.js';
import type { ChatMessage, ChatRequest } from './openai-schemas.js';

function textOf(content: ChatMessage['content']): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => part.text).join('');
}

function parseArguments(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Assistant tool calls become function-call items of the model turn; a following
 * `tool` message fills in the result of the call with its tool_call_id.
 */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  const pendingCalls = new Map<string, ChatModelFunctionCall>();
  for (const [i, m] of messages.entries()) {
    switch (m.role) {
      case 'system':
      case 'developer':
        history.push({ type: 'system', text: textOf(m.content) });
        break;
      case 'user':
        history.push({ type: 'user', text: textOf(m.content) });
        break;
      case 'assistant': {
        const response: ChatModelResponse['response'] = [];
        const text = textOf(m.content);
        if (text) response.push(text);
        for (const call of m.tool_calls ?? []) {
          const item: ChatModelFunctionCall = { type: 'functionCall', name: call.function.name, params: parseArguments(call.function.arguments), result: null };
          pendingCalls.set(call.id, item);
          response.push(item);
        }
        history.push({ type: 'model', response });
        break;
      }
      case 'tool': {
        const call = m.tool_call_id === undefined ? undefined : pendingCalls.get(m.tool_call_id);
        if (!call) throw new GatewayError('invalid_request', { message: 'A tool message must answer a tool_call_id of an earlier assistant message.', param: `messages.${i}.tool_call_id` });
        call.result = parseArguments(textOf(m.content));
        break;
      }
    }
  }
  // generateResponse continues the last model turn: open an empty one for the answer.
  history.push({ type: 'model', response: [] });
  return history;
}

/** undefined when no tools are offered or tool_choice is 'none'. */
/** OpenAI's rule for function names; node-llama-cpp fails (500) on others, e.g. with a space. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function toFunctions(req: ChatRequest): ChatModelFunctions | undefined {
  const choice = req.tool_choice;
  if (choice !== undefined && choice !== null && choice !== 'auto' && choice !== 'none') {
    // The model may call a tool; it cannot be made to (node-llama-cpp has no forced call):
    // refusing says so, instead of answering text where the client demanded a call.
    throw new GatewayError('invalid_request', { message: "This local model supports tool_choice 'auto' and 'none' only.", param: 'tool_choice' });
  }
  if (!req.tools?.length || choice === 'none') return undefined;
  const functions: Record<string, { description?: string; params?: GbnfJsonSchema }> = {};
  for (const [i, tool] of req.tools.entries()) {
    const { name, description, parameters } = tool.function;
    if (!FUNCTION_NAME.test(name)) {
      throw new GatewayError('invalid_request', { message: 'A function name may only contain a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.', param: `tools.${i}.function.name` });
    }
    // OpenAI's parameters are JSON Schema; node-llama-cpp accepts the subset it can turn into
    // a grammar and throws on the rest, which the engine reports as a 400 on `tools`.
    functions[name] = { description, params: parameters as GbnfJsonSchema | undefined };
  }
  return functions;
}
