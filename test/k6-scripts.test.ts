/**
 * The k6 binary is not installable here, so the scenarios in loadtest/k6 are checked
 * the way k6 would load them: parsed as ES modules (acorn), imports limited to k6's
 * built-in modules and relative files, and then evaluated in a vm with stubbed k6
 * modules so `options` is the real object and each scenario function runs once
 * against canned gateway responses.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { parse, type Node } from 'acorn';
import { describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../loadtest/k6/', import.meta.url));
const SCRIPTS = ['smoke.js', 'load.js', 'stress.js', 'soak.js', 'streaming.js', 'cache-hit.js', 'rate-limit.js'];
const K6_MODULES = new Set(['k6', 'k6/http', 'k6/metrics', 'k6/data', 'k6/execution', 'k6/encoding', 'k6/crypto', 'k6/timers', 'k6/ws', 'k6/net/grpc', 'k6/html']);

const BUILTIN_METRICS = new Set([
  'http_reqs', 'http_req_duration', 'http_req_blocked', 'http_req_connecting', 'http_req_tls_handshaking', 'http_req_sending',
  'http_req_waiting', 'http_req_receiving', 'http_req_failed', 'iterations', 'iteration_duration', 'vus', 'vus_max',
  'data_sent', 'data_received', 'checks', 'dropped_iterations', 'group_duration',
]);
const COMMON_SCENARIO_KEYS = ['executor', 'startTime', 'gracefulStop', 'exec', 'env', 'tags', 'options'];
const EXECUTORS: Record<string, { required: string[]; optional: string[] }> = {
  'shared-iterations': { required: ['vus', 'iterations'], optional: ['maxDuration'] },
  'per-vu-iterations': { required: ['vus', 'iterations'], optional: ['maxDuration'] },
  'constant-vus': { required: ['vus', 'duration'], optional: [] },
  'ramping-vus': { required: ['stages'], optional: ['startVUs', 'gracefulRampDown'] },
  'constant-arrival-rate': { required: ['rate', 'duration', 'preAllocatedVUs'], optional: ['timeUnit', 'maxVUs'] },
  'ramping-arrival-rate': { required: ['stages', 'preAllocatedVUs'], optional: ['startRate', 'timeUnit', 'maxVUs'] },
  'externally-controlled': { required: ['duration'], optional: ['vus', 'maxVUs'] },
};
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;
const THRESHOLD = /^(avg|min|max|med|count|rate|value|p\(\d+(\.\d+)?\))\s*(<|<=|>|>=|==|===|!=)\s*-?\d+(\.\d+)?$/;

// ---- a tiny ES-module loader over vm, with k6 stubs --------------------------------

interface Call {
  method: string;
  url: string;
  body?: string;
  params?: { headers?: Record<string, string>; tags?: Record<string, string> };
}
interface Harness {
  calls: Call[];
  checks: { name: string; ok: boolean }[];
  metrics: Map<string, { type: string; values: unknown[] }>;
  /** What the fake gateway answers; replaced per test. */
  respond: (call: Call) => FakeResponse;
}
interface FakeResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
  timings: { waiting: number; duration: number };
  json(path?: string): unknown;
}

function response(status: number, body: string, headers: Record<string, string> = {}): FakeResponse {
  return {
    status,
    body,
    headers,
    timings: { waiting: 12, duration: 40 },
    json(path?: string) {
      let v: unknown = JSON.parse(body);
      for (const part of path ? path.split('.') : []) v = v == null ? undefined : (v as Record<string, unknown>)[part];
      return v;
    },
  };
}

/** What a healthy gateway answers. */
function gatewayAnswer(call: Call): FakeResponse {
  if (call.url.endsWith('/health') || call.url.endsWith('/ready')) return response(200, '{"status":"ok"}');
  if (call.url.endsWith('/v1/models')) return response(200, JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] }));
  const req = JSON.parse(call.body ?? '{}');
  if (req.stream) {
    const chunk = (c: unknown) => `data: ${JSON.stringify(c)}\n\n`;
    const body =
      chunk({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: 'Hel' } }] }) +
      chunk({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'lo' }, finish_reason: 'stop' }] }) +
      'data: [DONE]\n\n';
    return response(200, body, { 'Content-Type': 'text/event-stream; charset=utf-8' });
  }
  return response(
    200,
    JSON.stringify({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }),
    { 'Content-Type': 'application/json', 'X-Switchyard-Cache': 'hit' },
  );
}

