/**
 * OpenAI and OpenAI-compatible backends (OpenAI, vLLM, llama-server, Ollama, our
 * local-backend): pass-through. The client's bytes go upstream untouched unless the
 * model name differs, a stage changed the body, or include_usage is injected; the
 * upstream's bytes go back untouched except the injected usage chunk, which is
 * swallowed.
 */
import { errorBody } from '../../errors.js';
import type {
  Endpoint,
  SseEvent,
  StreamOptions,
  StreamState,
  StreamTranslator,
  TranslateRequestInput,
  TranslatedResponse,
  Translator,
  UpstreamRequest,
} from '../types.js';
import { usageFromObject, usageFromText } from './usage.js';

const PATHS: Record<Endpoint, string> = { chat: '/chat/completions', completions: '/completions', embeddings: '/embeddings' };
const USAGE_OBJECT = /"usage"\s*:\s*\{/;
const decoder = new TextDecoder();

interface ChunkShape {
  choices?: Array<{ delta?: { content?: string | null; tool_calls?: Array<{ function?: { name?: string; arguments?: string } }> }; text?: string; finish_reason?: string | null }>;
  usage?: Record<string, unknown> | null;
  error?: { message?: string; code?: string | null; type?: string };
  /** vLLM's older in-stream error: {"object":"error","message":...,"type":...,"code":...}. */
  object?: string;
  message?: string;
  type?: string;
  code?: string | number | null;
}

/**
 * One SSE event as text. An event whose data spans several lines (valid SSE: the
 * parser joined its `data:` lines with \n) gets one `data:` per line again.
 */
function sse(prefix: string, d: string): string {
  return d.includes('\n') ? `${prefix}data: ${d.replaceAll('\n', '\ndata: ')}\n\n` : `${prefix}data: ${d}\n\n`;
}

export function buildOpenAIRequest(input: TranslateRequestInput): UpstreamRequest {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...input.backend.headers };
  if (input.apiKey) headers.authorization = `Bearer ${input.apiKey}`;
  const rename = input.body.model !== input.upstreamModel;
  const inject = input.stream && input.injectUsage;
  let body: string | Uint8Array = input.rawBody;
  if (input.bodyChanged || rename || inject) {
    const b: Record<string, unknown> = { ...input.body, model: input.upstreamModel };
    if (inject) b.stream_options = { ...((b.stream_options as object) ?? {}), include_usage: true };
    // A limit the gateway added goes to OpenAI's own API as max_completion_tokens (its
    // reasoning models refuse max_tokens); other servers know max_tokens best (older
    // ones ignore max_completion_tokens).
    if (input.addedMaxTokens && input.backend.type === 'openai' && b.max_completion_tokens === undefined) {
      b.max_completion_tokens = b.max_tokens;
      delete b.max_tokens;
    }
    body = JSON.stringify(b);
  }
  if (input.stream) headers.accept = 'text/event-stream';
  return { method: 'POST', path: PATHS[input.endpoint], headers, body };
}

const defaultErrorType = (status: number) => (status >= 500 ? 'server_error' : 'invalid_request_error');

class OpenAIStreamTranslator implements StreamTranslator {
  readonly state: StreamState = { done: false, toolCalls: [], contentChars: 0, uncountedEvents: 0 };
  private readonly parseAll: boolean;

  constructor(private readonly opts: StreamOptions) {
    // Without a usage chunk coming we must look at every chunk to estimate tokens.
    this.parseAll = opts.collectText || (!opts.injectedUsage && !opts.clientWantsUsage);
    if (opts.collectText) this.state.text = '';
  }

