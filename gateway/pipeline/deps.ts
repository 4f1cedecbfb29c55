/**
 * What stage factories receive. One GatewayDeps per config generation: a reload
 * builds new deps (new backends, compiled routes) sharing the long-lived parts
 * (metrics, logger, stores).
 */
import type { Config } from '../config/schema.js';
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Stores } from '../stores/types.js';
import type { BackendClient } from '../upstream/types.js';
import type { Translator } from '../providers/types.js';

export interface GatewayDeps {
  readonly loaded: LoadedConfig;
  readonly config: Config;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly stores: Stores;
  /** backend name → client (HTTP pool or in-process model). */
  readonly backends: ReadonlyMap<string, BackendClient>;
  /** backend name → translator for its API. */
  readonly translators: ReadonlyMap<string, Translator>;
}
