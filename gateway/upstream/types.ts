/**
 * What the dispatch stage talks to: one BackendClient per configured backend,
 * created once at start-up (or reload) and shared by all requests.
 */
import type { UpstreamRequest } from '../providers/types.js';
import type { Cancellation } from './cancellation.js';
import { GatewayError } from '../errors.js';

/** A whole (non-stream) upstream answer larger than this is refused. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export function responseTooLarge(): GatewayError {
  return new GatewayError('upstream_bad_response', { message: 'The upstream response is too large.' });
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as it arrives; consume it or call `dump()`. */
  body: AsyncIterable<Uint8Array>;
  /** The whole body at once, when the client can do that faster than iterating. */
  bytes?(): Promise<Uint8Array>;
  /** Discard the rest of the body and free the connection. */
  dump(): Promise<void>;
  /**
   * One header's value without building the whole header object (the stream path reads
   * two on every request). Case-insensitive; the first of repeated headers.
   */
  header?(name: string): string | undefined;
  /** The whole body has arrived (nothing left to read or discard). */
  readonly finished?: boolean;
  /**
   * The next chunk already received, without waiting (undefined when none is): lets a
   * relay send everything that arrived together in one client write. Shares the queue
   * of `body`'s iterator.
   */
  readBuffered?(): Uint8Array | undefined;
}

export interface RequestOptions {
  /** Cancelled when the client goes away (or a caller's deadline passes): stop the upstream work. */
  cancel: Cancellation;
  /** Per-request override of the backend's timeout (route timeout_ms): bounds the whole exchange. */
  timeoutMs?: number;
  /** A streamed answer: the backend's timeout_ms bounds its head, not its whole length. */
  stream?: boolean;
}

export interface BackendClient {
  readonly name: string;
  request(req: UpstreamRequest, opts: RequestOptions): Promise<UpstreamResponse>;
  /** Optional: load what the backend needs before /ready turns true (local models). */
  warmUp?(): Promise<void>;
  /**
   * Optional: tokens of a text under the backend's own tokenizer (local models). When
   * present, admission (context fitting, tpm, budgets) counts prompt texts with it
   * instead of the OpenAI encodings or the estimator.
   */
  countTokens?(text: string): Promise<number> | number;
  close(): Promise<void>;
}
