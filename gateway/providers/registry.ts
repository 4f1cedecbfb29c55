/**
 * The only place that switches on backend type: which translator speaks a backend's
 * API and which client carries the bytes (HTTP pool or the in-process model).
 */
import type { SharedEngines } from '../../local-backend/in-process-client.js';
import type { BackendConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { Registry } from 'prom-client';
import type { BackendClient } from '../upstream/types.js';
import { createHttpBackendClient } from '../upstream/http-client.js';
import type { Translator } from './types.js';
import { openAITranslator } from './openai/translator.js';

const DEFAULT_BASE: Partial<Record<BackendConfig['type'], string>> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com',
};

export async function createTranslator(cfg: BackendConfig): Promise<Translator> {
  switch (cfg.type) {
    case 'openai':
    case 'openai-compatible':
    case 'llama-cpp':
      return openAITranslator;
    case 'anthropic': {
      const mod = await import('./anthropic/translator.js');
      return mod.createAnthropicTranslator();
    }
  }
}

export interface BackendClientDeps {
  logger: Logger;
  registry: Registry;
  /** In-process engines carried across reloads. */
  localEngines?: SharedEngines;
}

export async function createBackendClient(name: string, cfg: BackendConfig, deps: BackendClientDeps): Promise<BackendClient> {
  if (cfg.type === 'llama-cpp') {
    // Loaded lazily: node-llama-cpp is heavy and only needed when a local model is configured.
    const mod = await import('../../local-backend/in-process-client.js');
    return mod.createLlamaCppBackendClient(name, cfg, { registry: deps.registry, logger: deps.logger, shared: deps.localEngines });
  }
  const base = cfg.base_url ?? DEFAULT_BASE[cfg.type];
  if (!base) throw new Error(`backend ${name}: base_url is required`);
  return createHttpBackendClient(name, cfg, base);
}
