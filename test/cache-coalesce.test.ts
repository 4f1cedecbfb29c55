import { describe, expect, it } from 'vitest';
import { createCoalescer, type Coalescer, type FollowOutcome } from '../gateway/cache/coalesce.js';
import type { CacheEntry } from '../gateway/cache/entry.js';

const shape = { stream: false, includeUsage: false, model: 'm' };
const streamShape = { stream: true, includeUsage: true, model: 'm' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 };
const entry = (content: string): CacheEntry => ({
  v: 1,
  endpoint: 'chat',
  response: { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage },
  usage,
  expiresAtMs: Date.now() + 60_000,
});

/** What a request handler does: lead → call upstream once → complete; follow → wait. */
async function request(c: Coalescer, key: string, upstream: () => Promise<CacheEntry>): Promise<{ entry?: CacheEntry; led: boolean }> {
  const j = c.join(key, shape);
  if (j.role === 'follower') {
    const e = await j.follower.result(2000);
    if (e) return { entry: e, led: false };
    return { entry: await upstream(), led: false };
  }
  try {
    const e = await upstream();
    j.leader.complete(e);
    return { entry: e, led: true };
  } finally {
    j.leader.release();
  }
}

function recorder() {
  const written: string[] = [];
  return { written, io: { write: (t: string) => void written.push(t), aborted: () => false } };
}

