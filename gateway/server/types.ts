/**
 * The seam between the HTTP server (uWebSockets.js or node:http) and the gateway.
 * Both implementations honour the same contract; test/server-contract runs the
 * suite against both.
 */

export interface HttpRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: string;
  /** Lower-case header names. */
  headers: Record<string, string>;
}

export type HeaderList = Record<string, string>;

export interface HttpResponse {
  /** The client went away (or the response ended); writes are ignored from then on. */
  readonly aborted: boolean;
  /** Called once if the client disconnects before the response ends. */
  onAborted(cb: () => void): void;
  /** A complete response in one go. */
  send(status: number, headers: HeaderList, body: string | Uint8Array): void;
  /**
   * Start a streamed response. The head leaves with the first write, or alone after
   * HEAD_ALONE_AFTER_MS (so header timeouts never fire while a model thinks).
   */
  writeHead(status: number, headers: HeaderList): void;
  /**
   * Takes back a head given to writeHead that has not left yet (nothing written, the
   * head timer not fired): a stream that failed before its first event can then be
   * retried, or answered with a plain error status. False when it already left.
   */
  retractHead(): boolean;
  /**
   * Write a chunk of a streamed response. Returns undefined when the chunk was
   * taken, or a promise that resolves once the socket drained (backpressure).
   */
  write(chunk: string | Uint8Array): Promise<void> | undefined;
  end(chunk?: string | Uint8Array): void;
}

/** The app handler: the body is already read (bounded by server.max_body_bytes). */
export type RequestHandler = (req: HttpRequest, res: HttpResponse, body: Buffer) => void;

export interface ServerOptions {
  host: string;
  port: number;
  maxBodyBytes: number;
  /** Answers a request whose body is too large or unreadable. */
  onBodyError: (req: HttpRequest, res: HttpResponse, err: unknown) => void;
}

export interface HttpServer {
  readonly kind: 'uws' | 'node';
  listen(): Promise<number>;
  /** Stop accepting new connections; in-flight responses go on. */
  stopAccepting(): void;
  /** Close everything that is left. */
  close(): void;
}
