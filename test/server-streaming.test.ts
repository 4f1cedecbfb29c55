/**
 * The streaming contract of both HTTP servers (uWebSockets.js and node:http): every
 * chunk leaves as soon as it is written — nothing waits for more data — and a stream's
 * head reaches the client even while the first chunk is slow to come: both send it with
 * the first chunk, or alone after HEAD_ALONE_AFTER_MS (uWS with an SSE comment line that
 * SSE clients ignore). Until then it can be taken back (retractHead), so a stream that
 * failed before its first event can still be answered with a plain error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createHttpServer } from '../gateway/server/create-server.js';
import type { HttpResponse, HttpServer } from '../gateway/server/types.js';
import { createLogger } from '../gateway/logger.js';
import { HEAD_ALONE_AFTER_MS } from '../gateway/server/uws-server.js';
import { STALLED_READER_MS } from '../gateway/server/node-server.js';
import { createConnection } from 'node:net';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['uws', 'node'] as const)('%s server streaming', (kind) => {
  let server: HttpServer;
  let base = '';
  const handlers: Record<string, (res: HttpResponse) => void | Promise<void>> = {
    '/slow-first': async (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      await sleep(HEAD_ALONE_AFTER_MS + 400);
      res.write('data: one\n\n');
      await sleep(300);
      res.end('data: [DONE]\n\n');
    },
    '/quick-first': async (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      await sleep(100);
      res.write('data: one\n\n');
      await sleep(300);
      res.end('data: [DONE]\n\n');
    },
    '/ready-first': (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'x-test': 'yes' });
      res.write('data: one\n\n');
      res.write('data: two\n\n');
      res.end();
    },
    '/retract': (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      setTimeout(() => {
        const first = res.retractHead();
        const second = res.retractHead(); // nothing left to take back
        res.send(first && !second ? 502 : 500, { 'content-type': 'application/json' }, '{"error":{"message":"broke"}}');
      }, 50);
    },
    '/flood': async (res) => {
      // Writes until the socket is full, then waits for it like the relay does.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const piece = `data: ${'x'.repeat(64 * 1024)}\n\n`;
      for (let i = 0; i < 4096 && !res.aborted; i++) {
        const wait = res.write(piece);
        if (wait) await wait;
      }
      flood.aborted = res.aborted;
      res.end();
    },
    '/empty': (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end();
    },
  };

  const flood = { aborted: false };

  beforeAll(async () => {
    server = createHttpServer(
      kind,
      { host: '127.0.0.1', port: 0, maxBodyBytes: 1024, onBodyError: (_req, res) => res.send(413, {}, '') },
      (req, res) => void handlers[req.path]?.(res),
      createLogger({ level: 'silent' }),
    );
    base = `http://127.0.0.1:${await server.listen()}`;
  });
  afterAll(() => server.close());

  async function timed(path: string) {
    const t0 = performance.now();
    const res = await request(`${base}${path}`);
    const headAt = performance.now() - t0;
    const seen: Array<{ text: string; at: number }> = [];
    for await (const c of res.body) seen.push({ text: Buffer.from(c).toString(), at: performance.now() - t0 });
    return { res, headAt, seen, text: seen.map((x) => x.text).join('') };
  }

  it('sends the head while the first chunk is slow, and each chunk as it is written', async () => {
    const { res, headAt, seen, text } = await timed('/slow-first');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(headAt).toBeLessThan(HEAD_ALONE_AFTER_MS + 250);
    // uWS completes a lone head with an SSE comment line; the events are exact.
    expect(text.replace(/^: [^\n]*\n\n/, '')).toBe('data: one\n\ndata: [DONE]\n\n');
    if (kind === 'node') expect(text.startsWith(':')).toBe(false);
    const one = seen.find((x) => x.text.includes('one'))!;
    // The first chunk arrived before the end was written, not held back for it.
    expect(one.at).toBeLessThan(HEAD_ALONE_AFTER_MS + 650);
    expect(seen.at(-1)!.at).toBeGreaterThanOrEqual(HEAD_ALONE_AFTER_MS + 650);
  });

  it('a first chunk that comes before the head would go alone carries the head: the bytes are exactly what was written', async () => {
    const { res, seen, text } = await timed('/quick-first');
    expect(res.statusCode).toBe(200);
    expect(text).toBe('data: one\n\ndata: [DONE]\n\n');
    expect(seen.find((x) => x.text.includes('one'))!.at).toBeLessThan(400);
  });

  it('takes back a head that has not left yet, so a plain error can answer instead', async () => {
    const r = await request(`${base}/retract`);
    expect(r.statusCode).toBe(502);
    expect(await r.body.text()).toBe('{"error":{"message":"broke"}}');
  });

  it('sends a head whose first chunk is ready with it, and an empty stream', async () => {
    const res = await request(`${base}/ready-first`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-test']).toBe('yes');
    expect(await res.body.text()).toBe('data: one\n\ndata: two\n\n');
    const empty = await request(`${base}/empty`);
    expect(empty.statusCode).toBe(200);
    expect(await empty.body.text()).toBe('');
  });

  it('cuts a client that stops reading its stream, so its writer stops waiting', { timeout: STALLED_READER_MS + 20_000 }, async () => {
    const { port } = new URL(base);
    flood.aborted = false;
    const socket = createConnection({ host: '127.0.0.1', port: Number(port) }, () => {
      socket.write('GET /flood HTTP/1.1\r\nHost: x\r\n\r\n');
      // Read a little, then nothing more (a paused socket never sees the server's close).
      socket.once('data', () => socket.pause());
    });
    socket.on('error', () => {});
    const started = Date.now();
    while (!flood.aborted && Date.now() - started < STALLED_READER_MS + 15_000) await sleep(100);
    socket.destroy();
    expect(flood.aborted).toBe(true);
  });
});
