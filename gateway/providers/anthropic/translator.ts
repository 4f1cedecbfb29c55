/**
 * The Translator for backends of type `anthropic`: OpenAI chat/completions and legacy
 * completions in, Anthropic Messages API out (POST {base_url}/v1/messages, base_url
 * defaulting to https://api.anthropic.com). One instance per backend, shared by all
 * requests; it holds no per-request state (the stream translator does).
 */
import type { BackendConfig } from '../../config/schema.js';
import type { Endpoint, StreamOptions, StreamTranslator, TranslateRequestInput, TranslatedResponse, Translator, UpstreamRequest } from '../types.js';
import { translateAnthropicError } from './errors.js';
import { buildAnthropicBody } from './request.js';
import { translateAnthropicResponse } from './response.js';
import { createAnthropicStreamTranslator } from './stream.js';
import { ANTHROPIC_DEFAULT_BASE_URL, ANTHROPIC_MESSAGES_PATH } from './wire.js';

export { ANTHROPIC_DEFAULT_BASE_URL };

/** The base URL the upstream client should use for this backend. */
export function anthropicBaseUrl(backend: BackendConfig): string {
  return backend.base_url ?? ANTHROPIC_DEFAULT_BASE_URL;
}

export function createAnthropicTranslator(): Translator {
  return {
    buildRequest(input: TranslateRequestInput): UpstreamRequest {
      // The body is always re-serialised: the client's bytes are OpenAI-shaped, so rawBody is never forwarded.
      const body = buildAnthropicBody(input.endpoint, input.body, {
        upstreamModel: input.upstreamModel,
        stream: input.stream,
        maxTokensDefault: input.backend.max_tokens_default,
      });
      const headers: Record<string, string> = {
        ...input.backend.headers,
        'content-type': 'application/json',
        'anthropic-version': input.backend.anthropic_version,
      };
      if (input.stream) headers.accept = 'text/event-stream';
      if (input.apiKey) headers['x-api-key'] = input.apiKey;
      return { method: 'POST', path: ANTHROPIC_MESSAGES_PATH, headers, body: JSON.stringify(body) };
    },
    translateResponse(endpoint: Endpoint, body: Uint8Array, clientModel: string): TranslatedResponse {
      return translateAnthropicResponse(endpoint, body, clientModel);
    },
    createStreamTranslator(endpoint: Endpoint, opts: StreamOptions): StreamTranslator {
      return createAnthropicStreamTranslator(endpoint, opts);
    },
    translateError(status: number, body: Uint8Array): { status: number; body: string } {
      return translateAnthropicError(status, body);
    },
  };
}
