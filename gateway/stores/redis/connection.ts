/**
 * The one ioredis client of a gateway process, and the health of the shared store.
 * main.ts calls createRedisConnection once (store.kind = redis); limits, budgets and
 * cache stores share its client.
 *
 * Redis must never hang or crash a request: every command has store.timeout_ms
 * (commandTimeout), commands are never queued while disconnected (enableOfflineQueue
 * false: they fail at once), none is retried (maxRetriesPerRequest 0), and the client
 * reconnects in the background forever.
 *
 * StoreHealth applies store.on_failure (PEERS #8: visible, never silent). On the first
 * failed call of an outage it logs ONE warning, counts switchyard_store_outages_total
 * and sets switchyard_store_degraded=1; while degraded, calls skip Redis entirely
 * (fail_open → the caller's per-replica fallback, fail_closed → 503 store_unavailable)
 * so requests do not each wait out a timeout. A probe PINGs every probe_ms and ends
 * the outage by itself when Redis answers again.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { GatewayError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { retryAfterSeconds } from '../../upstream/retry.js';

export type FailurePolicy = 'fail_open' | 'fail_closed';

export interface StoreHealth {
  readonly degraded: boolean;
  readonly policy: FailurePolicy;
  /**
   * Runs one shared-store operation under the failure policy. `op` labels
   * switchyard_store_failures_total (bounded: a fixed operation name).
   * fail_open: a failed or skipped call returns fallback(); fail_closed: throws
   * GatewayError('store_unavailable').
   */
  run<T>(op: string, shared: () => Promise<T>, fallback: () => T | Promise<T>): Promise<T>;
  /** Like run, but a failure only counts: for calls that must not fail the request (settle, release). */
  attempt(op: string, shared: () => Promise<unknown>): Promise<boolean>;
  /** Called each time an outage ends (replay deferred settles, for example). */
  onRecover(listener: () => void): void;
}

export interface RedisConnection {
  readonly client: Redis;
  readonly health: StoreHealth;
  /** Resolves when the client is connected, or after timeoutMs (never rejects). */
  ready(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface RedisConnectionOptions {
  url: string;
  /** store.timeout_ms: every command, and the probe. */
  timeoutMs: number;
  onFailure: FailurePolicy;
  logger: Logger;
  metrics: Pick<Metrics, 'storeFailures' | 'storeDegraded' | 'storeOutages'>;
  /** How often a degraded store is probed. */
  probeMs?: number;
}

export function createRedisConnection(opts: RedisConnectionOptions): RedisConnection {
  const client = new Redis(opts.url, {
    commandTimeout: opts.timeoutMs,
    connectTimeout: Math.max(1000, opts.timeoutMs * 4),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // Keep trying forever, at most every 2 s: the outage ends by itself.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    enableReadyCheck: true,
  });
  // Without a listener an unreachable Redis would be an unhandled 'error' event.
  client.on('error', () => {});
  const health = createStoreHealth({
    ...opts,
    ping: () => client.ping().then(() => undefined),
    isConnected: () => client.status === 'ready',
    // A connection that went silent (its peer replaced, a NAT entry dropped) stays
    // 'ready' for ioredis, and commandTimeout never closes it: drop it, and
    // retryStrategy connects anew.
    reconnect: () => client.disconnect(true),
  });
  return {
    client,
    health,
    ready(timeoutMs) {
      if (client.status === 'ready') return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          client.off('ready', done);
          resolve();
        };
        const t = setTimeout(done, timeoutMs);
        client.once('ready', done);
      });
    },
    async close() {
      health.close();
      client.disconnect(false);
    },
  };
}

interface HealthOptions extends Omit<RedisConnectionOptions, 'url' | 'timeoutMs'> {
  ping(): Promise<void>;
  isConnected(): boolean;
  /** Replace the connection (called after SILENT_PROBES failed probes on a 'connected' one). */
  reconnect?(): void;
}

/** Failed probes in a row on a connection that says it is up before it is replaced. */
export const SILENT_PROBES = 3;

