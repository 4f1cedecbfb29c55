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
import type { Router } from '../routing/router.js';
import type { PriceTable } from '../routing/cost.js';
import type { CircuitBreaker } from '../upstream/circuit-breaker.js';
import type { AdmissionController } from '../upstream/admission.js';
import type { CacheParts } from '../cache/parts.js';

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
  /** Routes + complexity classifier, compiled for this generation. */
  readonly router: Router;
  readonly prices: PriceTable;
  /** backend name → circuit breaker (carried over across reloads while its health config is unchanged). */
  readonly breakers: ReadonlyMap<string, CircuitBreaker>;
  /** backend name → admission control (max concurrent + bounded queue). */
  readonly admissions: ReadonlyMap<string, AdmissionController>;
  /** Response cache (exact, semantic, single flight); long-lived, shared by generations. */
  readonly cache: CacheParts;
}
