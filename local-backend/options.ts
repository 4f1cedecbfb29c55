/**
 * Settings of one local model, named after llama.cpp's server flags. Both entry points
 * build these once at start-up: the gateway from a `type: llama-cpp` backend's config
 * (fromBackendConfig), the standalone server from its command line (cli.ts).
 */
import { availableParallelism } from 'node:os';
import type { BackendConfig } from '../gateway/config/schema.js';

export interface LocalBackendOptions {
  /** GGUF file; absent → the generated tiny demo model (offline quickstart, tests). */
  modelPath?: string;
  /** Model id reported in responses and /v1/models. */
  modelId: string;
  /** 'auto' = everything on the GPU when one is present, CPU otherwise (node-llama-cpp's auto). */
  gpuLayers: number | 'auto' | 'max';
  /** Which compute backend node-llama-cpp loads: 'auto' picks the best available; false forces CPU. */
  gpu: 'auto' | false;
  /** Tokens per sequence; each of the `parallel` sequences gets its own window. */
  contextSize: number;
  threads: number;
  batchSize?: number;
  /** Context sequences decoding together (continuous batching). */
  parallel: number;
  flashAttention: boolean;
  /** Requests waiting for a sequence beyond `parallel`; more are refused with 429 + Retry-After. */
  queueSize: number;
  /** Create the embedding context (lazily, on the first /embeddings request). */
  embedding: boolean;
  /**
   * How long the batch barrier holds the others for a sequence that has not asked for its
   * next decode (batch-barrier.ts; default DEFAULT_MAX_WAIT_MS, 1 ms). Not a config field:
   * a test on a loaded machine raises it so scheduling delays do not decide its figure.
   */
  batchWaitMs?: number;
}

/** Below this, chat history compression fails with a byte-level vocabulary (established on node-llama-cpp 3.22.1). */
export const MIN_CONTEXT_SIZE = 512;

/**
 * Thread default: the tiny demo model runs fastest on one thread (thread sync costs more than
 * its 64-wide matmuls: ~1,800 tokens/s with 1 thread vs ~60 with 2 on a 2-core machine); real
 * models get all cores but one (the event loop needs one), capped at 8.
 */
export function defaultThreads(modelPath: string | undefined): number {
  if (modelPath === undefined) return 1;
  return Math.max(1, Math.min(8, availableParallelism() - 1));
}

export function modelIdFromPath(modelPath: string | undefined): string {
  if (modelPath === undefined) return 'switchyard-tiny-llama';
  const base = modelPath.split(/[\\/]/).pop() ?? modelPath;
  return base.replace(/\.gguf$/i, '');
}

export function fromBackendConfig(cfg: BackendConfig, overrides: Partial<LocalBackendOptions> = {}): LocalBackendOptions {
  return {
    modelPath: cfg.model_path,
    modelId: modelIdFromPath(cfg.model_path),
    gpuLayers: cfg.gpu_layers,
    gpu: 'auto',
    contextSize: Math.max(MIN_CONTEXT_SIZE, cfg.context_size),
    threads: cfg.threads ?? defaultThreads(cfg.model_path),
    batchSize: cfg.batch_size,
    parallel: cfg.parallel,
    flashAttention: cfg.flash_attention,
    queueSize: cfg.queue_size,
    embedding: cfg.embedding,
    ...overrides,
  };
}
