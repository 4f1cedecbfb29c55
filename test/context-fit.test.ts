import { describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../gateway/config/schema.js';
import { GatewayError } from '../gateway/errors.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import type { RequestContext } from '../gateway/pipeline/context.js';
import type { GatewayDeps } from '../gateway/pipeline/deps.js';
import { createFitContextStage } from '../gateway/pipeline/stages/fit-context.js';
import { createTokenCounter } from '../gateway/tokens/token-counter.js';
import { trimMessages } from '../gateway/tokens/trim-messages.js';

function deps(raw: Record<string, unknown>): GatewayDeps {
  const config = ConfigSchema.parse(raw);
  return { config, metrics: createMetrics({ defaultMetrics: false }), logger: createLogger({ level: 'silent' }) } as unknown as GatewayDeps;
}

function ctxFor(config: Config, body: Record<string, unknown>, routeContext?: 'trim' | 'reject'): RequestContext {
  const alias = body.model as string;
  const model = config.models[alias];
  return {
    id: 't', config, endpoint: 'chat', body, rawBody: Buffer.from(JSON.stringify(body)), bodyChanged: false, modelAlias: alias, stream: false, candidates: [],
    target: { alias, model, backendName: model.backend, backend: {} },
    route: routeContext ? { name: 'r', context: routeContext } : undefined,
    responseHeaders: {}, status: 0, upstreamNs: 0n, waitNs: 0n, onEnd: [], locals: {},
  } as unknown as RequestContext;
}

const raw = {
  models: { small: { backend: 'b', model: 'gpt-4o', context_window: 60, price: { input: 1, output: 1 } }, roomy: { backend: 'b', model: 'gpt-4o' }, mid: { backend: 'b', model: 'gpt-4o', context_window: 300, price: { input: 1, output: 1 } }, wide: { backend: 'b', model: 'gpt-4o', context_window: 100000, price: { input: 1, output: 1 } } },
};
const say = (role: string, content: string) => ({ role, content });
const call = (id: string) => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } }] });
const result = (id: string) => ({ role: 'tool', tool_call_id: id, content: 'result text' });
const counter = createTokenCounter({ token_estimator: { cjk_per_char: 1.5, other_per_char: 0.25 } });

describe('trimming a conversation to fit', () => {
  const messages = [say('system', 'Be brief.'), say('user', 'first question'), call('a'), result('a'), say('assistant', 'answer one'), say('user', 'last question')];
  const per = messages.map((m) => counter.countChat({ messages: [m] }, { backend: 'b', model: 'gpt-4o', tokenizer: 'auto' }).perMessage[0]);
  const total = per.reduce((a, b) => a + b, 0) + 3;

  it('drops whole turns, oldest first, and keeps system messages and the last turn', () => {
    // Freeing one message's worth is enough, but the turn goes as a whole: the question,
    // the tool call with its result and the answer. What is kept starts with a user message.
    const t = trimMessages(messages, per, 3, total - per[1])!;
    expect(t.dropped).toBe(4);
    expect(t.messages).toEqual([messages[0], messages[5]]);
    expect(t.tokens).toBe(total - per[1] - per[2] - per[3] - per[4]);
  });

  it('never keeps a tool call without its results, nor an answer without its question', () => {
    for (let budget = 0; budget <= total; budget++) {
      const r = trimMessages(messages, per, 3, budget);
      if (!r) continue;
      const kept = r.messages as Array<{ role: string }>;
      expect(kept.includes(messages[2] as never)).toBe(kept.includes(messages[3] as never));
      expect(kept[0]).toBe(messages[0]);
      expect(kept[1]!.role).toBe('user');
      expect(kept[kept.length - 1]).toBe(messages[5]);
    }
  });

  it("keeps an agent's task: after the older turns, drops the current turn's oldest tool steps, never its question or latest step", () => {
    const agent = [say('system', 'You are an agent.'), say('user', 'old chat'), say('assistant', 'old reply'), say('user', 'TASK: book a flight'), call('s1'), result('s1'), call('s2'), result('s2'), call('s3'), result('s3')];
    const p = agent.map((m) => counter.countChat({ messages: [m] }, { backend: 'b', model: 'gpt-4o', tokenizer: 'auto' }).perMessage[0]);
    const all = p.reduce((a, b) => a + b, 0) + 3;
    // The old turn is enough.
    expect(trimMessages(agent, p, 3, all - p[1])!.messages).toEqual([agent[0], agent[3], ...agent.slice(4)]);
    // Not enough: then step 1 (call and result together), then step 2; step 3 and the task stay.
    expect(trimMessages(agent, p, 3, all - p[1] - p[2] - 1)!.messages).toEqual([agent[0], agent[3], ...agent.slice(6)]);
    const tight = trimMessages(agent, p, 3, p[0] + p[3] + p[8] + p[9] + 3)!;
    expect(tight.messages).toEqual([agent[0], agent[3], agent[8], agent[9]]);
    expect(trimMessages(agent, p, 3, p[0] + p[3] + p[8] + p[9] + 2)).toBeUndefined();
  });

  it('drops leading assistant messages before the first question with the oldest turn', () => {
    const greeted = [say('system', 's'), say('assistant', 'Hello! How can I help?'), say('user', 'q1'), say('assistant', 'a1'), say('user', 'q2')];
    const p = greeted.map((m) => counter.countChat({ messages: [m] }, { backend: 'b', model: 'gpt-4o', tokenizer: 'auto' }).perMessage[0]);
    const all = p.reduce((a, b) => a + b, 0) + 3;
    expect(trimMessages(greeted, p, 3, all - 1)!.messages).toEqual([greeted[0], ...greeted.slice(2)]);
  });

  it('gives up when the system messages and the last turn alone do not fit', () => {
    expect(trimMessages(messages, per, 3, per[0] + per[5] + 2)).toBeUndefined();
    expect(trimMessages(messages, per, 3, per[0] + per[5] + 3)).toBeDefined();
  });
});

