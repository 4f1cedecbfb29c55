/**
 * The configuration schema: YAML in, a fully defaulted typed object out.
 * Field names are the users' contract (see the README's config reference): keep them.
 * Every section is strict, so a typo is an error that names its path instead of a
 * silently ignored setting.
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const LimitsSchema = z.strictObject({
  rpm: positiveInt.optional(),
  tpm: positiveInt.optional(),
  concurrent: positiveInt.optional(),
});

export const BudgetSchema = z.strictObject({
  usd_per_day: z.number().nonnegative().optional(),
  usd_per_month: z.number().nonnegative().optional(),
  tokens_per_day: nonNegInt.optional(),
  tokens_per_month: nonNegInt.optional(),
  on_exceed: z.enum(['reject', 'clamp']).default('reject'),
});

export const ServerSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(8080),
  max_body_bytes: positiveInt.default(10 * 1024 * 1024),
  shutdown_grace_ms: nonNegInt.default(30000),
  /** auto = uWebSockets.js when its native module loads, else node:http. */
  implementation: z.enum(['auto', 'uws', 'node']).default('auto'),
});

export const StoreSchema = z.strictObject({
  kind: z.enum(['memory', 'redis']).default('memory'),
  redis_url: z.string().optional(),
  on_failure: z.enum(['fail_open', 'fail_closed']).default('fail_open'),
  replicas_hint: positiveInt.default(1),
  timeout_ms: positiveInt.default(250),
  key_prefix: z.string().default('switchyard:'),
});

export const LoggingSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Log file path; stdout when absent. */
  file: z.string().optional(),
});

export const KeySchema = z.strictObject({
  id: z.string().min(1),
  key: z.string().min(1),
  models: z.array(z.string()).default(['*']),
  team: z.string().optional(),
  limits: LimitsSchema.optional(),
  budget: BudgetSchema.optional(),
});

export const TeamSchema = z.strictObject({
  limits: LimitsSchema.optional(),
  budget: BudgetSchema.optional(),
});

export const AdmissionSchema = z.strictObject({
  max_concurrent: positiveInt.optional(),
  max_queue: nonNegInt.default(1000),
  queue_timeout_ms: positiveInt.default(30000),
});

export const HealthSchema = z.strictObject({
  failure_threshold: positiveInt.default(5),
  error_rate: z.number().min(0).max(1).optional(),
  window_ms: positiveInt.default(30000),
  min_requests: positiveInt.default(20),
  cooldown_ms: positiveInt.default(10000),
  active_check_ms: positiveInt.optional(),
});

export const BackendSchema = z.strictObject({
  type: z.enum(['openai', 'openai-compatible', 'anthropic', 'llama-cpp']),
  base_url: z.string().optional(),
  api_key: z.string().optional(),
  headers: z.record(z.string(), z.string()).default({}),
  max_connections: positiveInt.default(128),
  connect_timeout_ms: positiveInt.default(10000),
  /** Time to the upstream's response headers (non-stream: whole answer's first byte). */
  headers_timeout_ms: positiveInt.optional(),
  /**
   * From dispatch (time waiting for a pooled connection included): the whole answer of a
   * non-stream request, the response head of a stream; and the longest gap between two
   * body chunks.
   */
  timeout_ms: positiveInt.default(60000),
  keep_alive_ms: positiveInt.default(30000),
  /** Set stream_options.include_usage upstream; off for servers that reject it. */
  inject_stream_usage: z.boolean().default(true),
  // anthropic
  max_tokens_default: positiveInt.default(4096),
  anthropic_version: z.string().default('2023-06-01'),
  // llama-cpp (in-process); names follow llama.cpp's server flags
  model_path: z.string().optional(),
  gpu_layers: z.union([nonNegInt, z.enum(['auto', 'max'])]).default('auto'),
  context_size: positiveInt.default(2048),
  threads: positiveInt.optional(),
  batch_size: positiveInt.optional(),
  parallel: positiveInt.default(1),
  flash_attention: z.boolean().default(false),
  queue_size: nonNegInt.default(64),
  embedding: z.boolean().default(true),
  admission: AdmissionSchema.optional(),
  health: HealthSchema.default(() => HealthSchema.parse({})),
});