describe('request coalescing within a replica', () => {
  it('makes exactly one upstream call for 20 concurrent identical requests, and all get the same answer', async () => {
    const c = createCoalescer();
    let calls = 0;
    const upstream = async () => {
      calls++;
      await sleep(50);
      return entry('the one answer');
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => request(c, 'k', upstream)));
    expect(calls).toBe(1);
    expect(results.filter((r) => r.led)).toHaveLength(1);
    for (const r of results) expect(r.entry?.response).toEqual(entry('the one answer').response);
    expect(c.size).toBe(0);
  });

  it('keeps different keys apart', async () => {
    const c = createCoalescer();
    let calls = 0;
    const upstream = async () => {
      calls++;
      await sleep(20);
      return entry('x');
    };
    await Promise.all(['a', 'b', 'a', 'b', 'c'].map((k) => request(c, k, upstream)));
    expect(calls).toBe(3);
  });

  it('lets followers fall through to their own call when the leader fails', async () => {
    const c = createCoalescer();
    const lead = c.join('k', shape);
    const follow = c.join('k', shape);
    expect(lead.role).toBe('leader');
    expect(follow.role).toBe('follower');
    if (lead.role !== 'leader' || follow.role !== 'follower') return;
    const pending = follow.follower.result(2000);
    lead.leader.fail();
    expect(await pending).toBeUndefined();
    // The failed flight is gone: the next request leads a new one.
    expect(c.join('k', shape).role).toBe('leader');
  });

  it('bounds the wait of a follower by wait_ms', async () => {
    const c = createCoalescer();
    const lead = c.join('k', shape);
    const follow = c.join('k', shape);
    if (follow.role !== 'follower' || lead.role !== 'leader') throw new Error('roles');
    const t0 = Date.now();
    expect(await follow.follower.result(80)).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    expect(Date.now() - t0).toBeLessThan(1000);
    const r = recorder();
    expect(await follow.follower.follow(r.io, 50)).toEqual({ kind: 'fall-through' });
    expect(r.written).toEqual([]);
    lead.leader.release();
  });

  it('tells a leader when its last follower has gone while the flight still runs (its client may have left)', async () => {
    const c = createCoalescer();
    const lead = c.join('k-abandoned', shape);
    const one = c.join('k-abandoned', shape);
    const two = c.join('k-abandoned', shape);
    if (lead.role !== 'leader' || one.role !== 'follower' || two.role !== 'follower') throw new Error('roles');
    let abandoned = 0;
    const first = one.follower.result(30);
    const second = two.follower.result(80);
    expect(lead.leader.hasFollowers()).toBe(true);
    lead.leader.onAbandoned(() => abandoned++);
    await first;
    expect(abandoned).toBe(0);
    await second;
    expect(abandoned).toBe(1);
    expect(lead.leader.hasFollowers()).toBe(false);
    lead.leader.release();
  });

  it('answers at once a request that arrives after the answer, until the leader releases the flight', async () => {
    const c = createCoalescer();
    const lead = c.join('k', shape);
    if (lead.role !== 'leader') throw new Error('role');
    lead.leader.complete(entry('done'));
    const late = c.join('k', shape);
    if (late.role !== 'follower') throw new Error('role');
    expect((await late.follower.result(10))?.response).toEqual(entry('done').response);
    lead.leader.release();
    expect(c.join('k', shape).role).toBe('leader');
  });

  it('gives stream followers what was already sent, then the live chunks, then the end', async () => {
    const c = createCoalescer();
    const lead = c.join('s', streamShape);
    if (lead.role !== 'leader') throw new Error('role');
    lead.leader.chunk('data: 1\n\n');
    lead.leader.chunk('data: 2\n\n');
    const followers = Array.from({ length: 5 }, () => {
      const j = c.join('s', streamShape);
      if (j.role !== 'follower') throw new Error('role');
      const r = recorder();
      return { r, done: j.follower.follow(r.io, 1000) };
    });
    await sleep(10);
    for (const f of followers) expect(f.r.written).toEqual(['data: 1\n\n', 'data: 2\n\n']);
    lead.leader.chunk('data: 3\n\n');
    await sleep(10);
    for (const f of followers) expect(f.r.written).toHaveLength(3);
    lead.leader.chunk('data: [DONE]\n\n');
    lead.leader.complete(entry('123'));
    for (const f of followers) {
      const out = (await f.done) as Extract<FollowOutcome, { kind: 'complete' }>;
      expect(out.kind).toBe('complete');
      expect(out.sawDone).toBe(true);
      expect(out.entry.response).toEqual(entry('123').response);
      expect(f.r.written.join('')).toBe('data: 1\n\ndata: 2\n\ndata: 3\n\ndata: [DONE]\n\n');
    }
    lead.leader.release();
  });

  it('tells a stream follower whether it is broken mid-stream or may still make its own call', async () => {
    const c = createCoalescer();
    const lead = c.join('s', streamShape);
    const early = c.join('s', streamShape);
    if (lead.role !== 'leader' || early.role !== 'follower') throw new Error('roles');
    const r = recorder();
    const out = early.follower.follow(r.io, 1000);
    lead.leader.chunk('data: partial\n\n');
    await sleep(5);
    lead.leader.fail(true);
    expect(await out).toEqual({ kind: 'broken', errorSent: true });
    expect(r.written).toEqual(['data: partial\n\n']);

    const lead2 = c.join('s2', streamShape);
    const f2 = c.join('s2', streamShape);
    if (lead2.role !== 'leader' || f2.role !== 'follower') throw new Error('roles');
    const out2 = f2.follower.follow(recorder().io, 1000);
    lead2.leader.fail();
    expect(await out2).toEqual({ kind: 'fall-through' });
  });

  it('waits for a slow follower to drain without holding up the others', async () => {
    const c = createCoalescer();
    const lead = c.join('s', streamShape);
    const slow = c.join('s', streamShape);
    const fast = c.join('s', streamShape);
    if (lead.role !== 'leader' || slow.role !== 'follower' || fast.role !== 'follower') throw new Error('roles');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slowWritten: string[] = [];
    const slowDone = slow.follower.follow({ write: (t) => (slowWritten.push(t), gate), aborted: () => false }, 1000);
    const fastRec = recorder();
    const fastDone = fast.follower.follow(fastRec.io, 1000);
    for (const t of ['a', 'b', 'c']) lead.leader.chunk(t);
    lead.leader.complete(entry('abc'));
    expect((await fastDone).kind).toBe('complete');
    expect(fastRec.written).toEqual(['a', 'b', 'c']);
    expect(slowWritten).toEqual(['a']);
    release();
    expect((await slowDone).kind).toBe('complete');
    expect(slowWritten).toEqual(['a', 'b', 'c']);
  });
});