describe('the fit-context stage', () => {
  const d = deps(raw);
  const stage = createFitContextStage(d);
  const long = (n: number) => Array.from({ length: n }, (_, i) => say(i % 2 ? 'assistant' : 'user', `message number ${i} with a few words`));

  it('lets a request that fits through untouched', () => {
    const ctx = ctxFor(d.config, { model: 'small', messages: [say('user', 'hi')], max_tokens: 10 }, 'reject');
    stage(ctx);
    expect(ctx.bodyChanged).toBe(false);
    expect(ctx.promptTokensEstimate).toBe(8);
  });

  it('does not tokenize a prompt whose body size alone proves it fits', () => {
    const ctx = ctxFor(d.config, { model: 'wide', messages: [say('user', 'hi')], max_tokens: 10 }, 'reject');
    stage(ctx);
    expect(ctx.promptTokensEstimate).toBeUndefined();
    const changed = ctxFor(d.config, { model: 'wide', messages: [say('user', 'hi')], max_tokens: 10 }, 'reject');
    changed.bodyChanged = true;
    stage(changed);
    expect(changed.promptTokensEstimate).toBe(8);
  });

  it('counts prompts with images even when the body is short: a URL can stand for hundreds of tokens', () => {
    const image = { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] };
    const ctx = ctxFor(d.config, { model: 'mid', messages: [image], max_tokens: 1 }, 'reject');
    expect(ctx.rawBody.length + 16 + 1).toBeLessThan(300);
    expect(() => stage(ctx)).toThrow(GatewayError);
    expect(ctx.promptTokensEstimate).toBeGreaterThan(300);
  });

  it('rejects with 400 context_length_exceeded under the reject policy, counting max_tokens', () => {
    const ctx = ctxFor(d.config, { model: 'small', messages: [say('user', 'hi')], max_tokens: 53 }, 'reject');
    let err: unknown;
    try {
      stage(ctx);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('context_length_exceeded');
    expect((err as GatewayError).status).toBe(400);
    expect((err as GatewayError).message).toContain('maximum context length is 60 tokens');
    // Without a route policy the default is reject too.
    expect(() => stage(ctxFor(d.config, { model: 'small', messages: [say('user', 'hi')], max_tokens: 53 }))).toThrow(GatewayError);
    expect(() => stage(ctxFor(d.config, { model: 'small', messages: [say('user', 'hi')], max_tokens: 52 }, 'reject'))).not.toThrow();
  });

  it('trims the oldest messages under the trim policy and says how many in a header', () => {
    const messages = [say('system', 'Be brief.'), ...long(8)];
    const ctx = ctxFor(d.config, { model: 'small', messages, max_tokens: 5 }, 'trim');
    stage(ctx);
    const kept = ctx.body.messages as unknown[];
    expect(ctx.bodyChanged).toBe(true);
    expect(kept[0]).toEqual(say('system', 'Be brief.'));
    expect(kept[kept.length - 1]).toEqual(messages[messages.length - 1]);
    expect(Number(ctx.responseHeaders['x-switchyard-context-trimmed'])).toBe(messages.length - kept.length);
    expect(ctx.promptTokensEstimate! + 5).toBeLessThanOrEqual(60);
    expect(ctx.promptTokensEstimate).toBe(counter.countPrompt('chat', ctx.body, d.config.models.small));
  });

  it('rejects under the trim policy when even the last turn does not fit', () => {
    const ctx = ctxFor(d.config, { model: 'small', messages: [say('user', 'word '.repeat(100))] }, 'trim');
    expect(() => stage(ctx)).toThrow(expect.objectContaining({ code: 'context_length_exceeded' }));
  });

  it('does nothing for a model without a context window', () => {
    const ctx = ctxFor(d.config, { model: 'roomy', messages: long(50) }, 'reject');
    expect(stage(ctx)).toBeUndefined();
    expect(ctx.bodyChanged).toBe(false);
  });
});
