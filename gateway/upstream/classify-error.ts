/**
 * Maps what undici (or an aborted signal) throws into the gateway's error table:
 * timeouts → 504 upstream_timeout, everything network-level → 502 upstream_unreachable.
 * `reason` is a bounded label for switchyard_upstream_errors_total.
 */
import { GatewayError } from '../errors.js';

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

export interface ClassifiedError {
  error: GatewayError;
  reason: 'timeout' | 'connect' | 'reset' | 'network' | 'aborted';
  retryable: boolean;
}

export function classifyUpstreamError(err: unknown, clientAborted: boolean): ClassifiedError {
  const e = err as { code?: string; name?: string; cause?: { code?: string; name?: string } };
  const code = e?.code ?? e?.cause?.code;
  if (clientAborted) return { error: new GatewayError('upstream_unreachable', { detail: err }), reason: 'aborted', retryable: false };
  if ((code && TIMEOUT_CODES.has(code)) || e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') {
    return { error: new GatewayError('upstream_timeout', { detail: err }), reason: 'timeout', retryable: true };
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH') {
    return { error: new GatewayError('upstream_unreachable', { detail: err }), reason: 'connect', retryable: true };
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return { error: new GatewayError('upstream_unreachable', { detail: err }), reason: 'reset', retryable: true };
  }
  return { error: new GatewayError('upstream_unreachable', { detail: err }), reason: 'network', retryable: true };
}