function k6Stubs(h: Harness): Record<string, Record<string, unknown>> {
  const request = (method: string, url: string, body?: unknown, params?: Call['params']) => {
    const call: Call = { method, url, body: typeof body === 'string' ? body : body === undefined || body === null ? undefined : JSON.stringify(body), params };
    h.calls.push(call);
    return h.respond(call);
  };
  const metric = (type: string) =>
    class {
      constructor(readonly name: string) {
        h.metrics.set(name, { type, values: [] });
      }
      add(v: unknown) {
        h.metrics.get(this.name)!.values.push(v);
      }
    };
  const http = {
    get: (url: string, params?: Call['params']) => request('GET', url, undefined, params),
    post: (url: string, body?: unknown, params?: Call['params']) => request('POST', url, body, params),
    request: (method: string, url: string, body?: unknown, params?: Call['params']) => request(method, url, body, params),
    setResponseCallback: () => undefined,
    expectedStatuses: (...s: unknown[]) => ({ expected: s }),
  };
  return {
    k6: {
      check: (value: unknown, checks: Record<string, (v: unknown) => boolean>) => {
        let all = true;
        for (const [name, fn] of Object.entries(checks)) {
          const ok = Boolean(fn(value));
          h.checks.push({ name, ok });
          all &&= ok;
        }
        return all;
      },
      sleep: () => undefined,
      group: (_n: string, fn: () => unknown) => fn(),
      fail: (msg: string) => {
        throw new Error(msg);
      },
    },
    'k6/http': { default: http, ...http },
    'k6/metrics': { Trend: metric('trend'), Rate: metric('rate'), Counter: metric('counter'), Gauge: metric('gauge') },
    'k6/execution': { default: { scenario: { iterationInTest: 0 }, vu: { idInTest: 1 } } },
    'k6/data': { SharedArray: class extends Array {} },
  };
}

function importsOf(ast: Node & { body: Node[] }): string[] {
  return ast.body.filter((n) => n.type === 'ImportDeclaration').map((n) => (n as unknown as { source: { value: string } }).source.value);
}

function parseModule(file: string) {
  const src = readFileSync(file, 'utf8');
  return { src, ast: parse(src, { ecmaVersion: 'latest', sourceType: 'module' }) as unknown as Node & { body: Node[] } };
}

/** Loads a k6 script and its relative imports as CommonJS-like functions in one vm context. */
function loadScript(file: string, env: Record<string, string>, h: Harness) {
  const context = vm.createContext({ __ENV: env, __ITER: 0, __VU: 1, console, JSON, Math, Number, String, Object, Array, Date });
  const stubs = k6Stubs(h);
  const cache = new Map<string, Record<string, unknown>>();
  const load = (path: string): Record<string, unknown> => {
    if (cache.has(path)) return cache.get(path)!;
    const { src, ast } = parseModule(path);
    const exports: Record<string, unknown> = {};
    cache.set(path, exports);
    const mods: Record<string, unknown>[] = [];
    let code = '';
    const tail: string[] = [];
    const text = (n: Node) => src.slice(n.start, n.end);
    for (const node of ast.body as (Node & Record<string, any>)[]) {
      if (node.type === 'ImportDeclaration') {
        const spec: string = node.source.value;
        const mod = spec.startsWith('.') ? load(resolve(dirname(path), spec)) : stubs[spec];
        if (!mod) throw new Error(`${path}: no stub for ${spec}`);
        mods.push(mod);
        const i = mods.length - 1;
        for (const s of node.specifiers) {
          if (s.type === 'ImportDefaultSpecifier') code += `const ${s.local.name} = __mods[${i}].default;\n`;
          else if (s.type === 'ImportNamespaceSpecifier') code += `const ${s.local.name} = __mods[${i}];\n`;
          else code += `const ${s.local.name} = __mods[${i}][${JSON.stringify(s.imported.name)}];\n`;
        }
      } else if (node.type === 'ExportNamedDeclaration') {
        if (node.declaration) {
          code += `${text(node.declaration)}\n`;
          const decl = node.declaration;
          const names: string[] = decl.type === 'VariableDeclaration' ? decl.declarations.map((d: any) => d.id.name) : [decl.id.name];
          for (const n of names) tail.push(`__exports[${JSON.stringify(n)}] = ${n};`);
        }
        for (const s of node.specifiers ?? []) tail.push(`__exports[${JSON.stringify(s.exported.name)}] = ${s.local.name};`);
      } else if (node.type === 'ExportDefaultDeclaration') {
        const d = node.declaration;
        if ((d.type === 'FunctionDeclaration' || d.type === 'ClassDeclaration') && d.id) {
          code += `${text(d)}\n`;
          tail.push(`__exports.default = ${d.id.name};`);
        } else {
          code += `__exports.default = (${text(d)});\n`;
        }
      } else {
        code += `${text(node)}\n`;
      }
    }
    const fn = vm.runInContext(`(function (__mods, __exports) { 'use strict';\n${code}\n${tail.join('\n')}\n})`, context, { filename: path });
    fn(mods, exports);
    return exports;
  };
  return { exports: load(file), context };
}

