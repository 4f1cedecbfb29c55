/**
 * The uWebSockets.js server. uWS rules this file keeps (see uWS docs/index.d.ts):
 *  - everything read from `req` must be read synchronously in the handler;
 *  - onAborted is registered before anything asynchronous happens;
 *  - every write after the handler returned is wrapped in cork();
 *  - after abort or end the response object is never touched again;
 *  - onData chunks are neutered after the callback returns, so they are copied.
 */
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';
import type { HeaderList, HttpRequest, HttpResponse, HttpServer, RequestHandler, ServerOptions } from './types.js';
import { statusLine } from './status-lines.js';
import { GatewayError } from '../errors.js';
import { ResponseLifecycle } from './response-lifecycle.js';
import { HEAD_ALONE_AFTER_MS } from './head-timing.js';

export { HEAD_ALONE_AFTER_MS };

type UwsModule = typeof UWS;


/** An SSE comment line (ignored by SSE parsers): completes a head sent without data. */
const SSE_KEEPALIVE_COMMENT = ': stream open\n\n';

/** Loads the native module; throws when the binary does not fit this Node ABI/platform. */
export function loadUws(): UwsModule {
  const require = createRequire(import.meta.url);
  return require('uWebSockets.js') as UwsModule;
}

/** Headers of which node:http keeps the first when a request repeats them. */
const FIRST_WINS = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent']);

/**
 * A repeated request header, merged as node:http merges it, so both servers see the
 * same request: the first of a singleton (two Authorization headers → the first one),
 * cookies joined with '; ', every other header joined with ', '.
 */
function mergeDuplicateHeader(headers: Record<string, string>, name: string, value: string): void {
  if (FIRST_WINS.has(name)) return;
  headers[name] += name === 'cookie' ? `; ${value}` : `, ${value}`;
}

class UwsResponse extends ResponseLifecycle implements HttpResponse {
  private ended = false;
  private headWritten = false;
  /** A stream's head not yet on the wire: it leaves with the first chunk, or after HEAD_ALONE_AFTER_MS. */
  private pendingHead: { status: number; headers: HeaderList } | undefined;
  private headTimer: NodeJS.Timeout | undefined;

  /**
   * `isHead`: a HEAD request, answered with the head only (and the length GET would send).
   * `draining`: the server stopped accepting; every response from then on closes its
   * connection when it ends, so keep-alive clients reconnect (elsewhere) and the drain ends.
   */
  constructor(
    private readonly res: UWS.HttpResponse,
    private readonly isHead = false,
    private readonly draining: { on: boolean } = { on: false },
  ) {
    super();
    res.onAborted(() => {
      if (this.headTimer) clearTimeout(this.headTimer);
      this.headTimer = undefined;
      this.markAborted();
    });
  }

  private head(status: number, headers: HeaderList, chunked = false): void {
    this.res.writeStatus(statusLine(status));
    for (const name in headers) this.res.writeHeader(name, headers[name]);
    // Draining: the client must not send another request on this connection. A whole
    // answer closes it with end(body, true), which writes `Connection: close` itself; a
    // chunked stream cannot (this uWS build then breaks the chunked framing), so it says
    // so in its head and its client closes the connection after the end.
    if (chunked && this.draining.on) this.res.writeHeader('connection', 'close');
  }

  send(status: number, headers: HeaderList, body: string | Uint8Array): void {
    if (this.aborted || this.ended) return;
    if (this.headWritten) return this.end();
    this.ended = true;
    this.res.cork(() => {
      this.head(status, headers);
      if (this.isHead) {
        // The length GET would send, by hand: this uWS build's endWithoutBody(length)
        // leaves the response unfinished and the connection unusable.
        this.res.writeHeader('content-length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength));
        this.res.endWithoutBody();
      } else this.res.end(body, this.draining.on);
    });
  }

  /**
   * uWS completes a chunked response's head only with its first non-empty chunk (a
   * zero-length write() is not a flush). So the head of a stream goes out with the first
   * chunk — one socket write instead of two, and the bytes are exactly the upstream's —
   * and only when no chunk came within HEAD_ALONE_AFTER_MS (a model thinking before its
   * first token) does it go alone, completed by an SSE comment line that every SSE client
   * ignores, so clients with a response-header timeout see the stream start. Only the
   * head ever waits, never data.
   */
  writeHead(status: number, headers: HeaderList): void {
    if (this.aborted || this.ended || this.headWritten) return;
    this.headWritten = true;
    this.pendingHead = { status, headers };
    this.headTimer = setTimeout(this.flushHead, HEAD_ALONE_AFTER_MS);
  }

  private readonly flushHead = (): void => {
    this.headTimer = undefined;
    if (!this.pendingHead || this.aborted || this.ended) return;
    this.res.cork(() => {
      this.takePendingHead();
      this.res.write(SSE_KEEPALIVE_COMMENT);
    });
  };

  /** Inside cork(): writes the pending head, if any. */
  private takePendingHead(): void {
    const h = this.pendingHead;
    if (!h) return;
    this.pendingHead = undefined;
    if (this.headTimer) clearTimeout(this.headTimer);
    this.headTimer = undefined;
    this.head(h.status, h.headers, true);
  }

  write(chunk: string | Uint8Array): Promise<void> | undefined {
    if (this.aborted || this.ended) return undefined;
    let ok = true;
    this.res.cork(() => {
      this.takePendingHead();
      ok = this.res.write(chunk);
    });
    if (ok) return undefined;
    // uWS keeps the unsent bytes; wait until the socket drained before sending more.
    const drained = this.waitDrain();
    this.res.onWritable(() => {
      this.releaseDrain();
      return true;
    });
    return drained;
  }

  end(chunk?: string | Uint8Array): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    this.res.cork(() => {
      this.takePendingHead();
      this.res.end(chunk);
    });
  }

