/**
 * One RequestContext per request, created by the server handler and passed through
 * every stage and finalizer. Stages add what they learn; finalizers read it.
 */
import type { Config, KeyConfig, ModelConfig, RouteConfig, BackendConfig } from '../config/schema.js';
import type { Endpoint, Usage } from '../providers/types.js';
import type { HttpRequest, HttpResponse } from '../server/types.js';
import type { RequestCancellation } from '../upstream/cancellation.js';

export interface Target {
  alias: string;
  model: ModelConfig;
  backendName: string;
  backend: BackendConfig;
}

export interface RequestContext {
  readonly id: string;
  /** process.hrtime.bigint() at arrival. */
  readonly startNs: bigint;
  readonly req: HttpRequest;
  readonly res: HttpResponse;
  readonly rawBody: Buffer;
  /** The config snapshot this request started on (hot reload never changes it mid-request). */
  readonly config: Config;
  /** Aborted when the client disconnects. */
  readonly abort: RequestCancellation;

  endpoint: Endpoint;
  /** Parsed client body; set by parseRequest. */
  body: Record<string, unknown>;
  /** Some stage changed `body`: the upstream request must be re-serialised. */
  bodyChanged: boolean;
  /** The model alias the client asked for. */
  modelAlias: string;
  stream: boolean;
  /** The client set stream_options.include_usage itself. */
  clientWantsUsage: boolean;

  key?: KeyConfig;
  route?: RouteConfig;
  /** The chosen target (after routing); fallbacks replace it. */
  target?: Target;
  /** Ordered candidates the dispatcher may try (first = primary). */
  candidates: Target[];
  /** Explanation for x-switchyard-route. */
  routeInfo?: string;

  /** Estimated prompt tokens at admission (set by the token counter when a stage needs it). */
  promptTokensEstimate?: number;
  usage?: Usage;
  costUsd?: number;

  /** Extra response headers set by stages (rate-limit headers, cache, route...). */
  responseHeaders: Record<string, string>;
  status: number;
  /** First byte of the response body reached the client. */
  firstByteNs?: bigint;
  /** Time spent waiting on the upstream (headers + body), for the overhead figure. */
  upstreamNs: bigint;
  /**
   * Time spent waiting that is neither the gateway's work nor this request's upstream
   * call: retry backoff, a coalesced follower waiting for its leader. Not overhead.
   */
  waitNs: bigint;
  errorCode?: string;
  /** Stream ended broken (cut, error event, client abort). */
  streamOutcome?: 'complete' | 'interrupted' | 'client_aborted' | 'upstream_error' | 'shutdown';
  toolCalls?: string[];
  cacheResult?: string;

  /** Run after the response ended, success or not (settle reservations, release slots). */
  readonly onEnd: Array<(ctx: RequestContext) => void | Promise<void>>;
  /** Free-form per-feature data, keyed by stage name. */
  readonly locals: Record<string, unknown>;
}

/** A stage either continues (undefined), or answered the client itself (STOP), or throws GatewayError. */
export const STOP = Symbol('stop');
export type StageResult = void | typeof STOP;
export type Stage = (ctx: RequestContext) => StageResult | Promise<StageResult>;
export type Finalizer = (ctx: RequestContext, error: unknown) => void | Promise<void>;