  push(ev: SseEvent): string {
    const d = ev.data;
    if (d === '[DONE]') {
      this.state.done = true;
      return 'data: [DONE]\n\n';
    }
    const prefix = ev.event ? `event: ${ev.event}\n` : '';
    const hasUsage = USAGE_OBJECT.test(d);
    const mayBeError = d.includes('"error"');
    const hasTools = d.includes('"tool_calls"');
    if (!hasUsage && !mayBeError && !hasTools && !this.parseAll) {
      this.state.uncountedEvents!++;
      return sse(prefix, d);
    }

    let chunk: ChunkShape;
    try {
      chunk = JSON.parse(d) as ChunkShape;
    } catch {
      return sse(prefix, d);
    }
    if (chunk.error && !chunk.choices) {
      this.state.error = { message: chunk.error.message ?? 'upstream error', code: chunk.error.code ?? null, type: chunk.error.type };
      return sse(prefix, d);
    }
    if (chunk.object === 'error' && !chunk.choices) {
      // The older vLLM shape, rewritten as OpenAI's so clients recognise it as an error.
      const message = typeof chunk.message === 'string' ? chunk.message : 'upstream error';
      const code = chunk.code === undefined || chunk.code === null ? null : String(chunk.code);
      const type = typeof chunk.type === 'string' ? chunk.type : 'server_error';
      this.state.error = { message, code, type };
      return `${prefix}data: ${JSON.stringify(errorBody(code, message, type))}\n\n`;
    }
    const choice = chunk.choices?.[0];
    if (choice) {
      const text = choice.delta?.content ?? choice.text;
      if (text) {
        this.state.contentChars += text.length;
        if (this.state.text !== undefined) this.state.text += text;
      }
      for (const call of choice.delta?.tool_calls ?? []) {
        if (call.function?.name) this.state.toolCalls.push(call.function.name);
        // Tool calls are generated tokens too: estimates without usage count them.
        this.state.contentChars += (call.function?.name?.length ?? 0) + (typeof call.function?.arguments === 'string' ? call.function.arguments.length : 0);
      }
      if (choice.finish_reason) this.state.finishReason = choice.finish_reason;
    }
    if (hasUsage) {
      const usage = usageFromObject(chunk.usage);
      if (usage) this.state.usage = usage;
      if (this.opts.injectedUsage && !this.opts.clientWantsUsage && (!chunk.choices || chunk.choices.length === 0)) return '';
    }
    return sse(prefix, d);
  }
}

export const openAITranslator: Translator = {
  buildRequest: buildOpenAIRequest,

  translateResponse(endpoint: Endpoint, body: Uint8Array): TranslatedResponse {
    const text = decoder.decode(body);
    const out: TranslatedResponse = { body, usage: usageFromText(text) };
    if (endpoint === 'chat' && text.includes('"tool_calls"')) {
      try {
        const parsed = JSON.parse(text) as { choices?: Array<{ message?: { tool_calls?: Array<{ function?: { name?: string } }> } }> };
        out.toolCalls = (parsed.choices ?? []).flatMap((c) => (c.message?.tool_calls ?? []).map((t) => t.function?.name ?? 'unknown'));
      } catch {
        /* not JSON: relayed as it is */
      }
    }
    return out;
  },

  createStreamTranslator(_endpoint: Endpoint, opts: StreamOptions): StreamTranslator {
    return new OpenAIStreamTranslator(opts);
  },

  translateError(status: number, body: Uint8Array) {
    const text = decoder.decode(body);
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (parsed && typeof parsed === 'object' && parsed.error && typeof parsed.error === 'object' && !Array.isArray(parsed.error)) {
        const e = parsed.error as Record<string, unknown>;
        // OpenAI's shape already: the bytes as they came.
        if (typeof e.message === 'string' && typeof e.type === 'string' && 'param' in e && 'code' in e) return { status, body };
        // A server's partial version of it (vLLM, llama.cpp and others leave fields out):
        // the same error with the missing fields filled, so clients can rely on all four.
        const filled = {
          ...parsed,
          error: {
            ...e,
            message: typeof e.message === 'string' ? e.message : `upstream answered ${status}`,
            type: typeof e.type === 'string' ? e.type : defaultErrorType(status),
            param: e.param ?? null,
            code: e.code ?? null,
          },
        };
        return { status, body: JSON.stringify(filled) };
      }
    } catch {
      /* wrap below */
    }
    const type = defaultErrorType(status);
    return { status, body: JSON.stringify(errorBody(`upstream_${status}`, text.slice(0, 500) || `upstream answered ${status}`, type)) };
  },
};