  retractHead(): boolean {
    if (!this.pendingHead || this.aborted || this.ended) return false;
    if (this.headTimer) clearTimeout(this.headTimer);
    this.headTimer = undefined;
    this.pendingHead = undefined;
    this.headWritten = false;
    return true;
  }

  /** Answer and drop the connection (body too large: we stop reading it). */
  sendAndClose(status: number, headers: HeaderList, body: string): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    this.res.cork(() => {
      this.head(status, headers);
      this.res.end(body, true);
    });
  }
}

export function createUwsServer(uws: UwsModule, opts: ServerOptions, handler: RequestHandler): HttpServer {
  const app = uws.App();
  let listenSocket: UWS.us_listen_socket | false = false;
  const draining = { on: false };

  app.any('/*', (res, req) => {
    const headers: Record<string, string> = {};
    req.forEach((k, v) => {
      if (headers[k] === undefined) headers[k] = v;
      else mergeDuplicateHeader(headers, k, v);
    });
    const request: HttpRequest = {
      method: req.getMethod().toUpperCase(),
      path: req.getUrl(),
      query: req.getQuery() ?? '',
      headers,
    };
    const response = new UwsResponse(res, request.method === 'HEAD', draining);

    if (request.method === 'GET' || request.method === 'HEAD') {
      handler(request, response, Buffer.alloc(0));
      return;
    }
    const declared = headers['content-length'] ? Number(headers['content-length']) : undefined;
    if (declared !== undefined && declared > opts.maxBodyBytes) {
      opts.onBodyError(request, bodyCloser(response), new GatewayError('request_too_large'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((ab, isLast) => {
      if (failed) return;
      size += ab.byteLength;
      if (size > opts.maxBodyBytes) {
        failed = true;
        opts.onBodyError(request, bodyCloser(response), new GatewayError('request_too_large'));
        return;
      }
      // Copy: uWS reuses the ArrayBuffer after this callback. Buffer.from(view) copies a
      // small body into Node's shared buffer pool instead of a new ArrayBuffer per
      // request (each one costs young-generation GC time to sweep).
      chunks.push(Buffer.from(new Uint8Array(ab)));
      if (isLast) {
        const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
        handler(request, response, body);
      }
    });
  });

  function bodyCloser(r: UwsResponse): HttpResponse {
    // A response whose send() also closes the connection, so the rest of the body is never read.
    return {
      get aborted() {
        return r.aborted;
      },
      onAborted: (cb) => r.onAborted(cb),
      // end(body, true) writes `Connection: close` itself.
      send: (status, headers, body) => r.sendAndClose(status, headers, String(body)),
      writeHead: (s, h) => r.writeHead(s, h),
      retractHead: () => r.retractHead(),
      write: (c) => r.write(c),
      end: (c) => r.end(c),
    };
  }

  return {
    kind: 'uws',
    listen() {
      return new Promise<number>((resolve, reject) => {
        app.listen(opts.host, opts.port, (ls) => {
          if (!ls) return reject(new Error(`cannot listen on ${opts.host}:${opts.port}`));
          listenSocket = ls;
          // The listen socket is a us_socket for this call (typings lag behind the binary).
          resolve(uws.us_socket_local_port(ls as unknown as UWS.us_socket));
        });
      });
    },
    stopAccepting() {
      draining.on = true;
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      listenSocket = false;
    },
    close() {
      this.stopAccepting();
      (app as unknown as { close(): void }).close();
    },
  };
}
