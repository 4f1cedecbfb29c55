/**
 * The gateway's BackendClient for `type: llama-cpp`: the model runs inside the gateway
 * process and requests go straight to the shared OpenAI handler, no socket in between.
 * gateway/providers/registry.ts creates one per configured backend (dynamic import, so
 * node-llama-cpp loads only when a local model is configured) and shares it by all
 * requests. Paths are relative to base_url `/v1` ('/chat/completions', '/models', ...).
 * Without `model_path` the generated tiny demo model is used, so the shipped config works
 * offline. The model loads on the first request, or at start-up through warmUp().
 */
import type { Registry } from 'prom-client';
import type { BackendConfig } from '../gateway/config/schema.js';
import { GatewayError } from '../gateway/errors.js';
import type { Logger } from '../gateway/logger.js';
import type { UpstreamRequest } from '../gateway/providers/types.js';
import type { BackendClient, RequestOptions, UpstreamResponse } from '../gateway/upstream/types.js';
import { createLocalEngine, type LocalEngine } from './engine.js';
import { getLocalMetrics } from './metrics.js';
import { createOpenAIHandler, errorResponse } from './openai-handler.js';
import { fromBackendConfig, type LocalBackendOptions } from './options.js';

/** Loaded engines by backend name, shared across config generations (gateway/generation.ts). */
export type SharedEngines = Map<string, { key: string; engine: LocalEngine; users: number }>;

export interface LlamaCppClientOptions {
  registry?: Registry;
  logger?: Logger;
  /** Overrides of the settings derived from the backend config (tests force `gpu: false`). */
  overrides?: Partial<LocalBackendOptions>;
  /**
   * Engines of earlier generations: a reload whose settings for this backend are the same
   * reuses the loaded model instead of loading a second copy (a multi-GB GPU model twice,
   * or out of memory). An engine is closed when its last client is.
   */
  shared?: SharedEngines;
}

export interface LlamaCppBackendClient extends BackendClient {
  /** Loads the model now instead of on the first request. */
  warmUp(): Promise<void>;
  readonly engine: LocalEngine;
}

function parseBody(body: UpstreamRequest['body']): unknown {
  if (body === undefined) return undefined;
  const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new GatewayError('invalid_json');
  }
}

export function createLlamaCppBackendClient(name: string, cfg: BackendConfig, opts: LlamaCppClientOptions = {}): LlamaCppBackendClient {
  const options = fromBackendConfig(cfg, opts.overrides);
  const key = JSON.stringify(options);
  const known = opts.shared?.get(name);
  const entry =
    known && known.key === key
      ? known
      : { key, engine: createLocalEngine(options, opts.registry ? { metrics: getLocalMetrics(opts.registry), label: name } : undefined), users: 0 };
  entry.users++;
  opts.shared?.set(name, entry);
  const engine = entry.engine;
  let closed = false;
  const log = opts.logger?.child({ backend: name });
  const handle = createOpenAIHandler(engine, { onError: (err) => log?.error({ err }, 'local model request failed') });

  return {
    name,
    engine,
    async warmUp() {
      const started = performance.now();
      try {
        await engine.load();
      } catch (err) {
        // One model that cannot load must not take the gateway (and every other alias)
        // down: its requests answer 503 (each tries to load it again), the cause is logged
        // once here, naming the backend and the file.
        const detail = (err as { detail?: unknown }).detail ?? err;
        log?.error({ backend: name, model_path: engine.options.modelPath, err: detail instanceof Error ? detail.message : String(detail) }, 'local model could not be loaded; its models answer 503');
        return;
      }
      log?.info({ model: engine.options.modelId, ms: Math.round(performance.now() - started) }, 'local model loaded');
    },
    /** The model's own tokenizer (loads the model if needed); no special tokens. */
    async countTokens(text: string) {
      const { model } = await engine.load();
      return model.tokenize(text).length;
    },
    async request(req: UpstreamRequest, { cancel }: RequestOptions): Promise<UpstreamResponse> {
      let res;
      try {
        res = await handle(req.path, parseBody(req.body), cancel.signal);
      } catch (err) {
        res = errorResponse(err);
      }
      const iterator = res.body[Symbol.asyncIterator]();
      return {
        status: res.status,
        headers: res.headers,
        body: { [Symbol.asyncIterator]: () => iterator },
        // Stopping the read aborts the generation and frees the sequence (AsyncChannel.return).
        async dump() { await iterator.return?.(); },
      };
    },
    close: async () => {
      if (closed) return;
      closed = true;
      if (--entry.users > 0) return;
      if (opts.shared?.get(name) === entry) opts.shared.delete(name);
      await engine.close();
    },
  };
}
