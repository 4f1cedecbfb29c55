/**
 * HTTP details both servers must get right the same way, on raw sockets: a HEAD answer
 * carries no body (a body would corrupt the next response on a keep-alive connection),
 * repeated request headers merge as node:http merges them (the first Authorization
 * wins on both), and a connection that never sends its request head is closed.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../gateway/server/create-server.js';
import type { HttpServer } from '../gateway/server/types.js';
import { createLogger } from '../gateway/logger.js';
import { HEADERS_TIMEOUT_MS } from '../gateway/server/node-server.js';

/** Sends raw bytes on one connection and collects what comes back until `done(text)` or the socket closes. */
function exchange(port: number, payload: string, done: (text: string) => boolean, timeoutMs = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1', () => socket.write(payload));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (done(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ text, closed: false });
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('error', reject);
  });
}

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

describe.each(['uws', 'node'] as const)('%s server protocol', (kind) => {
  let server: HttpServer;
  let port = 0;

  beforeAll(async () => {
    server = createHttpServer(
      kind,
      { host: '127.0.0.1', port: 0, maxBodyBytes: 1024, onBodyError: (_req, res) => res.send(413, {}, '') },
      (req, res) => {
        res.send(200, { 'content-type': 'application/json' }, JSON.stringify({ path: req.path, authorization: req.headers.authorization ?? null, accept: req.headers.accept ?? null }));
      },
      createLogger({ level: 'silent' }),
    );
    port = await server.listen();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('answers HEAD with the head only, then serves the next request on the same connection intact', async () => {
    const { text } = await exchange(port, 'HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.includes('"path":"/next"'));
    const responses = text.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200/);
    // The head says how long the GET body would be, and nothing follows it.
    expect(responses[0]).toMatch(/content-length: \d+\r\n/i);
    expect(responses[0]!.endsWith('\r\n\r\n')).toBe(true);
    expect(responses[1]).toMatch(/^HTTP\/1\.1 200/);
    expect(responses[1]).toContain('"path":"/next"');
  });

  it('takes the first of two Authorization headers and joins repeated list headers', async () => {
    const { text } = await exchange(
      port,
      'GET /dup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer first\r\nAuthorization: Bearer second\r\nAccept: a/b\r\nAccept: c/d\r\n\r\n',
      (t) => t.includes('}'),
    );
    const body = JSON.parse(text.slice(text.indexOf('{'))) as { authorization: string; accept: string };
    expect(body.authorization).toBe('Bearer first');
    expect(body.accept).toBe('a/b, c/d');
    expect(count(text, /HTTP\/1\.1 /g)).toBe(1);
  });

  it('closes a connection that never completes its request head', { timeout: HEADERS_TIMEOUT_MS + 15_000 }, async () => {
    const started = Date.now();
    const { closed } = await exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n', () => false, HEADERS_TIMEOUT_MS + 10_000);
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(HEADERS_TIMEOUT_MS + 10_000);
  });
});
