/**
 * Providers are translators (one per client API × backend API pair): plain data in,
 * plain data out. A translator never sees uWS, undici or the pipeline context, so its
 * tests need no mocks. registry.ts is the only place that switches on backend type.
 */
import type { BackendConfig } from '../config/schema.js';

export type Endpoint = 'chat' | 'completions' | 'embeddings';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Included in completion_tokens (OpenAI's completion_tokens_details.reasoning_tokens). */
  reasoning_tokens?: number;
  /** True when counted by the gateway because the backend sent none. */
  estimated?: boolean;
}

/** What the upstream layer sends: path is relative to the backend's base_url. */
export interface UpstreamRequest {
  method: 'POST' | 'GET';
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

export interface TranslateRequestInput {
  endpoint: Endpoint;
  /** The client's parsed body (OpenAI shape), possibly changed by stages. */
  body: Record<string, unknown>;
  /** The client's bytes: forward these as they are when nothing changed. */
  rawBody: Uint8Array;
  /** A stage changed `body` (trimmed messages, clamped max_tokens, redaction...). */
  bodyChanged: boolean;
  /** Model name the backend knows (models.<alias>.model). */
  upstreamModel: string;
  stream: boolean;
  /** Ask the backend for a final usage chunk the client did not ask for. */
  injectUsage: boolean;
  /**
   * The gateway added `max_tokens` (budgets, TPM: the client set no completion limit):
   * the translator may carry it in the field its backend prefers.
   */
  addedMaxTokens?: boolean;
  backend: BackendConfig;
  apiKey: string | undefined;
}

export interface TranslatedResponse {
  /** Bytes for the client (OpenAI shape). */
  body: string | Uint8Array;
  usage?: Usage;
  /** Function names of tool calls in the answer (for tool-call metrics). */
  toolCalls?: string[];
  finishReason?: string;
}

export interface SseEvent {
  event?: string;
  data: string;
}

export interface StreamState {
  /** The stream reached its proper end ([DONE] or the provider's equivalent). */
  done: boolean;
  usage?: Usage;
  /** An error event came inside the stream (already relayed to the client as an SSE error). */
  error?: { message: string; code?: string | null; type?: string };
  toolCalls: string[];
  /** Characters of generated text relayed, for estimating usage when none came. */
  contentChars: number;
  /**
   * Events relayed without being parsed (a usage chunk was expected, so their text was
   * not counted): if the stream is cut before that chunk, each counts as one token —
   * OpenAI-style servers send about one token per event — so a cut stream is never
   * estimated at zero.
   */
  uncountedEvents?: number;
  /** Concatenated generated text, only when requested (cache, completion filters). */
  text?: string;
  finishReason?: string;
}

/** One per streamed request. */
export interface StreamTranslator {
  /** One upstream SSE event in; the SSE text for the client out ('' to send nothing). */
  push(event: SseEvent): string;
  readonly state: StreamState;
}

export interface StreamOptions {
  /** The client asked for include_usage itself: relay the usage chunk. */
  clientWantsUsage: boolean;
  /** The gateway injected include_usage: swallow the usage chunk. */
  injectedUsage: boolean;
  /** Model alias the client asked for, echoed in translated chunks. */
  clientModel: string;
  /** Keep the generated text in state.text. */
  collectText: boolean;
}

export interface Translator {
  buildRequest(input: TranslateRequestInput): UpstreamRequest;
  /** A complete 2xx upstream body → the client's body and its usage. */
  translateResponse(endpoint: Endpoint, body: Uint8Array, clientModel: string): TranslatedResponse;
  createStreamTranslator(endpoint: Endpoint, opts: StreamOptions): StreamTranslator;
  /** A non-2xx upstream answer → the status and OpenAI-shaped body for the client. */
  translateError(status: number, body: Uint8Array): { status: number; body: string | Uint8Array };
}
