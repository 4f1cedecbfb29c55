/**
 * The rate-limit store: counters shaped for admission, not a key-value bag.
 * One consume() per request checks and takes ALL of its limits (rpm, tpm estimate,
 * concurrency; per key, team, model alias and global) in one atomic step in the
 * shared store: either every limit has room and every counter moves, or none does
 * (PEERS #1: no per-pod read before a shared write). Memory and Redis implementations
 * pass test/stores-contract-limits.test.ts.
 */

export interface LimitRule {
  /** Stable counter name from config ids, e.g. "key:team-a:rpm" (never raw user input). */
  id: string;
  /**
   * window: a fixed window of windowMs that starts with its first request (as
   * rate-limiter-flexible's fixed windows do); points are added to it.
   * concurrent: a slot held until release(); windowMs is the lease after which a slot
   * that was never released (a crashed replica) frees itself. points are ignored (1).
   */
  kind: 'window' | 'concurrent';
  points: number;
  limit: number;
  windowMs: number;
}

export interface LimitState {
  id: string;
  limit: number;
  /** After this consume (or, when refused, as found). */
  used: number;
  remaining: number;
  /** Until the window restarts; 0 for concurrency slots. */
  resetMs: number;
}

/** Proof of a consume: what adjust() and release() act on. */
export interface LimitGrant {
  /** Unique per consume; the concurrency slots are held under it. */
  readonly token: string;
  readonly rules: readonly LimitRule[];
  /**
   * Per window rule id: when the window this consume counted in ends (epoch ms, the
   * store's clock). adjust() corrects that window only: once it has rolled over, a
   * correction would land in a window the request was never counted in.
   */
  readonly windowEnds?: Readonly<Record<string, number>>;
}

export interface ConsumeResult {
  allowed: boolean;
  /** One per rule, in the order given. */
  states: LimitState[];
  /** Ids of the rules without room (empty when allowed). */
  denied: string[];
  /** When a refused request may try again: the longest reset among denied rules. */
  retryAfterMs: number;
  /** Present when allowed. */
  grant?: LimitGrant;
}

export interface LimitsStore {
  /** `token`: the grant's token, when the caller must know it before the call returns (to undo a call that timed out). */
  consume(rules: readonly LimitRule[], token?: string): Promise<ConsumeResult>;
  /**
   * Corrects a window counter of a grant by delta (tpm: actual − estimated tokens).
   * No effect once the window has rolled over; never below zero.
   */
  adjust(grant: LimitGrant, ruleId: string, delta: number): Promise<void>;
  /** Frees the grant's concurrency slots. Idempotent. */
  release(grant: LimitGrant): Promise<void>;
  /** Current state without consuming (usage API). */
  peek(rules: readonly LimitRule[]): Promise<LimitState[]>;
  close(): Promise<void>;
}

/** Concurrency slots free themselves after this when never released. */
export const DEFAULT_LEASE_MS = 15 * 60 * 1000;

let seq = 0;
/** Unique across replicas and restarts: random prefix per process, counter per grant. */
const PROCESS_ID = Math.random().toString(36).slice(2, 10);
export function newToken(): string {
  seq = (seq + 1) % Number.MAX_SAFE_INTEGER;
  return `${PROCESS_ID}.${seq.toString(36)}`;
}

export function retryAfter(rules: readonly LimitRule[], states: readonly LimitState[], denied: readonly string[]): number {
  let ms = 0;
  for (let i = 0; i < rules.length; i++) {
    if (!denied.includes(rules[i].id)) continue;
    // A slot frees when some request ends: unknowable, so suggest a second.
    ms = Math.max(ms, rules[i].kind === 'concurrent' ? 1000 : states[i].resetMs);
  }
  return ms;
}
