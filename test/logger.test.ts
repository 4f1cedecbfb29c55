/**
 * The file logger: access lines are buffered and written in batches, in pino's line
 * format, never out of order with other lines, and not lost when the process exits.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccessLineWriter, createLogger, releaseLogger } from '../gateway/logger.js';

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('file logger', () => {
  it('writes access lines in pino format, batched, and flushes them before any other line', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sy-log-')), 'gw.log');
    const logger = createLogger({ level: 'info', file });
    const access = createAccessLineWriter(logger);
    logger.info('started'); // opens the file
    access('info', { request_id: 'a', status: 200, latency_ms: 1.5 });
    access('error', { request_id: 'b', status: 502, err: { message: 'down' } });
    // Buffered: not in the file yet.
    expect(lines(file).map((l) => l.request_id ?? l.msg)).toEqual(['started']);
    logger.warn({ authorization: 'Bearer sk-secret' }, 'something happened');
    const got = lines(file);
    expect(got.map((l) => l.request_id ?? l.msg)).toEqual(['started', 'a', 'b', 'something happened']);
    expect(got[1]).toMatchObject({ level: 'info', service: 'switchyard', msg: 'request', status: 200, latency_ms: 1.5 });
    expect(got[2]).toMatchObject({ level: 'error', msg: 'request', err: { message: 'down' } });
    expect(Number.isNaN(Date.parse(got[1].time as string))).toBe(false);
    expect(JSON.stringify(got)).not.toContain('sk-secret');
  });

  it('writes without a flush once the buffer is full, and honours the level', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sy-log-')), 'gw.log');
    const logger = createLogger({ level: 'error', file });
    const access = createAccessLineWriter(logger);
    for (let i = 0; i < 400; i++) access('info', { request_id: `i${i}` });
    for (let i = 0; i < 2000; i++) access('error', { request_id: `e${i}`, pad: 'x'.repeat(40) });
    const got = lines(file);
    expect(got.length).toBeGreaterThan(500);
    expect(got.every((l) => l.level === 'error')).toBe(true);
    expect(got.map((l) => l.request_id)).toEqual(got.map((_, i) => `e${i}`));
  });

  it('loses no buffered access line when the process exits', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sy-log-')), 'gw.log');
    const script = `
      import { createAccessLineWriter, createLogger } from './gateway/logger.ts';
      const logger = createLogger({ level: 'info', file: ${JSON.stringify(file)} });
      const access = createAccessLineWriter(logger);
      for (let i = 0; i < 5; i++) access('info', { request_id: 'r' + i });
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: join(__dirname, '..'), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(lines(file).map((l) => l.request_id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('releaseLogger writes what is buffered, leaves no exit listener, and writes later lines at once', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sy-log-')), 'gw.log');
    const listeners = process.listenerCount('exit');
    const logger = createLogger({ level: 'info', file });
    expect(process.listenerCount('exit')).toBe(listeners + 1);
    const access = createAccessLineWriter(logger);
    logger.info('started');
    access('info', { request_id: 'buffered' });
    releaseLogger(logger);
    expect(process.listenerCount('exit')).toBe(listeners);
    expect(lines(file).map((l) => l.request_id ?? l.msg)).toEqual(['started', 'buffered']);
    access('info', { request_id: 'late' });
    expect(lines(file).map((l) => l.request_id ?? l.msg)).toEqual(['started', 'buffered', 'late']);
  });
});
