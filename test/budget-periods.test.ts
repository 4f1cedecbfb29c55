import { describe, expect, it } from 'vitest';
import { assertTimezone, currentPeriod } from '../gateway/stores/budgets/periods.js';

describe('calendar budget periods', () => {
  it('names UTC days and months and knows where they end', () => {
    const now = Date.UTC(2026, 10, 25, 23, 59, 59);
    expect(currentPeriod('day', now, 'UTC')).toEqual({ kind: 'day', label: '2026-11-25', startMs: Date.UTC(2026, 10, 25), endMs: Date.UTC(2026, 10, 26) });
    expect(currentPeriod('month', now, 'UTC')).toEqual({ kind: 'month', label: '2026-11', startMs: Date.UTC(2026, 10, 1), endMs: Date.UTC(2026, 11, 1) });
    expect(currentPeriod('month', Date.UTC(2026, 11, 31, 12), 'UTC').endMs).toBe(Date.UTC(2027, 0, 1));
  });

  it('uses the configured timezone for the calendar', () => {
    // 2026-11-25 20:00 UTC is already the 26th in Tokyo (UTC+9).
    const now = Date.UTC(2026, 10, 25, 20);
    const day = currentPeriod('day', now, 'Asia/Tokyo');
    expect(day.label).toBe('2026-11-26');
    expect(day.startMs).toBe(Date.UTC(2026, 10, 25, 15));
    expect(day.endMs).toBe(Date.UTC(2026, 10, 26, 15));
    expect(currentPeriod('month', Date.UTC(2026, 10, 30, 16), 'Asia/Tokyo').label).toBe('2026-12');
  });

  it('gives a daylight-saving day its real length', () => {
    // New York leaves DST on 2026-11-01: that day has 25 hours.
    const day = currentPeriod('day', Date.UTC(2026, 10, 1, 12), 'America/New_York');
    expect(day.label).toBe('2026-11-01');
    expect(day.startMs).toBe(Date.UTC(2026, 10, 1, 4));
    expect(day.endMs - day.startMs).toBe(25 * 3_600_000);
  });

  it('rejects an unknown timezone', () => {
    expect(() => assertTimezone('Mars/Olympus')).toThrow(RangeError);
    expect(() => assertTimezone('Europe/Berlin')).not.toThrow();
  });
});
