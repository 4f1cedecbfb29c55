/**
 * filterContent: the per-route content filter (routes[].filters). Runs after
 * resolveRoute (it needs ctx.route) and before anything leaves the gateway; a request
 * without a route, or whose route has no filters, passes untouched.
 *
 *   deny.patterns / deny.keywords → 400 content_filter (the rule goes to the log only:
 *                                   telling the client which rule fired helps evade it);
 *                                   matched against NFKC-normalised text without
 *                                   invisible characters (a zero-width space inside a
 *                                   keyword does not hide it)
 *   pii.prompts (default on)      → e-mails, phones, cards, secrets replaced in ctx.body;
 *                                   ctx.bodyChanged = true
 * Both look at every caller-supplied text that reaches the model (forEachText): message
 * content and names, earlier tool-call arguments, tool descriptions, completions prompt,
 * embeddings input.
 *
 * Deny rules are compiled once per config generation, when the stage is created, so a
 * bad regex fails start-up (or the reload) instead of a request. Patterns are
 * case-insensitive. Completion-side redaction (pii.completions) is applied by the
 * dispatcher through gateway/routing/redact-completions.ts.
 */
import type { RouteConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import { compileKeywords } from '../../routing/keywords.js';
import { redactText } from '../../routing/pii.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';

interface CompiledFilters {
  deny: Array<{ re: RegExp; rule: string }>;
  redactPrompts: boolean;
}

function compilePattern(pattern: string, where: string): RegExp {
  try {
    return new RegExp(pattern, 'iu');
  } catch {
    try {
      // Patterns written for non-Unicode mode (e.g. "\-" outside a class) are still accepted.
      return new RegExp(pattern, 'i');
    } catch (err) {
      throw new Error(`${where}: invalid regular expression /${pattern}/: ${(err as Error).message}`);
    }
  }
}

export function compileFilters(route: RouteConfig, index: number): CompiledFilters | undefined {
  const f = route.filters;
  if (!f) return undefined;
  const deny: CompiledFilters['deny'] = [];
  f.deny?.patterns.forEach((p, i) => deny.push({ re: compilePattern(p, `routes.${index}.filters.deny.patterns.${i}`), rule: `pattern:${i}` }));
  const kw = compileKeywords(f.deny?.keywords ?? []);
  if (kw) deny.push({ re: kw, rule: 'keywords' });
  const redactPrompts = f.pii !== undefined && f.pii.prompts;
  if (!deny.length && !redactPrompts) return undefined;
  return { deny, redactPrompts };
}

/** Calls visit(text) on a string property; a returned string replaces it. */
function visitField(obj: unknown, field: string, visit: (text: string) => string | void): void {
  if (!obj || typeof obj !== 'object') return;
  const o = obj as Record<string, unknown>;
  const v = o[field];
  if (typeof v !== 'string') return;
  const r = visit(v);
  if (typeof r === 'string') o[field] = r;
}

/**
 * Calls visit on every caller-supplied text in an OpenAI request body that goes to the
 * model; visit may return a replacement. Message content (string or text parts), message
 * names, the arguments of earlier tool calls in the history, tool and function
 * descriptions, completions prompts and embeddings input.
 */
export function forEachText(body: Record<string, unknown>, visit: (text: string) => string | void): void {
  const messages = body.messages;
  if (Array.isArray(messages)) {
    for (const m of messages) {
      if (!m || typeof m !== 'object') continue;
      const msg = m as { content?: unknown; tool_calls?: unknown; function_call?: unknown };
      if (typeof msg.content === 'string') visitField(msg, 'content', visit);
      else if (Array.isArray(msg.content)) {
        for (const part of msg.content) {
          const p = part as { type?: unknown } | null;
          if (p && p.type === 'text') visitField(p, 'text', visit);
        }
      }
      visitField(msg, 'name', visit);
      if (Array.isArray(msg.tool_calls)) for (const call of msg.tool_calls) visitField((call as { function?: unknown } | null)?.function, 'arguments', visit);
      visitField(msg.function_call, 'arguments', visit);
    }
  }
  for (const list of [body.tools, body.functions]) {
    if (!Array.isArray(list)) continue;
    for (const t of list) {
      const fn = (t as { function?: unknown } | null)?.function ?? t;
      visitField(fn, 'description', visit);
    }
  }
  for (const field of ['prompt', 'input', 'suffix'] as const) {
    const v = body[field];
    if (typeof v === 'string') visitField(body, field, visit);
    else if (Array.isArray(v)) {
      v.forEach((s, i) => {
        if (typeof s !== 'string') return;
        const r = visit(s);
        if (typeof r === 'string') v[i] = r;
      });
    }
  }
}

/** A prompt or input given as token ids: a number, or an array holding numbers or arrays of numbers. */
function hasTokenIds(v: unknown): boolean {
  if (typeof v === 'number') return true;
  if (!Array.isArray(v)) return false;
  return v.some((x) => typeof x === 'number' || (Array.isArray(x) && x.some((y) => typeof y === 'number')));
}

/** Characters that render as nothing: a keyword with one inside must still match. */
const INVISIBLE = /[\u00AD\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]/g;

/** The text deny rules are matched against: compatibility-normalised (full-width and ligature forms fold), invisible characters removed. */
export function textForMatching(text: string): string {
  // ASCII-only text (the common case) has nothing to fold or remove.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  return text.normalize('NFKC').replace(INVISIBLE, '');
}

export function createFilterContentStage(deps: GatewayDeps): Stage {
  const { metrics } = deps;
  // Keyed by the frozen route object of this config generation.
  const compiled = new Map<RouteConfig, CompiledFilters | undefined>();
  deps.config.routes.forEach((r, i) => compiled.set(r, compileFilters(r, i)));

  return function filterContent(ctx: RequestContext) {
    const route = ctx.route;
    if (!route) return;
    let f = compiled.get(route);
    if (f === undefined && !compiled.has(route)) {
      // A route object from another config generation (should not happen; compile rather than skip filtering).
      f = compileFilters(route, -1);
      compiled.set(route, f);
    }
    if (!f) return;

    // Token ids cannot be read, so they cannot be filtered: on a filtered route they
    // would pass every rule unseen.
    for (const param of ['prompt', 'input'] as const) {
      if (hasTokenIds(ctx.body[param])) {
        throw new GatewayError('invalid_request', { message: `This route filters content, so ${param} must be text, not token ids.`, param });
      }
    }

    for (const { re, rule } of f.deny) {
      let hit = false;
      forEachText(ctx.body, (text) => {
        if (!hit && re.test(textForMatching(text))) hit = true;
      });
      if (hit) {
        metrics.contentFiltered.labels(route.name, 'deny').inc();
        throw new GatewayError('content_filter', { detail: { route: route.name, rule } });
      }
    }

    if (f.redactPrompts) {
      let count = 0;
      forEachText(ctx.body, (text) => {
        const r = redactText(text);
        if (r.count === 0) return;
        count += r.count;
        return r.text;
      });
      if (count > 0) {
        ctx.bodyChanged = true;
        metrics.contentFiltered.labels(route.name, 'redact').inc();
      }
    }
  };
}