function harness(respond: Harness['respond'] = gatewayAnswer): Harness {
  return { calls: [], checks: [], metrics: new Map(), respond };
}

const ENV = { BASE_URL: 'https://llm.example.com/', API_KEY: 'sk-k6-test', MODEL: 'gpt-4o-mini' };

// ---- tests -------------------------------------------------------------------------

describe('k6 scenarios in loadtest/k6', () => {
  it('include smoke, load, stress, soak, streaming, cache-hit and rate-limit', () => {
    const present = readdirSync(DIR).filter((f) => f.endsWith('.js'));
    expect(present.sort()).toEqual([...SCRIPTS].sort());
  });

  it('parse as ES modules that import only k6 modules or relative files', () => {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const { ast } = parseModule(file);
      for (const spec of importsOf(ast)) {
        if (spec.startsWith('./') || spec.startsWith('../')) visit(resolve(dirname(file), spec));
        else expect(K6_MODULES.has(spec), `${file} imports ${spec}`).toBe(true);
      }
    };
    for (const s of SCRIPTS) visit(join(DIR, s));
    expect([...seen].some((f) => f.includes('/lib/'))).toBe(true);
  });

  it('reject a script that imports an npm package, so the import check is real', () => {
    const ast = parse("import axios from 'axios'; export default function () {}", { ecmaVersion: 'latest', sourceType: 'module' }) as unknown as Node & { body: Node[] };
    expect(importsOf(ast).every((s) => K6_MODULES.has(s) || s.startsWith('.'))).toBe(false);
  });

  for (const script of SCRIPTS) {
    describe(script, () => {
      const h = harness();
      const { exports } = loadScript(join(DIR, script), ENV, h);
      const options = exports.options as { scenarios: Record<string, Record<string, any>>; thresholds: Record<string, (string | { threshold: string })[]> };

      it('exports options with scenarios whose executors and fields k6 knows', () => {
        expect(options && typeof options === 'object').toBe(true);
        const scenarios = Object.entries(options.scenarios ?? {});
        expect(scenarios.length).toBeGreaterThan(0);
        for (const [name, sc] of scenarios) {
          const ex = EXECUTORS[sc.executor];
          expect(ex, `${name}: executor ${sc.executor}`).toBeDefined();
          for (const k of ex!.required) expect(sc[k], `${name}.${k}`).toBeDefined();
          for (const k of Object.keys(sc)) expect([...COMMON_SCENARIO_KEYS, ...ex!.required, ...ex!.optional], `${name}: unknown key ${k}`).toContain(k);
          for (const k of ['duration', 'maxDuration', 'timeUnit', 'startTime', 'gracefulStop']) if (sc[k] !== undefined) expect(sc[k], `${name}.${k}`).toMatch(DURATION);
          for (const k of ['vus', 'iterations', 'rate', 'preAllocatedVUs', 'maxVUs']) if (sc[k] !== undefined) expect(Number.isInteger(sc[k]) && sc[k] > 0, `${name}.${k}=${sc[k]}`).toBe(true);
          if (sc.maxVUs !== undefined) expect(sc.maxVUs).toBeGreaterThanOrEqual(sc.preAllocatedVUs);
          for (const st of sc.stages ?? []) {
            expect(st.duration).toMatch(DURATION);
            expect(Number.isInteger(st.target) && st.target >= 0, `${name} stage target ${st.target}`).toBe(true);
          }
          const fn = sc.exec ?? 'default';
          expect(typeof exports[fn], `${name} runs exported function ${fn}`).toBe('function');
        }
      });

      it('sets thresholds on known or declared metrics with valid expressions', () => {
        const entries = Object.entries(options.thresholds ?? {});
        expect(entries.length).toBeGreaterThan(0);
        for (const [metric, list] of entries) {
          const name = metric.replace(/\{.*\}$/, '');
          expect(BUILTIN_METRICS.has(name) || h.metrics.has(name), `threshold on unknown metric ${metric}`).toBe(true);
          expect(Array.isArray(list) && list.length > 0).toBe(true);
          for (const t of list) expect(typeof t === 'string' ? t : t.threshold, metric).toMatch(THRESHOLD);
        }
      });

      it('holds the alert bounds: under 1% failed requests and p99 latency within 10 s', () => {
        const exprs = (m: string) => (options.thresholds[m] ?? []).map((t) => (typeof t === 'string' ? t : t.threshold));
        expect(exprs('http_req_failed')).toContain('rate<0.01');
        const p99 = exprs('http_req_duration').map((t) => /^p\(99\)\s*<\s*(\d+)$/.exec(t)?.[1]).find(Boolean);
        expect(Number(p99)).toBeGreaterThan(0);
        expect(Number(p99)).toBeLessThanOrEqual(10000);
      });

      it('runs each scenario against BASE_URL with the API_KEY and MODEL from the environment, and its checks pass on good answers', () => {
        for (const sc of Object.values(options.scenarios)) {
          h.calls.length = 0;
          h.checks.length = 0;
          for (let i = 0; i < 3; i++) (exports[sc.exec ?? 'default'] as () => void)();
          const api = h.calls.filter((c) => c.url.includes('/v1/'));
          expect(api.length).toBeGreaterThan(0);
          for (const c of h.calls) expect(c.url.startsWith('https://llm.example.com/'), c.url).toBe(true);
          for (const c of h.calls) expect(c.url).not.toContain('.com//');
          for (const c of api) {
            expect(c.params?.headers?.Authorization).toBe('Bearer sk-k6-test');
            if (c.method === 'POST') expect(JSON.parse(c.body!).model).toBe('gpt-4o-mini');
          }
          expect(h.checks.filter((c) => !c.ok)).toEqual([]);
        }
      });
    });
  }

  it('default to a local gateway when no environment is given', () => {
    const h = harness();
    const { exports } = loadScript(join(DIR, 'smoke.js'), {}, h);
    (exports.default as () => void)();
    expect(h.calls[0]!.url).toBe('http://127.0.0.1:8080/health');
    expect(h.calls.some((c) => c.url === 'http://127.0.0.1:8080/v1/chat/completions')).toBe(true);
  });

  it('count time to first chunk and broken streams in streaming.js', () => {
    const h = harness();
    const { exports } = loadScript(join(DIR, 'streaming.js'), ENV, h);
    (exports.default as () => void)();
    expect(h.metrics.get('time_to_first_chunk')!.values).toEqual([12]);
    expect(h.metrics.get('broken_streams')!.values).toEqual([]);
    h.respond = () => response(200, 'data: {"choices":[{"delta":{"content":"x"}}]}\n\n', { 'Content-Type': 'text/event-stream' });
    (exports.default as () => void)();
    expect(h.metrics.get('broken_streams')!.values).toEqual([1]);
  });

  it('treat an OpenAI-shaped 429 as the expected answer in rate-limit.js and flag one without headers', () => {
    const body = JSON.stringify({ error: { message: 'Rate limit reached', type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' } });
    const h = harness(() => response(429, body, { 'X-Ratelimit-Limit-Requests': '60', 'Retry-After': '1' }));
    const { exports } = loadScript(join(DIR, 'rate-limit.js'), ENV, h);
    (exports.default as () => void)();
    expect(h.metrics.get('rate_limited')!.values).toEqual([true]);
    expect(h.checks.filter((c) => !c.ok)).toEqual([]);
    h.respond = () => response(429, body, {});
    (exports.default as () => void)();
    expect(h.checks.filter((c) => !c.ok).map((c) => c.name)).toContain('429: retry-after header');
  });

  it('read cache hits from the response header in cache-hit.js', () => {
    const h = harness();
    const { exports } = loadScript(join(DIR, 'cache-hit.js'), ENV, h);
    (exports.default as () => void)();
    h.respond = (c) => ({ ...gatewayAnswer(c), headers: { 'X-Switchyard-Cache': 'miss' } });
    (exports.default as () => void)();
    expect(h.metrics.get('cache_hits')!.values).toEqual([true, false]);
  });

  it('are documented in loadtest/k6/README.md', () => {
    const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
    for (const s of SCRIPTS) expect(readme, s).toContain(s);
    for (const v of ['BASE_URL', 'API_KEY', 'MODEL']) expect(readme).toContain(v);
  });
});