export const PriceSchema = z.strictObject({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
});

export const ModelSchema = z.strictObject({
  backend: z.string(),
  model: z.string(),
  /** USD per million tokens. */
  price: PriceSchema.optional(),
  context_window: positiveInt.optional(),
  default_max_tokens: positiveInt.optional(),
  /** How prompt tokens are counted: exact OpenAI encodings, or the estimator. */
  tokenizer: z.enum(['auto', 'o200k', 'cl100k', 'estimate']).default('auto'),
  limits: LimitsSchema.optional(),
});

export const RouteMatchSchema = z.strictObject({
  model: z.string().optional(),
  key: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  has_tools: z.boolean().optional(),
  has_images: z.boolean().optional(),
  stream: z.boolean().optional(),
  prompt_tokens: z.strictObject({ min: nonNegInt.optional(), max: nonNegInt.optional() }).optional(),
});

export const ComplexityTargetsSchema = z.strictObject({
  simple: z.string(),
  medium: z.string(),
  complex: z.string(),
  reasoning: z.string(),
  reference: z.string().optional(),
});

/** Who shares cached answers: every key of the gateway, or each virtual key on its own. */
export const CacheScopeSchema = z.enum(['shared', 'key']);

export const RouteCacheSchema = z.strictObject({
  scope: CacheScopeSchema.optional(),
  exact: z.boolean().optional(),
  semantic: z.boolean().optional(),
  ttl_s: positiveInt.optional(),
  only_deterministic: z.boolean().optional(),
});

export const FiltersSchema = z.strictObject({
  deny: z
    .strictObject({ patterns: z.array(z.string()).default([]), keywords: z.array(z.string()).default([]) })
    .optional(),
  pii: z
    .strictObject({ prompts: z.boolean().default(true), completions: z.boolean().default(false) })
    .optional(),
});

export const RouteSchema = z.strictObject({
  name: z.string(),
  match: RouteMatchSchema.default({}),
  targets: z.array(z.strictObject({ model: z.string(), weight: z.number().positive().default(1) })).optional(),
  strategy: z.enum(['weighted', 'least_inflight']).default('weighted'),
  fallbacks: z.array(z.string()).default([]),
  retries: z
    .strictObject({ attempts: nonNegInt.default(0), backoff_ms: nonNegInt.default(100), max_backoff_ms: nonNegInt.default(5000) })
    .default({ attempts: 0, backoff_ms: 100, max_backoff_ms: 5000 }),
  timeout_ms: positiveInt.optional(),
  complexity: ComplexityTargetsSchema.optional(),
  context: z.enum(['trim', 'reject']).optional(),
  cache: RouteCacheSchema.optional(),
  filters: FiltersSchema.optional(),
});

export const ComplexitySchema = z.strictObject({
  /** Accepted, not used: complexity routes are reached through a route's match.model (docs/routing.md). */
  alias: z.string().default('auto'),
  keywords: z
    .strictObject({
      reasoning: z.array(z.string()).default(['prove', 'derive', 'step by step', 'theorem', '证明', '推导']),
      complex: z.array(z.string()).default(['analyze', 'analyse', 'compare', 'design', 'architecture', 'trade-off', '分析', '比较', '设计']),
    })
    .default({
      reasoning: ['prove', 'derive', 'step by step', 'theorem', '证明', '推导'],
      complex: ['analyze', 'analyse', 'compare', 'design', 'architecture', 'trade-off', '分析', '比较', '设计'],
    }),
  thresholds: z
    .strictObject({
      simple_max_tokens: nonNegInt.default(200),
      complex_min_tokens: nonNegInt.default(2000),
      long_conversation_turns: positiveInt.default(10),
    })
    .default({ simple_max_tokens: 200, complex_min_tokens: 2000, long_conversation_turns: 10 }),
  tools_min_class: z.enum(['simple', 'medium', 'complex', 'reasoning']).default('medium'),
  code_min_class: z.enum(['simple', 'medium', 'complex', 'reasoning']).default('medium'),
});

