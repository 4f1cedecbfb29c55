/**
 * The generated tiny LLaMA model for tests: settings that are fast on a shared 2-core
 * machine (CPU, one thread, a 512-token window) and a one-call standalone server on
 * port 0. Gateway tests route an alias to it either in-process (tinyLlamaBackend()) or
 * through the standalone server (`type: openai-compatible, base_url: server.url + '/v1'`).
 */
import { BackendSchema, type BackendConfig } from '../../gateway/config/schema.js';
import { fromBackendConfig, type LocalBackendOptions } from '../../local-backend/options.js';
import { startLocalServer, type LocalServer, type LocalServerOptions } from '../../local-backend/server.js';

/** The test settings as LocalBackendOptions (CPU forced). */
export function tinyModelOptions(overrides: Partial<LocalBackendOptions> = {}): LocalBackendOptions {
  return fromBackendConfig(tinyLlamaBackend(), { gpu: false, ...overrides });
}

/**
 * A `type: llama-cpp` backend config (no model_path → the generated model). Pass it to
 * createLlamaCppBackendClient with `overrides: { gpu: false }` to keep tests on the CPU.
 */
export function tinyLlamaBackend(fields: Record<string, unknown> = {}): BackendConfig {
  return BackendSchema.parse({ type: 'llama-cpp', context_size: 512, threads: 1, parallel: 2, ...fields });
}

export function startTinyLocalServer(
  model: Partial<LocalBackendOptions> = {},
  server: Omit<LocalServerOptions, 'model'> = {},
): Promise<LocalServer> {
  return startLocalServer({ port: 0, host: '127.0.0.1', shutdownGraceMs: 1000, ...server, model: tinyModelOptions(model) });
}
