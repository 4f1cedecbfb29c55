/**
 * The one error table. Every byte the gateway writes on failure goes through
 * `toOpenAIError()`, so clients always receive OpenAI's shape:
 *   {"error": {"message", "type", "param", "code"}}
 * (https://platform.openai.com/docs/guides/error-codes). docs/errors.md is kept in
 * sync with this table by test/errors.test.ts.
 */

export interface ErrorSpec {
  status: number;
  type: string;
  message: string;
}

export const ERROR_TABLE = {
  invalid_json: { status: 400, type: 'invalid_request_error', message: 'The request body is not valid JSON.' },
  invalid_request: { status: 400, type: 'invalid_request_error', message: 'The request is invalid.' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error', message: "The prompt plus max_tokens exceeds the model's context window." },
  content_filter: { status: 400, type: 'invalid_request_error', message: 'The request was rejected by a content filter.' },
  invalid_api_key: { status: 401, type: 'invalid_request_error', message: 'Missing or unknown API key.' },
  model_not_allowed: { status: 403, type: 'invalid_request_error', message: 'This API key may not use the requested model.' },
  admin_forbidden: { status: 403, type: 'invalid_request_error', message: 'The admin API needs the admin key.' },
  not_found: { status: 404, type: 'invalid_request_error', message: 'Unknown path.' },
  model_not_found: { status: 404, type: 'invalid_request_error', message: 'The model does not exist.' },
  method_not_allowed: { status: 405, type: 'invalid_request_error', message: 'Method not allowed for this path.' },
  request_too_large: { status: 413, type: 'invalid_request_error', message: 'The request body is larger than the allowed maximum.' },
  rate_limit_exceeded: { status: 429, type: 'requests', message: 'Rate limit reached.' },
  budget_exceeded: { status: 429, type: 'insufficient_quota', message: 'The budget of this key is exhausted.' },
  queue_full: { status: 429, type: 'requests', message: 'The backend queue is full.' },
  internal_error: { status: 500, type: 'server_error', message: 'Internal gateway error.' },
  upstream_unreachable: { status: 502, type: 'server_error', message: 'The upstream backend could not be reached.' },
  upstream_bad_response: { status: 502, type: 'server_error', message: 'The upstream backend sent an invalid response.' },
  upstream_stream_interrupted: { status: 502, type: 'server_error', message: 'The upstream stream ended before it was complete.' },
  backend_not_configured: { status: 503, type: 'server_error', message: 'The backend for this model is not configured.' },
  backend_unavailable: { status: 503, type: 'server_error', message: 'No healthy backend is available for this model.' },
  queue_timeout: { status: 503, type: 'server_error', message: 'Timed out waiting for a free backend slot.' },
  store_unavailable: { status: 503, type: 'server_error', message: 'The shared state store is unavailable.' },
  shutting_down: { status: 503, type: 'server_error', message: 'The gateway is shutting down.' },
  upstream_timeout: { status: 504, type: 'server_error', message: 'The upstream backend timed out.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface GatewayErrorOptions {
  message?: string;
  param?: string | null;
  headers?: Record<string, string>;
  /** Goes to the log only, never to the client. */
  detail?: unknown;
  /** Overrides the table's status (e.g. upstream pass-through). */
  status?: number;
  type?: string;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly headers: Record<string, string> | undefined;
  readonly detail: unknown;

  constructor(code: ErrorCode, opts: GatewayErrorOptions = {}) {
    const spec: ErrorSpec = ERROR_TABLE[code];
    super(opts.message ?? spec.message);
    this.name = 'GatewayError';
    this.code = code;
    this.status = opts.status ?? spec.status;
    this.type = opts.type ?? spec.type;
    this.param = opts.param ?? null;
    this.headers = opts.headers;
    this.detail = opts.detail;
  }
}

/**
 * An upstream error relayed as it came (status and body), e.g. a 400 from OpenAI.
 * The body is already OpenAI-shaped (or translated to it by the provider).
 */
export class UpstreamHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Uint8Array | string,
    readonly headers: Record<string, string> = {},
  ) {
    super(`upstream answered ${status}`);
    this.name = 'UpstreamHttpError';
  }
}

export interface OpenAIErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string | Uint8Array;
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function errorBody(code: string | null, message: string, type: string, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** Turns anything thrown into the bytes the client receives. Unknown errors become a generic 500. */
export function toOpenAIError(err: unknown): OpenAIErrorResponse {
  if (err instanceof UpstreamHttpError) {
    return { status: err.status, headers: err.headers, body: err.body };
  }
  const e = err instanceof GatewayError ? err : new GatewayError('internal_error', { detail: err });
  return {
    status: e.status,
    headers: e.headers ?? {},
    body: JSON.stringify(errorBody(e.code, e.message, e.type, e.param)),
  };
}

/** The SSE event that ends a stream which broke after its first byte. */
export function streamErrorEvent(code: ErrorCode, message?: string): string {
  const spec: ErrorSpec = ERROR_TABLE[code];
  return `data: ${JSON.stringify(errorBody(code, message ?? spec.message, spec.type))}\n\n`;
}
