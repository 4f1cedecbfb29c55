import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue } from '../gateway/upstream/deadlines.js';

const item = () => ({ fired: 0, expire() { this.fired++; } });

describe('DeadlineQueue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires unreleased items once their time has passed, within one granularity, and never released ones', () => {
    vi.useFakeTimers();
    const q = new DeadlineQueue(1000, () => Date.now());
    expect(q.granularityMs).toBe(100);
    const a = item();
    const b = item();
    const slotA = q.add(a);
    vi.advanceTimersByTime(400);
    q.add(b);
    q.release(slotA);
    q.release(slotA); // idempotent
    expect(q.size).toBe(1);
    vi.advanceTimersByTime(600); // a's deadline: released, so nothing fires
    expect(a.fired).toBe(0);
    expect(b.fired).toBe(0);
    vi.advanceTimersByTime(399); // b's deadline is at 1400
    expect(b.fired).toBe(0);
    vi.advanceTimersByTime(101);
    expect(b.fired).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(b.fired).toBe(1);
    expect(q.size).toBe(0);
  });

  it('stops its timer when empty and starts it again on the next item; slots stay valid across that', () => {
    vi.useFakeTimers();
    const q = new DeadlineQueue(50, () => Date.now());
    expect(q.granularityMs).toBe(5);
    const a = item();
    q.add(a);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(60);
    expect(a.fired).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
    const b = item();
    const c = item();
    const slotB = q.add(b);
    q.add(c);
    expect(vi.getTimerCount()).toBe(1);
    q.release(slotB);
    vi.advanceTimersByTime(60);
    expect(b.fired).toBe(0);
    expect(c.fired).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('releases the right items after the queue compacts under a steady stream', () => {
    vi.useFakeTimers();
    const q = new DeadlineQueue(1000, () => Date.now());
    const keep = item();
    for (let i = 0; i < 5000; i++) {
      const x = item();
      const slot = q.add(x);
      if (i === 10) q.add(keep);
      q.release(slot);
      if (i % 100 === 0) vi.advanceTimersByTime(5);
    }
    expect(q.size).toBe(1);
    vi.advanceTimersByTime(1200);
    expect(keep.fired).toBe(1);
    expect(q.size).toBe(0);
  });
});
