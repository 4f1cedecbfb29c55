/**
 * Single flight within a replica: concurrent identical cacheable requests make one
 * upstream call. The first request for a key becomes the leader and goes upstream;
 * the others join as followers and wait, bounded by cache.coalesce.wait_ms (per
 * request, from its config snapshot).
 *
 * - A follower whose shape matches the leader's (both streams, same include_usage,
 *   same model alias) receives the leader's SSE text live: first a replay of what was
 *   already relayed, then each chunk as it comes.
 * - Any other follower waits for the complete answer (a CacheEntry) and is served as
 *   a cache hit (JSON or a replayed stream).
 * - When the leader fails (error, cut stream, request changed by a later stage,
 *   client gone) or the wait times out, a follower that has not sent a byte yet falls
 *   through to its own upstream call: a failed leader must not turn one error into N
 *   (the error may be the leader's own: its budget, its client's abort). A follower
 *   already streaming the leader's bytes can only end with an error event.
 *
 * No lock across replicas: each replica makes at most one call per key. Created once
 * (createCacheParts); shared by all requests.
 */
import type { CacheEntry } from './entry.js';

export interface FlightShape {
  stream: boolean;
  includeUsage: boolean;
  model: string;
}

export interface Leader {
  /** SSE text exactly as relayed to the leader's client (stream leaders). */
  chunk(sseText: string): void;
  /** The answer is complete: followers get it. The flight stays joinable (answering at once) until release(). */
  complete(entry: CacheEntry): void;
  /** The leader will not produce an answer; `errorSent` = its relayed text already holds an error event. */
  fail(errorSent?: boolean): void;
  /** Forget the flight (after the answer is stored, or at the leader's end whatever happened). Idempotent. */
  release(): void;
  /** Followers are waiting on this flight now (the leader's upstream call must go on if its own client leaves). */
  hasFollowers(): boolean;
  /**
   * `cb` runs when the last follower leaves while the flight still runs: a leader whose
   * own client has gone then stops its upstream call (nobody reads it any more).
   */
  onAbandoned(cb: () => void): void;
}

/** How a live stream follower ended. */
export type FollowOutcome =
  /** All of the leader's text was written; `sawDone` = it included `data: [DONE]`. */
  | { kind: 'complete'; sawDone: boolean; entry: CacheEntry }
  /** Nothing was written (leader failed, or no first chunk within wait_ms): do your own call. */
  | { kind: 'fall-through' }
  /** The leader failed after bytes were written; `errorSent` = an error event was among them. */
  | { kind: 'broken'; errorSent: boolean }
  | { kind: 'aborted' };

export interface FollowerIO {
  /** Writes text to the follower's client (the first call may write the head); a promise = wait for drain. */
  write(sseText: string): Promise<void> | undefined;
  aborted(): boolean;
}

export interface Follower {
  readonly shape: FlightShape;
  /** The leader's answer; undefined when the leader failed or `waitMs` passed first. */
  result(waitMs: number): Promise<CacheEntry | undefined>;
  /** Relays the leader's live SSE text (only meaningful when shapes match); `waitMs` bounds the wait for the first chunk. */
  follow(io: FollowerIO, waitMs: number): Promise<FollowOutcome>;
}

export type Joined = { role: 'leader'; leader: Leader } | { role: 'follower'; follower: Follower };

export interface Coalescer {
  join(key: string, shape: FlightShape): Joined;
  /** Flights in progress (tests, debugging). */
  readonly size: number;
}

interface Flight {
  shape: FlightShape;
  chunks: string[];
  status: 'running' | 'complete' | 'failed';
  entry?: CacheEntry;
  errorSent: boolean;
  /** Woken on every chunk and on the end. */
  wake: Set<() => void>;
  /** Followers currently waiting or relaying. */
  followers: number;
  abandoned?: () => void;
}

const DONE_RE = /(^|\n)data: ?\[DONE\]/;

export function sameShape(a: FlightShape, b: FlightShape): boolean {
  return a.stream === b.stream && a.includeUsage === b.includeUsage && a.model === b.model;
}

function notify(f: Flight): void {
  const w = [...f.wake];
  f.wake.clear();
  for (const fn of w) fn();
}

/** Resolves on the flight's next event, or after `ms` (false). */
function next(f: Flight, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      f.wake.delete(wake);
      resolve(false);
    }, ms);
    const wake = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    f.wake.add(wake);
  });
}

export function createCoalescer(): Coalescer {
  const flights = new Map<string, Flight>();

  const leaderOf = (key: string, f: Flight): Leader => {
    const fail = (errorSent = false): void => {
      if (f.status !== 'running') return;
      f.status = 'failed';
      f.errorSent = errorSent;
      if (flights.get(key) === f) flights.delete(key);
      notify(f);
    };
    return {
      chunk(text) {
        if (f.status !== 'running') return;
        f.chunks.push(text);
        notify(f);
      },
      complete(entry) {
        if (f.status !== 'running') return;
        f.status = 'complete';
        f.entry = entry;
        notify(f);
      },
      fail,
      release() {
        fail();
        if (flights.get(key) === f) flights.delete(key);
      },
      hasFollowers() {
        return f.followers > 0;
      },
      onAbandoned(cb) {
        f.abandoned = cb;
      },
    };
  };

  /** Counts a follower for the time `work` runs. */
  const counted = async <T>(f: Flight, work: () => Promise<T>): Promise<T> => {
    f.followers++;
    try {
      return await work();
    } finally {
      if (--f.followers === 0 && f.status === 'running') f.abandoned?.();
    }
  };

  const followerOf = (f: Flight): Follower => ({
    shape: f.shape,
    result: (waitMs) => counted(f, () => resultOf(f, waitMs)),
    follow: (io, waitMs) => counted(f, () => followOf(f, io, waitMs)),
  });

  const resultOf = async (f: Flight, waitMs: number): Promise<CacheEntry | undefined> => {
    const deadline = Date.now() + waitMs;
    while (f.status === 'running') {
      const left = deadline - Date.now();
      if (left <= 0 || !(await next(f, left))) return undefined;
    }
    return f.entry;
  };

  const followOf = async (f: Flight, io: FollowerIO, waitMs: number): Promise<FollowOutcome> => {
    const deadline = Date.now() + waitMs;
    let sent = 0;
    for (;;) {
      if (io.aborted()) return { kind: 'aborted' };
      while (sent < f.chunks.length) {
        const text = f.chunks[sent++];
        const drained = io.write(text);
        if (drained) await drained;
        if (io.aborted()) return { kind: 'aborted' };
      }
      if (f.status === 'complete') return { kind: 'complete', sawDone: f.chunks.some((c) => DONE_RE.test(c)), entry: f.entry! };
      if (f.status === 'failed') return sent === 0 ? { kind: 'fall-through' } : { kind: 'broken', errorSent: f.errorSent };
      // wait_ms bounds the wait for the first byte; after that the leader's own timeouts apply.
      const left = sent === 0 ? deadline - Date.now() : 2 ** 31 - 1;
      if (left <= 0 || (!(await next(f, left)) && sent === 0 && f.chunks.length === 0 && f.status === 'running')) {
        return { kind: 'fall-through' };
      }
    }
  };

  return {
    get size() {
      return flights.size;
    },
    join(key, shape) {
      const existing = flights.get(key);
      if (existing && existing.status !== 'failed') return { role: 'follower', follower: followerOf(existing) };
      const f: Flight = { shape, chunks: [], status: 'running', errorSent: false, wake: new Set(), followers: 0 };
      flights.set(key, f);
      return { role: 'leader', leader: leaderOf(key, f) };
    },
  };
}
