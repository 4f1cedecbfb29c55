/**
 * An HTTP backend: one undici Pool per backend origin, keep-alive, bounded
 * connections, connect/headers/body timeouts from config. Created once per config
 * generation and shared by every request to that backend.
 */
import { Pool } from 'undici';
import type { BackendConfig } from '../config/schema.js';
import type { UpstreamRequest } from '../providers/types.js';
import type { BackendClient, RequestOptions, UpstreamResponse } from './types.js';

export function createHttpBackendClient(name: string, cfg: BackendConfig, baseUrl: string): BackendClient {
  const url = new URL(baseUrl);
  const basePath = url.pathname.replace(/\/+$/, '');
  const pool = new Pool(url.origin, {
    connections: cfg.max_connections,
    keepAliveTimeout: cfg.keep_alive_ms,
    connectTimeout: cfg.connect_timeout_ms,
    headersTimeout: cfg.headers_timeout_ms ?? cfg.timeout_ms,
    bodyTimeout: cfg.timeout_ms,
  });

  return {
    name,
    async request(req: UpstreamRequest, opts: RequestOptions): Promise<UpstreamResponse> {
      const signal = opts.timeoutMs ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]) : opts.signal;
      const res = await pool.request({
        origin: url.origin,
        path: basePath + req.path,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal,
      });
      return {
        status: res.statusCode,
        headers: res.headers,
        body: res.body,
        bytes: async () => new Uint8Array(await res.body.arrayBuffer()),
        dump: () => res.body.dump(),
      };
    },
    close: () => pool.close(),
  };
}
