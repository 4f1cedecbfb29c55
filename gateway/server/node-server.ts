/**
 * The node:http fallback, used when the uWebSockets.js binary cannot load (another
 * Node ABI or platform) or when server.implementation is `node`. Same contract as
 * uws-server.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HeaderList, HttpRequest, HttpResponse, HttpServer, RequestHandler, ServerOptions } from './types.js';
import { GatewayError } from '../errors.js';
import { ResponseLifecycle } from './response-lifecycle.js';
import { HEAD_ALONE_AFTER_MS } from './head-timing.js';

/** Time allowed for a request's head. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** Time allowed for a whole request (head and body; a 10 MB body on a slow link fits). */
export const REQUEST_TIMEOUT_MS = 120_000;
/**
 * A client that reads nothing of its response for this long is cut, as uWS cuts it (its
 * ~10 s idle timeout): else its relay waited for 'drain' for ever, and undici's body
 * timeout does not run while the upstream socket is paused, so the upstream connection,
 * the limit slots and the request stayed taken for good.
 */
export const STALLED_READER_MS = 10_000;

class NodeResponse extends ResponseLifecycle implements HttpResponse {
  /** A stream's head not yet on the wire: it leaves with the first write, or alone after HEAD_ALONE_AFTER_MS (as on uWS). */
  private pendingHead: { status: number; headers: HeaderList } | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;

  /** `draining`: the server stopped accepting; responses from then on close their connection (as on uWS). */
  constructor(
    private readonly res: ServerResponse,
    private readonly draining: { on: boolean } = { on: false },
  ) {
    super();
    res.on('close', () => {
      if (this.headTimer) clearTimeout(this.headTimer);
      this.headTimer = undefined;
      this.clearStall();
      if (!res.writableFinished) this.markAborted();
    });
    res.on('drain', () => {
      this.clearStall();
      this.releaseDrain();
    });
  }

  private clearStall(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  send(status: number, headers: HeaderList, body: string | Uint8Array): void {
    if (this.aborted) return;
    if (this.pendingHead || this.res.headersSent) return this.end();
    headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    if (this.draining.on) this.res.shouldKeepAlive = false;
    this.res.writeHead(status, headers);
    this.res.end(body);
  }

  writeHead(status: number, headers: HeaderList): void {
    if (this.aborted || this.pendingHead || this.res.headersSent) return;
    this.pendingHead = { status, headers };
    this.headTimer = setTimeout(() => {
      this.headTimer = undefined;
      if (!this.takePendingHead()) return;
      this.res.flushHeaders();
    }, HEAD_ALONE_AFTER_MS);
  }

  retractHead(): boolean {
    if (!this.pendingHead || this.aborted) return false;
    if (this.headTimer) clearTimeout(this.headTimer);
    this.headTimer = undefined;
    this.pendingHead = undefined;
    return true;
  }

  /** Puts the pending head on the response (it leaves with what is written next). */
  private takePendingHead(): boolean {
    const h = this.pendingHead;
    if (!h || this.aborted) return false;
    this.pendingHead = undefined;
    if (this.headTimer) clearTimeout(this.headTimer);
    this.headTimer = undefined;
    if (this.draining.on) this.res.shouldKeepAlive = false;
    this.res.writeHead(h.status, h.headers);
    return true;
  }

  write(chunk: string | Uint8Array): Promise<void> | undefined {
    if (this.aborted || this.res.writableEnded) return undefined;
    this.takePendingHead();
    if (this.res.write(chunk)) return undefined;
    this.stallTimer ??= setTimeout(() => this.res.destroy(), STALLED_READER_MS);
    return this.waitDrain();
  }

  end(chunk?: string | Uint8Array): void {
    if (this.aborted || this.res.writableEnded) return;
    this.takePendingHead();
    this.res.end(chunk);
  }
}

export function createNodeServer(opts: ServerOptions, handler: RequestHandler): HttpServer {
  const draining = { on: false };
  // Slow or silent clients are cut as uWS cuts them: a connection that has not sent its
  // request head within HEADERS_TIMEOUT_MS, or its whole body within REQUEST_TIMEOUT_MS,
  // is closed (408), so idle sockets cannot pile up to the descriptor limit. Responses
  // (long streams) are not limited by these.
  const server = createServer({ keepAliveTimeout: 65000, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const request: HttpRequest = {
      method: req.method ?? 'GET',
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? '' : url.slice(q + 1),
      headers,
    };
    const response = new NodeResponse(res, draining);
    if (request.method === 'GET' || request.method === 'HEAD') {
      handler(request, response, Buffer.alloc(0));
      return;
    }
    const tooLarge = () => {
      req.pause();
      res.setHeader('connection', 'close');
      res.on('finish', () => req.socket.destroy());
      opts.onBodyError(request, response, new GatewayError('request_too_large'));
    };
    const declared = headers['content-length'] ? Number(headers['content-length']) : undefined;
    if (declared !== undefined && declared > opts.maxBodyBytes) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > opts.maxBodyBytes) {
        failed = true;
        tooLarge();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) handler(request, response, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    });
    req.on('error', () => {
      failed = true;
    });
  });

  return {
    kind: 'node',
    listen() {
      return new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, opts.host, () => resolve((server.address() as AddressInfo).port));
      });
    },
    stopAccepting() {
      draining.on = true;
      server.close();
      // Idle keep-alive connections go now; busy ones close after their response.
      server.closeIdleConnections();
    },
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
}
