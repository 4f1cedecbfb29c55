/**
 * Calendar budget periods (day, month) in limits.timezone (IANA name, default UTC),
 * computed with Intl so DST and offsets come from the platform's tz database.
 * Scope ids carry the period ("key:team-a:day:2026-11-25"), so a new period is simply
 * a new counter and old ones expire on their own.
 */

export type PeriodKind = 'day' | 'month';

export interface Period {
  kind: PeriodKind;
  /** "2026-11-25" or "2026-11" */
  label: string;
  /** UTC ms of the period's first and next period's first instant. */
  startMs: number;
  endMs: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Throws RangeError for an unknown zone; config validation calls it once. */
export function assertTimezone(timeZone: string): void {
  formatter(timeZone);
}

interface LocalParts {
  y: number;
  m: number;
  d: number;
}

function localParts(ms: number, timeZone: string): LocalParts & { h: number; mi: number; s: number } {
  const p: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return { y: p.year, m: p.month, d: p.day, h: p.hour, mi: p.minute, s: p.second };
}

/** The zone's offset from UTC at an instant, in ms (local − UTC). */
function offsetAt(ms: number, timeZone: string): number {
  const l = localParts(ms, timeZone);
  return Date.UTC(l.y, l.m - 1, l.d, l.h, l.mi, l.s) - Math.floor(ms / 1000) * 1000;
}

/** UTC ms of local midnight on a local date (Date.UTC normalises day/month overflow). */
function localMidnight(y: number, m: number, d: number, timeZone: string): number {
  const naive = Date.UTC(y, m - 1, d);
  // Two passes: the offset at the guess may differ from the offset at the answer (DST).
  let t = naive - offsetAt(naive, timeZone);
  t = naive - offsetAt(t, timeZone);
  return t;
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The last period computed per (kind, zone): every request asks, and Intl's
 * formatToParts is far too slow for the hot path, while the answer only changes at
 * the period's end.
 */
const lastPeriod = new Map<string, Period>();

export function currentPeriod(kind: PeriodKind, nowMs: number, timeZone: string): Period {
  const cacheKey = `${kind}|${timeZone}`;
  const cached = lastPeriod.get(cacheKey);
  if (cached && nowMs >= cached.startMs && nowMs < cached.endMs) return cached;
  const p = Object.freeze(computePeriod(kind, nowMs, timeZone));
  lastPeriod.set(cacheKey, p);
  return p;
}

function computePeriod(kind: PeriodKind, nowMs: number, timeZone: string): Period {
  const { y, m, d } = localParts(nowMs, timeZone);
  if (kind === 'day') {
    return { kind, label: `${y}-${pad(m)}-${pad(d)}`, startMs: localMidnight(y, m, d, timeZone), endMs: localMidnight(y, m, d + 1, timeZone) };
  }
  return { kind, label: `${y}-${pad(m)}`, startMs: localMidnight(y, m, 1, timeZone), endMs: localMidnight(y, m + 1, 1, timeZone) };
}
