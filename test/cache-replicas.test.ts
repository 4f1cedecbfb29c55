/**
 * The cache shared by replicas: two gateway PROCESSES (bin/switchyard.js, as deployed)
 * on one real redis-server with store.kind redis, driven by the openai SDK. What one
 * replica stored, the other serves; with cache.coalesce.across_replicas a herd spread
 * over both replicas costs one upstream call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startRedis, type TestRedis } from './support/redis.js';

interface Replica {
  child: ChildProcess;
  client: OpenAI;
  url: string;
}

let mock: MockUpstream;
let redis: TestRedis;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-cache-replicas-'));
const replicas: Replica[] = [];

async function startReplica(cfgFile: string): Promise<Replica> {
  const child = spawn(process.execPath, ['bin/switchyard.js', '--config', cfgFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', CACHE_REDIS_URL: redis.url },
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 20000);
    const on = (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (c) => reject(new Error(`gateway exited ${c}: ${out}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const r: Replica = { child, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-none', maxRetries: 0 }) };
  replicas.push(r);
  return r;
}

function stopReplica(r: Replica): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    r.child.once('exit', () => resolve());
    r.child.kill('SIGTERM');
  });
}

let one: Replica;
let two: Replica;
let peek: Redis;
beforeAll(async () => {
  [mock, redis] = await Promise.all([startMockUpstream(), startRedis()]);
  const cfg = join(dir, 'gateway.yaml');
  writeFileSync(
    cfg,
    [
      'server: { host: 127.0.0.1, port: 0, shutdown_grace_ms: 1000 }',
      'store: { kind: redis, redis_url: "${CACHE_REDIS_URL}", key_prefix: "replicas:" }',
      'backends:',
      `  mock: { type: openai-compatible, base_url: "${mock.url}", timeout_ms: 5000 }`,
      'models:',
      '  gpt-4o-mini: { backend: mock, model: gpt-4o-mini, price: { input: 0.15, output: 0.6 } }',
      'cache:',
      '  coalesce: { enabled: true, wait_ms: 5000, across_replicas: true }',
    ].join('\n'),
  );
  [one, two] = await Promise.all([startReplica(cfg), startReplica(cfg)]);
  peek = new Redis(redis.url);
}, 60000);
afterAll(async () => {
  await Promise.all(replicas.map(stopReplica));
  peek?.disconnect();
  await mock?.close();
  await redis?.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => mock.reset());

const chatCalls = () => mock.requests.filter((r) => r.path === '/v1/chat/completions').length;
let uniq = 0;
const det = () => ({ model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: `What is the capital of France? [${++uniq}]` }] });

/**
 * Waits until `n` exact entries are in Redis. A replica writes the entry when its
 * response has ended (after the client has it), so a test asks the other replica only
 * once the write has landed.
 */
async function storedInRedis(n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await peek.keys('replicas:cache:x:*')).length >= n) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`fewer than ${n} entries reached Redis`);
}

async function ask(r: Replica, body: OpenAI.ChatCompletionCreateParamsNonStreaming) {
  const { data, response } = await r.client.chat.completions.create(body).withResponse();
  return { text: data.choices[0].message.content, usage: data.usage, cache: response.headers.get('x-switchyard-cache') };
}

async function askStream(r: Replica, body: OpenAI.ChatCompletionCreateParamsNonStreaming) {
  const params = { ...body, stream: true, stream_options: { include_usage: true } } as OpenAI.ChatCompletionCreateParamsStreaming;
  const { data: stream, response } = await r.client.chat.completions.create(params).withResponse();
  let text = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, usage, cache: response.headers.get('x-switchyard-cache') };
}

describe('the cache shared by two gateway processes on one Redis', () => {
  it('serves from the second process a hit the first process made, as JSON and as a stream', async () => {
    const body = det();
    const made = await ask(one, body);
    expect(made.cache).toBe('miss');
    await storedInRedis(1);
    const json = await ask(two, body);
    const stream = await askStream(two, body);
    expect([json.cache, stream.cache]).toEqual(['hit', 'hit']);
    expect(json.text).toBe(made.text);
    expect(stream.text).toBe(made.text);
    expect(stream.usage).toEqual(made.usage);
    expect(chatCalls()).toBe(1);
  });

  it('serves from the first process a stream the second process stored', async () => {
    const body = det();
    const live = await askStream(two, body);
    await storedInRedis(2);
    const replay = await askStream(one, body);
    expect([live.cache, replay.cache]).toEqual(['miss', 'hit']);
    expect(replay.text).toBe(live.text);
    expect(replay.usage).toEqual(live.usage);
    expect(chatCalls()).toBe(1);
  });

  it('makes one upstream call for 20 concurrent identical requests spread over both processes (across_replicas)', async () => {
    const body = det();
    mock.enqueue({ latencyMs: 300 });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(i % 2 ? one : two, body)));
    expect(chatCalls()).toBe(1);
    expect(new Set(results.map((r) => r.text)).size).toBe(1);
    expect(results.filter((r) => r.cache === 'miss')).toHaveLength(1);
    expect(results.filter((r) => r.cache === 'hit')).toHaveLength(19);
  });
});