/**
 * Whether an error means the store is unreachable (connection refused or closed,
 * timeout, not ready) rather than a reply from a working server. Redis replies that
 * mean "can't serve right now" (LOADING, READONLY, MASTERDOWN, BUSY, CLUSTERDOWN,
 * TRYAGAIN) count as an outage too.
 */
export function isOutage(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  if (e?.name !== 'ReplyError') return true;
  return /^(LOADING|READONLY|MASTERDOWN|BUSY|CLUSTERDOWN|TRYAGAIN)\b/.test(e.message ?? '');
}

export function createStoreHealth(opts: HealthOptions): StoreHealth & { close(): void } {
  const { logger, metrics } = opts;
  const probeMs = opts.probeMs ?? 1000;
  const listeners: Array<() => void> = [];
  let degraded = false;
  let probe: NodeJS.Timeout | undefined;
  let probing = false;
  let outageStart = 0;
  let failedProbes = 0;

  const down = (op: string, err: unknown) => {
    metrics.storeFailures.inc({ op });
    if (!isOutage(err)) {
      // Redis answered, with an error (a script bug, a wrong type): this call fails, the store is not down.
      logger.error({ err: err instanceof Error ? err.message : String(err), op }, 'shared store rejected a command');
      return;
    }
    if (degraded) return;
    degraded = true;
    outageStart = Date.now();
    metrics.storeDegraded.set(1);
    metrics.storeOutages.inc();
    logger.warn({ err: err instanceof Error ? err.message : String(err), op, policy: opts.onFailure }, 'shared store unreachable: %s until it is back', opts.onFailure === 'fail_open' ? 'using per-replica limits' : 'refusing requests that need it');
    probe = setInterval(tick, probeMs);
    probe.unref();
  };

  const up = () => {
    if (!degraded) return;
    degraded = false;
    clearInterval(probe);
    probe = undefined;
    metrics.storeDegraded.set(0);
    logger.info({ outage_ms: Date.now() - outageStart }, 'shared store reachable again');
    for (const l of listeners) {
      try {
        l();
      } catch (err) {
        logger.error({ err }, 'store recovery listener failed');
      }
    }
  };

  const tick = () => {
    if (probing) return;
    if (!opts.isConnected()) {
      failedProbes = 0;
      return;
    }
    probing = true;
    opts
      .ping()
      .then(
        () => {
          failedProbes = 0;
          up();
        },
        (err: unknown) => {
          if (!isOutage(err) || ++failedProbes < SILENT_PROBES) return;
          failedProbes = 0;
          logger.warn({ probes: SILENT_PROBES }, 'shared store connection is up but silent: reconnecting');
          opts.reconnect?.();
        },
      )
      .finally(() => {
        probing = false;
      });
  };

  const policyFallback = <T>(fallback: () => T | Promise<T>, cause: unknown): T | Promise<T> => {
    // Retry-After: the probe checks every probeMs; a client may try again about then.
    if (opts.onFailure === 'fail_closed') throw new GatewayError('store_unavailable', { detail: cause, headers: { 'retry-after': retryAfterSeconds(probeMs) } });
    return fallback();
  };

  return {
    get degraded() {
      return degraded;
    },
    policy: opts.onFailure,
    async run(op, shared, fallback) {
      if (degraded) return policyFallback(fallback, 'store degraded');
      try {
        return await shared();
      } catch (err) {
        down(op, err);
        return policyFallback(fallback, err);
      }
    },
    async attempt(op, shared) {
      if (degraded) return false;
      try {
        await shared();
        return true;
      } catch (err) {
        down(op, err);
        return false;
      }
    },
    onRecover(listener) {
      listeners.push(listener);
    },
    close() {
      clearInterval(probe);
      probe = undefined;
    },
  };
}

/**
 * A Lua script run by EVALSHA, loaded with EVAL the first time a server does not
 * know it (NOSCRIPT: first use, or a restarted Redis). Scripts are how the stores make
 * check-and-update one atomic step in Redis.
 */
export interface LuaScript {
  run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown>;
}

export function defineScript(source: string): LuaScript {
  const sha = createHash('sha1').update(source).digest('hex');
  return {
    async run(client, keys, args) {
      try {
        return await client.evalsha(sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return client.eval(source, keys.length, ...keys, ...args);
        throw err;
      }
    },
  };
}