export const CacheSchema = z.strictObject({
  scope: CacheScopeSchema.default('shared'),
  exact: z
    .strictObject({
      enabled: z.boolean().default(true),
      ttl_s: positiveInt.default(3600),
      max_bytes: positiveInt.default(268435456),
      only_deterministic: z.boolean().default(true),
    })
    .default({ enabled: true, ttl_s: 3600, max_bytes: 268435456, only_deterministic: true }),
  semantic: z
    .strictObject({
      enabled: z.boolean().default(false),
      threshold: z.number().min(0).max(1).default(0.95),
      embedding_model: z.string().default('embed'),
      ttl_s: positiveInt.default(3600),
      max_entries: positiveInt.default(100000),
    })
    .default({ enabled: false, threshold: 0.95, embedding_model: 'embed', ttl_s: 3600, max_entries: 100000 }),
  charge_hits: z.boolean().default(false),
  coalesce: z
    .strictObject({
      enabled: z.boolean().default(true),
      wait_ms: positiveInt.default(30000),
      /** store.kind redis only: one upstream call per key across replicas (a Redis lock per miss). */
      across_replicas: z.boolean().default(false),
    })
    .default({ enabled: true, wait_ms: 30000, across_replicas: false }),
});

export const ConfigSchema = z.strictObject({
  server: ServerSchema.default(() => ServerSchema.parse({})),
  store: StoreSchema.default(() => StoreSchema.parse({})),
  logging: LoggingSchema.default(() => LoggingSchema.parse({})),
  admin: z.strictObject({ key: z.string().optional() }).default({}),
  keys: z.array(KeySchema).default([]),
  teams: z.record(z.string(), TeamSchema).default({}),
  limits: z
    .strictObject({ global: LimitsSchema.optional(), timezone: z.string().default('UTC') })
    .default({ timezone: 'UTC' }),
  /** Estimator for backends without an exact tokenizer. */
  token_estimator: z
    .strictObject({
      cjk_per_char: z.number().positive().default(1.5),
      /** Cyrillic, Greek, Armenian, Georgian. */
      alphabet_per_char: z.number().positive().default(0.6),
      /** Indic, Thai, Lao, Khmer, Myanmar, Tibetan, Arabic, Hebrew, Syriac, Thaana. */
      script_per_char: z.number().positive().default(1),
      /** Characters outside the Basic Multilingual Plane: emoji, rare CJK. */
      astral_per_char: z.number().positive().default(2),
      other_per_char: z.number().positive().default(0.25),
    })
    .default({ cjk_per_char: 1.5, alphabet_per_char: 0.6, script_per_char: 1, astral_per_char: 2, other_per_char: 0.25 }),
  backends: z.record(z.string(), BackendSchema).default({}),
  models: z.record(z.string(), ModelSchema).default({}),
  routes: z.array(RouteSchema).default([]),
  complexity: ComplexitySchema.default(() => ComplexitySchema.parse({})),
  cache: CacheSchema.default(() => CacheSchema.parse({})),
});

export type Config = z.infer<typeof ConfigSchema>;
export type BackendConfig = z.infer<typeof BackendSchema>;
export type ModelConfig = z.infer<typeof ModelSchema>;
export type KeyConfig = z.infer<typeof KeySchema>;
export type RouteConfig = z.infer<typeof RouteSchema>;
export type LimitsConfig = z.infer<typeof LimitsSchema>;
export type BudgetConfig = z.infer<typeof BudgetSchema>;
