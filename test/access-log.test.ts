/**
 * The access line, serialised by hand (pipeline/finalizers/access-log.ts): whatever a
 * client puts in the values it controls (x-request-id, the model name), the line is one
 * valid JSON object whose fields read back exactly as JSON.stringify would have written them.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../gateway/logger.js';
import { createAccessLogFinalizer } from '../gateway/pipeline/finalizers/access-log.js';
import { GatewayError, UpstreamHttpError } from '../gateway/errors.js';
import type { RequestContext } from '../gateway/pipeline/context.js';
import type { GatewayDeps } from '../gateway/pipeline/deps.js';

function capture(level = 'info') {
  const out: string[] = [];
  const logger = createLogger({ level, destination: { write: (s: string) => { out.push(s); } } as never });
  const finalize = createAccessLogFinalizer({ logger } as unknown as GatewayDeps);
  return { out, finalize };
}

const NASTY = ['plain', 'quo"te', 'back\\slash', 'new\nline', 'tab\tand\u0001ctl', 'emoji 😀', 'lone \ud800 surrogate', 'sep \u2028\u2029', '</script>', ''];

function ctxWith(id: string, model: string | undefined, extra: Partial<RequestContext> = {}): RequestContext {
  const start = process.hrtime.bigint() - 1_234_567n;
  return {
    id,
    key: { id: 'team-a' },
    modelAlias: model,
    target: { backendName: 'mock', model: { model: 'gpt-4o-mini' }, alias: model },
    endpoint: 'chat',
    stream: true,
    status: 200,
    startNs: start,
    upstreamNs: 1_000_000n,
    waitNs: 0n,
    firstByteNs: start + 500_000n,
    usage: { prompt_tokens: 21, completion_tokens: 3 },
    ...extra,
  } as unknown as RequestContext;
}

describe('access line', () => {
  it('writes every client-controlled string so that it reads back exactly', () => {
    const { out, finalize } = capture();
    for (const s of NASTY) finalize(ctxWith(s, s), undefined);
    expect(out).toHaveLength(NASTY.length);
    out.forEach((line, i) => {
      expect(line.endsWith('\n')).toBe(true);
      const l = JSON.parse(line);
      expect(l.request_id).toBe(JSON.parse(JSON.stringify(NASTY[i])));
      expect(l.model).toBe(JSON.parse(JSON.stringify(NASTY[i])));
      expect(line.split('\n')).toHaveLength(2); // one line, whatever the input
    });
  });

  it('has the fields and types of the documented line, durations in ms to the microsecond', () => {
    const { out, finalize } = capture();
    finalize(ctxWith('r1', 'gpt-4o-mini', { costUsd: 0.0000049, cacheResult: 'miss', routeInfo: 'route=faq target=gpt-4o-mini', streamOutcome: 'client_abort', usage: { prompt_tokens: 21, completion_tokens: 3, total_tokens: 24, estimated: true } } as unknown as Partial<RequestContext>), undefined);
    const l = JSON.parse(out[0]!);
    expect(l).toMatchObject({
      level: 'info', msg: 'request', request_id: 'r1', key_id: 'team-a', model: 'gpt-4o-mini', backend: 'mock', upstream_model: 'gpt-4o-mini',
      endpoint: 'chat', stream: true, status: 200, prompt_tokens: 21, completion_tokens: 3, ttfb_ms: 0.5, stream_outcome: 'client_abort',
      usage_estimated: true, cost_usd: 0.0000049, route: 'route=faq target=gpt-4o-mini', cache: 'miss',
    });
    expect(l.latency_ms).toBeGreaterThanOrEqual(1.234);
    expect(String(l.latency_ms).split('.')[1]?.length ?? 0).toBeLessThanOrEqual(3);
    expect(l.overhead_ms).toBeCloseTo(l.latency_ms - 1, 2);
  });

  it('writes nulls for what the request never got to, and the error of a failed one', () => {
    const { out, finalize } = capture();
    const bare = { id: 'r2', endpoint: 'chat', stream: false, status: 404, startNs: process.hrtime.bigint(), upstreamNs: 0n, waitNs: 0n } as unknown as RequestContext;
    finalize(bare, new GatewayError('model_not_found', { message: 'no "such" model' }));
    finalize({ ...bare, id: 'r3', status: 500 } as RequestContext, new Error('boom "x"'));
    finalize({ ...bare, id: 'r4', status: 503 } as RequestContext, new UpstreamHttpError(503, '{"error":{"message":"overloaded"}}'));
    const [a, b, c] = out.map((l) => JSON.parse(l));
    expect(c).toMatchObject({ status: 503, error_code: 'upstream_503' });
    expect(a).toMatchObject({ level: 'info', key_id: null, model: null, backend: null, upstream_model: null, prompt_tokens: null, completion_tokens: null, stream: false, error_code: 'model_not_found' });
    expect(a.err).toBeUndefined();
    expect(b).toMatchObject({ level: 'error', error_code: 'Error', err: { message: 'boom "x"' } });
  });

  it('builds nothing when the level is off', () => {
    const { out, finalize } = capture('error');
    finalize(ctxWith('r4', 'm'), undefined);
    expect(out).toHaveLength(0);
  });
});
