/**
 * Anthropic error bodies ({type:'error', error:{type, message}}, https://docs.anthropic.com/en/api/errors)
 * → OpenAI error bodies with the status an OpenAI client expects. Used for non-2xx
 * answers (translateError) and for `event: error` inside a stream.
 */
import { errorBody, type OpenAIErrorBody } from '../../errors.js';

interface Mapping {
  status: number;
  type: string;
  code: string;
}

const BY_TYPE: Record<string, Mapping> = {
  invalid_request_error: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  authentication_error: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  permission_error: { status: 403, type: 'invalid_request_error', code: 'permission_denied' },
  not_found_error: { status: 404, type: 'invalid_request_error', code: 'model_not_found' },
  request_too_large: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  rate_limit_error: { status: 429, type: 'requests', code: 'rate_limit_exceeded' },
  api_error: { status: 500, type: 'server_error', code: 'upstream_error' },
  // 529 is Anthropic's own "overloaded" status; OpenAI clients understand 503.
  overloaded_error: { status: 503, type: 'server_error', code: 'overloaded' },
};

function byStatus(status: number): Mapping {
  if (status === 529) return BY_TYPE.overloaded_error;
  const found = Object.values(BY_TYPE).find((m) => m.status === status);
  if (found) return found;
  return status >= 500 ? { status: 502, type: 'server_error', code: 'upstream_error' } : { status, type: 'invalid_request_error', code: 'upstream_error' };
}

/**
 * Anthropic's "prompt is too long: N tokens > M maximum" is an invalid_request_error like
 * any other; OpenAI answers it with code context_length_exceeded, the code clients (agent
 * frameworks) watch for to trim the conversation and retry.
 */
const PROMPT_TOO_LONG = /prompt is too long/i;

export function mapAnthropicError(status: number, errorType: string | undefined, message: string | undefined): { status: number; body: OpenAIErrorBody } {
  const m = (errorType && BY_TYPE[errorType]) || byStatus(status);
  const text = message || `The upstream backend answered ${status}.`;
  if (m.status === 400 && message && PROMPT_TOO_LONG.test(message)) return { status: 400, body: errorBody('context_length_exceeded', text, m.type, 'messages') };
  return { status: m.status, body: errorBody(m.code, text, m.type) };
}

/** Parses the body when it is Anthropic's error JSON; anything else (an HTML proxy page) maps by status alone. */
export function translateAnthropicError(status: number, bytes: Uint8Array): { status: number; body: string } {
  let type: string | undefined;
  let message: string | undefined;
  try {
    const parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as {
      error?: { type?: unknown; message?: unknown };
    };
    if (typeof parsed?.error?.type === 'string') type = parsed.error.type;
    if (typeof parsed?.error?.message === 'string') message = parsed.error.message;
  } catch {
    // not JSON: status alone decides
  }
  const { status: s, body } = mapAnthropicError(status, type, message);
  return { status: s, body: JSON.stringify(body) };
}
