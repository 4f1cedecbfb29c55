/**
 * Picks the server implementation: uWebSockets.js when its native module loads,
 * node:http otherwise (one warning line), or what server.implementation forces.
 */
import type { Logger } from '../logger.js';
import type { HttpServer, RequestHandler, ServerOptions } from './types.js';
import { createNodeServer } from './node-server.js';
import { createUwsServer, loadUws } from './uws-server.js';

export function createHttpServer(
  kind: 'auto' | 'uws' | 'node',
  opts: ServerOptions,
  handler: RequestHandler,
  logger: Logger,
  load: typeof loadUws = loadUws,
): HttpServer {
  if (kind === 'node') return createNodeServer(opts, handler);
  try {
    return createUwsServer(load(), opts, handler);
  } catch (err) {
    if (kind === 'uws') throw err;
    logger.warn({ err: (err as Error).message }, 'uWebSockets.js could not be loaded; falling back to node:http');
    return createNodeServer(opts, handler);
  }
}
