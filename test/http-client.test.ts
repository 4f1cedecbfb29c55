/**
 * The upstream HTTP client (undici dispatch with the gateway's own handler), against a
 * real node:http server: whole bodies, streams with backpressure, cancellation before
 * and during the answer, deadlines, dump, repeated headers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHttpBackendClient, DUMP_LIMIT_MS } from '../gateway/upstream/http-client.js';
import { RequestCancellation, cancellationFromSignal } from '../gateway/upstream/cancellation.js';
import { BackendSchema } from '../gateway/config/schema.js';
import type { BackendClient } from '../gateway/upstream/types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: Server;
let client: BackendClient;
const closed: string[] = [];
let sockets = 0;
let bigDoneAt: number | undefined;
const BIG_PIECES = 256;

const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/v1/small': (_req, res) => {
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('retry-after', '3');
    res.end('{"ok":true}');
  },
  '/v1/echo': (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => res.end(JSON.stringify({ body: Buffer.concat(parts).toString(), auth: req.headers.authorization })));
  },
  '/v1/big': async (_req, res) => {
    // 16 MB in 64 KB pieces, honouring the socket's backpressure (more than loopback's socket buffers hold).
    bigDoneAt = undefined;
    const piece = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < BIG_PIECES; i++) {
      if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
    }
    res.end(() => (bigDoneAt = Date.now()));
  },
  '/v1/early-hints': (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    setTimeout(() => res.end('{"after":"hints"}'), 50);
  },
  '/v1/hang': (req, res) => {
    req.socket.on('close', () => closed.push('hang'));
    void res;
  },
  '/v1/held-open': (req, res) => {
    // The answer is complete, but the connection is held open with keep-alive comments.
    req.socket.on('close', () => closed.push('held-open'));
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: [DONE]\n\n');
    const t = setInterval(() => res.write(': ping\n\n'), 50);
    res.on('close', () => clearInterval(t));
  },
  '/v1/late-end': (_req, res) => {
    res.writeHead(200);
    res.write('first');
    setTimeout(() => res.end('second'), 300);
  },
  '/v1/slow-body': (req, res) => {
    req.socket.on('close', () => closed.push('slow-body'));
    res.writeHead(200);
    res.write('first');
  },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  server.on('connection', () => sockets++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const cfg = BackendSchema.parse({ type: 'openai-compatible', base_url: `http://127.0.0.1:${port}/v1`, max_connections: 4 });
  client = createHttpBackendClient('t', cfg, `http://127.0.0.1:${port}/v1`);
});

afterAll(async () => {
  await client.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const get = (path: string, cancel = new RequestCancellation(), timeoutMs?: number) => client.request({ method: 'GET', path, headers: {} }, { cancel, timeoutMs });

describe('upstream http client', () => {
  it('answers a whole body with its status and (repeated) headers', async () => {
    const r = await get('/small');
    expect(r.status).toBe(200);
    expect(r.headers['retry-after']).toBe('3');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(Buffer.from(await r.bytes!()).toString()).toBe('{"ok":true}');
  });

  it('skips an informational head (103 Early Hints) and answers with the real one', async () => {
    const r = await get('/early-hints');
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.bytes!()).toString()).toBe('{"after":"hints"}');
  });

  it('sends method, headers and body as given', async () => {
    const r = await client.request({ method: 'POST', path: '/echo', headers: { authorization: 'Bearer up' }, body: '{"a":1}' }, { cancel: new RequestCancellation() });
    expect(JSON.parse(Buffer.from(await r.bytes!()).toString())).toEqual({ body: '{"a":1}', auth: 'Bearer up' });
  });

  it('streams a large body to a slow reader intact, pausing the socket instead of buffering it all', async () => {
    const r = await get('/big');
    let total = 0;
    let first = true;
    for await (const c of r.body) {
      for (const b of c) if (b !== 0x78) throw new Error('corrupted byte');
      total += c.byteLength;
      if (first) {
        // A reader that stalls: the client must stop reading the socket, so the
        // server cannot finish writing 16 MB meanwhile.
        first = false;
        await sleep(300);
        expect(bigDoneAt).toBeUndefined();
      }
    }
    expect(total).toBe(BIG_PIECES * 64 * 1024);
    expect(bigDoneAt).toBeDefined();
  });

  it('keeps the connection for the next request after a whole body and after a dumped small body', async () => {
    await (await get('/small')).bytes!();
    const before = sockets;
    await (await get('/small')).dump();
    await (await get('/small')).bytes!();
    expect(sockets).toBe(before);
  });

  it('a cancellation before the request rejects at once; during the answer it closes the upstream socket', async () => {
    const pre = new RequestCancellation();
    pre.abort();
    await expect(get('/small', pre)).rejects.toMatchObject({ name: 'AbortError' });

    const c = new RequestCancellation();
    const p = get('/hang', c);
    await sleep(50);
    c.abort();
    await expect(p).rejects.toBeTruthy();
    await sleep(50);
    expect(closed).toContain('hang');

    const c2 = new RequestCancellation();
    const r = await get('/slow-body', c2);
    const it = r.body[Symbol.asyncIterator]();
    expect(Buffer.from((await it.next()).value).toString()).toBe('first');
    const next = it.next();
    c2.abort();
    await expect(next).rejects.toBeTruthy();
    await sleep(50);
    expect(closed).toContain('slow-body');
  });

  it('a deadline (route timeout) rejects with a TimeoutError before the head and cuts a body after it', async () => {
    const t0 = Date.now();
    await expect(get('/hang', new RequestCancellation(), 100)).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - t0).toBeLessThan(1000);
    const r = await get('/slow-body', new RequestCancellation(), 100);
    await expect(r.bytes!()).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('answers a request queued for a pooled connection at once when it is cancelled or its deadline passes', async () => {
    const port = (server.address() as AddressInfo).port;
    const one = createHttpBackendClient('one', BackendSchema.parse({ type: 'openai-compatible', base_url: `http://127.0.0.1:${port}/v1`, max_connections: 1 }), `http://127.0.0.1:${port}/v1`);
    try {
      const holder = new RequestCancellation();
      const busy = one.request({ method: 'GET', path: '/hang', headers: {} }, { cancel: holder });
      busy.catch(() => {});
      await sleep(50);
      // Queued behind the hanging request: cancelled by its client...
      const left = new RequestCancellation();
      const t0 = Date.now();
      const queued = one.request({ method: 'GET', path: '/small', headers: {} }, { cancel: left });
      setTimeout(() => left.abort(), 50);
      await expect(queued).rejects.toMatchObject({ name: 'AbortError' });
      expect(Date.now() - t0).toBeLessThan(500);
      // ...or past its deadline.
      const t1 = Date.now();
      await expect(one.request({ method: 'GET', path: '/small', headers: {} }, { cancel: new RequestCancellation(), timeoutMs: 100 })).rejects.toMatchObject({ name: 'TimeoutError' });
      expect(Date.now() - t1).toBeLessThan(500);
      // Once the connection frees, the dropped requests are never sent, and the pool serves on.
      holder.abort();
      await expect(busy).rejects.toBeTruthy();
      const r = await one.request({ method: 'GET', path: '/small', headers: {} }, { cancel: new RequestCancellation() });
      expect(Buffer.from(await r.bytes!()).toString()).toBe('{"ok":true}');
    } finally {
      await one.close();
    }
  });

  it('cuts a discarded body that does not end (held open after [DONE]) instead of keeping its connection', async () => {
    const r = await get('/held-open');
    const t0 = Date.now();
    await r.dump();
    expect(Date.now() - t0).toBeLessThan(DUMP_LIMIT_MS + 500);
    await sleep(50);
    expect(closed).toContain('held-open');
  });

  it('a route deadline on a stream bounds its head only: a stream longer than the deadline is not cut', async () => {
    const r = await client.request({ method: 'GET', path: '/late-end', headers: {} }, { cancel: new RequestCancellation(), timeoutMs: 100, stream: true });
    let text = '';
    for await (const c of r.body) text += Buffer.from(c).toString();
    expect(text).toBe('firstsecond');
  });

  it('accepts a cancellation made from an AbortSignal', async () => {
    const ac = new AbortController();
    const p = client.request({ method: 'GET', path: '/hang', headers: {} }, { cancel: cancellationFromSignal(ac.signal) });
    ac.abort();
    await expect(p).rejects.toBeTruthy();
  });

  it('hands out chunks already received without waiting, sharing the iterator\'s queue', async () => {
    const r = await get('/big');
    const it = r.body[Symbol.asyncIterator]();
    let total = (await it.next()).value!.byteLength;
    await sleep(30); // let more arrive
    let buffered = 0;
    for (let c = r.readBuffered!(); c !== undefined; c = r.readBuffered!()) buffered += c.byteLength;
    expect(buffered).toBeGreaterThan(0);
    total += buffered;
    for (let n = await it.next(); !n.done; n = await it.next()) total += n.value.byteLength;
    expect(total).toBe(BIG_PIECES * 64 * 1024);
    expect(r.readBuffered!()).toBeUndefined();
  });

  it('stopping the iteration early frees the upstream', async () => {
    const r = await get('/slow-body');
    for await (const c of r.body) {
      expect(Buffer.from(c).toString()).toBe('first');
      break;
    }
    await sleep(50);
    expect(closed.filter((x) => x === 'slow-body').length).toBeGreaterThanOrEqual(2);
  });
});
