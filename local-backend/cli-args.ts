/**
 * Command-line flags of the standalone server, named like llama.cpp's server flags.
 * Pure (argv in, settings out) so tests and the launcher can use it without side effects.
 */
import { parseArgs } from 'node:util';
import { defaultThreads, MIN_CONTEXT_SIZE, modelIdFromPath, type LocalBackendOptions } from './options.js';

export const USAGE = `Usage: switchyard-local-backend [--model FILE.gguf] [options]
  --model FILE          GGUF model file (default: the generated tiny demo model)
  --alias NAME          model id in responses and /v1/models (default: file name)
  --gpu-layers N|auto|max  layers offloaded to the GPU (default: auto)
  --cpu                 never use a GPU
  --context-size N      tokens per sequence (default 2048, min ${MIN_CONTEXT_SIZE})
  --threads N           CPU threads (default: cores - 1, 1 for the demo model)
  --parallel N          sequences decoding together (default 1)
  --batch-size N        prompt processing batch size
  --flash-attention     enable flash attention
  --queue-size N        requests waiting beyond --parallel (default 64)
  --no-embedding        disable /v1/embeddings
  --host H              listen address (default 0.0.0.0)
  --port N              listen port (default 8081)
  --log-level L         pino level (default info)`;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

export function parseCli(argv: string[]): { model: LocalBackendOptions; host: string; port: number; logLevel: string } | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', short: 'm' },
      alias: { type: 'string' },
      'gpu-layers': { type: 'string' },
      cpu: { type: 'boolean', default: false },
      'context-size': { type: 'string', short: 'c' },
      threads: { type: 'string', short: 't' },
      parallel: { type: 'string' },
      'batch-size': { type: 'string', short: 'b' },
      'flash-attention': { type: 'boolean', default: false },
      'queue-size': { type: 'string' },
      'no-embedding': { type: 'boolean', default: false },
      host: { type: 'string', default: '0.0.0.0' },
      port: { type: 'string', default: '8081' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const gl = values['gpu-layers'];
  const gpuLayers = gl === undefined || gl === 'auto' || gl === 'max' ? (gl ?? 'auto') : int('gpu-layers', gl)!;
  const modelPath = values.model;
  return {
    model: {
      modelPath,
      modelId: values.alias ?? modelIdFromPath(modelPath),
      gpuLayers: values.cpu ? 0 : gpuLayers,
      gpu: values.cpu ? false : 'auto',
      contextSize: Math.max(MIN_CONTEXT_SIZE, int('context-size', values['context-size']) ?? 2048),
      threads: int('threads', values.threads) ?? defaultThreads(modelPath),
      batchSize: int('batch-size', values['batch-size']),
      parallel: Math.max(1, int('parallel', values.parallel) ?? 1),
      flashAttention: values['flash-attention'],
      queueSize: int('queue-size', values['queue-size']) ?? 64,
      embedding: !values['no-embedding'],
    },
    host: values.host,
    port: int('port', values.port)!,
    logLevel: values['log-level'],
  };
}
