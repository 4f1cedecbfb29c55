/**
 * The standalone OpenAI-compatible server for one local model (the GPU Deployment the
 * gateway reaches as `openai-compatible`). node:http is enough here: the model, not the
 * transport, is the bottleneck (loadtest/bench/local-backend.ts measures the cost).
 * Endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
 * /health, /metrics. Started by cli.ts, and by tests and the benchmark on port 0.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { GatewayError } from '../gateway/errors.js';
import { AsyncChannel } from './async-channel.js';
import { createLocalEngine, type LocalEngine } from './engine.js';
import { getLocalMetrics } from './metrics.js';
import { createOpenAIHandler, errorResponse, ShutdownError, type HandlerResponse } from './openai-handler.js';
import type { LocalBackendOptions } from './options.js';

export interface LocalServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  model: LocalBackendOptions;
  /** Load the model before listening (readiness means "can generate"). Default true. */
  warm?: boolean;
  maxBodyBytes?: number;
  /** Time in-flight requests get to finish on close(). */
  shutdownGraceMs?: number;
  registry?: Registry;
  onError?: (err: unknown) => void;
}

export interface LocalServer {
  readonly url: string;
  readonly port: number;
  readonly engine: LocalEngine;
  readonly registry: Registry;
  /** Stops accepting, lets in-flight requests finish (up to the grace), frees the model. */
  close(): Promise<void>;
}

const POST_PATHS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new GatewayError('request_too_large'));
        req.destroy();
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/**
 * A token stream is pushed straight into the response (no Promise per write); a client that
 * goes away cancels it, which stops the generation and frees the sequence at once.
 */
function pipeChannel(res: ServerResponse, channel: AsyncChannel, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => channel.resume();
    const onClose = () => {
      res.off('drain', onDrain);
      channel.cancel();
      resolve();
    };
    if (signal.aborted) {
      channel.cancel();
      resolve();
      return;
    }
    res.on('drain', onDrain);
    res.once('close', onClose);
    channel.attach({
      write: (text) => res.write(text),
      end: (error) => {
        res.off('drain', onDrain);
        res.off('close', onClose);
        res.end();
        // As the pull loop did: a stream that broke after its first byte (its error event is written) is a failed request.
        if (error !== undefined) reject(error);
        else resolve();
      },
    });
  });
}

async function send(res: ServerResponse, out: HandlerResponse, signal: AbortSignal): Promise<void> {
  res.writeHead(out.status, out.headers);
  if (out.body instanceof AsyncChannel) return pipeChannel(res, out.body, signal);
  for await (const chunk of out.body) {
    // Leaving the loop calls return(): generation stops. A shutdown's abort still lets its
    // answer (the 503) out.
    if (signal.aborted && !(signal.reason instanceof ShutdownError)) break;
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  res.end();
}

export async function startLocalServer(opts: LocalServerOptions): Promise<LocalServer> {
  const registry = opts.registry ?? new Registry();
  const engine = createLocalEngine(opts.model, { metrics: getLocalMetrics(registry), label: opts.model.modelId });
  const handle = createOpenAIHandler(engine, { onError: opts.onError });
  const maxBody = opts.maxBodyBytes ?? 10 * 1024 * 1024;
  const inflight = new Set<Promise<void>>();
  /** Each in-flight request's abort, for the end of a shutdown's grace period. */
  const controllers = new Set<AbortController>();
  let shuttingDown = false;

  async function route(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') {
      const stats = engine.stats();
      const ok = !shuttingDown;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'shutting_down', ...stats }));
      return;
    }
    if (path === '/metrics' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(await registry.metrics());
      return;
    }
    if (shuttingDown) return send(res, errorResponse(new GatewayError('shutting_down')), signal);
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') return send(res, errorResponse(new GatewayError('method_not_allowed')), signal);
      return send(res, await handle(path, undefined, signal), signal);
    }
    if (!POST_PATHS.has(path)) return send(res, errorResponse(new GatewayError('not_found')), signal);
    if (req.method !== 'POST') return send(res, errorResponse(new GatewayError('method_not_allowed')), signal);
    let body: unknown;
    try {
      const raw = await readBody(req, maxBody);
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      return send(res, errorResponse(err instanceof GatewayError ? err : new GatewayError('invalid_json')), signal);
    }
    return send(res, await handle(path, body, signal), signal);
  }

  const server = createServer((req, res) => {
    const ac = new AbortController();
    // A client that goes away before the end aborts its generation and frees its sequence.
    res.on('close', () => { if (!res.writableFinished) ac.abort(new Error('client disconnected')); });
    controllers.add(ac);
    const p = route(req, res, ac.signal)
      .catch(async (err: unknown) => {
        opts.onError?.(err);
        // Before the head: the error as an OpenAI error body (a shutdown's 503 included).
        if (!res.headersSent) {
          const e = errorResponse(err);
          res.writeHead(e.status, e.headers);
          for await (const chunk of e.body) res.write(chunk);
        }
        res.end();
      })
      .finally(() => {
        inflight.delete(p);
        controllers.delete(ac);
      });
    inflight.add(p);
  });
  server.keepAliveTimeout = 5000;

  if (opts.warm !== false) await engine.load();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8081, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? opts.host : '127.0.0.1';

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    engine,
    registry,
    async close() {
      shuttingDown = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = new Promise<void>((resolve) => setTimeout(resolve, opts.shutdownGraceMs ?? 10000).unref());
      const drained = await Promise.race([Promise.allSettled([...inflight]).then(() => true), grace.then(() => false)]);
      if (!drained) {
        // Still generating: stop with a shutting_down answer (an error event in a stream,
        // a 503 before one), then close, instead of cutting the connection mid-chunk.
        for (const ac of controllers) ac.abort(new ShutdownError());
        await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, 500).unref())]);
      }
      server.closeAllConnections();
      await closed;
      await engine.close();
    },
  };
}
