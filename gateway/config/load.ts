/**
 * YAML file → interpolated → validated → cross-checked → deeply frozen Config.
 * Called by main.ts at start-up and on reload, and by `switchyard check`.
 * Nothing downstream reads raw YAML or the environment.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigSchema, type Config } from './schema.js';
import { budgetPricingProblems } from '../stores/budgets/request-scopes.js';
import { assertTimezone } from '../stores/budgets/periods.js';

export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly file?: string,
  ) {
    super(`invalid configuration${file ? ` in ${file}` : ''}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  config: Config;
  /** backend name → environment variable its api_key needs but which is unset. */
  missingSecrets: Readonly<Record<string, string>>;
  file?: string;
}

type Env = Record<string, string | undefined>;

const VAR_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Secret fields: they must come from the environment, never a literal in the file. */
const SECRET_PATHS = [/^backends\.[^.]+\.api_key$/, /^keys\.\d+\.key$/, /^admin\.key$/];
/** A backend's missing key is not fatal: its requests answer 503 naming the variable. */
const SOFT_MISSING = /^backends\.([^.]+)\.api_key$/;

interface Walk {
  missing: { path: string; variable: string }[];
  literalSecrets: string[];
}

function interpolate(value: unknown, path: string[], env: Env, walk: Walk): unknown {
  if (typeof value === 'string') {
    const p = path.join('.');
    const isSecret = SECRET_PATHS.some((re) => re.test(p));
    let sawVar = false;
    let missing = false;
    const out = value.replace(VAR_RE, (_m, name: string, def: string | undefined) => {
      sawVar = true;
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      missing = true;
      walk.missing.push({ path: p, variable: name });
      return '';
    });
    if (isSecret && !sawVar) walk.literalSecrets.push(p);
    return missing ? undefined : out;
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, String(i)], env, walk));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = interpolate(v, [...path, k], env, walk);
      if (r !== undefined) out[k] = r;
    }
    return out;
  }
  return value;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

function crossCheck(c: Config): string[] {
  const problems: string[] = [];
  for (const [alias, m] of Object.entries(c.models)) {
    if (!c.backends[m.backend]) {
      problems.push(`models.${alias}.backend: unknown backend "${m.backend}" (defined: ${Object.keys(c.backends).join(', ') || 'none'})`);
    }
  }
  for (const [name, b] of Object.entries(c.backends)) {
    if (b.type === 'openai-compatible' && !b.base_url) problems.push(`backends.${name}.base_url: required for type openai-compatible`);
    if (b.base_url) {
      try {
        new URL(b.base_url);
      } catch {
        problems.push(`backends.${name}.base_url: expected an absolute URL, got "${b.base_url}"`);
      }
    }
  }
  const aliases = new Set(Object.keys(c.models));
  const routeNames = new Set<string>();
  c.routes.forEach((r, i) => {
    // Route names label metrics and x-switchyard-route: two of a name would be one series.
    if (routeNames.has(r.name)) problems.push(`routes.${i}.name: duplicate route name "${r.name}"`);
    routeNames.add(r.name);
    const range = r.match.prompt_tokens;
    if (range?.min !== undefined && range.max !== undefined && range.min > range.max) {
      problems.push(`routes.${i}.match.prompt_tokens: min ${range.min} is above max ${range.max}, so the route can never match`);
    }
    if (r.complexity && r.targets?.length) {
      problems.push(`routes.${i}: has both targets and complexity; complexity picks the target, so the targets would be ignored (keep one)`);
    }
    r.targets?.forEach((t, j) => {
      if (!aliases.has(t.model)) problems.push(`routes.${i}.targets.${j}.model: unknown model alias "${t.model}"`);
    });
    r.fallbacks.forEach((f, j) => {
      if (!aliases.has(f)) problems.push(`routes.${i}.fallbacks.${j}: unknown model alias "${f}"`);
    });
    if (r.complexity) {
      for (const [cls, alias] of Object.entries(r.complexity)) {
        if (alias !== undefined && !aliases.has(alias)) problems.push(`routes.${i}.complexity.${cls}: unknown model alias "${alias}"`);
      }
    }
  });
  const ids = new Set<string>();
  c.keys.forEach((k, i) => {
    if (ids.has(k.id)) problems.push(`keys.${i}.id: duplicate key id "${k.id}"`);
    ids.add(k.id);
    if (k.team && !c.teams[k.team]) problems.push(`keys.${i}.team: unknown team "${k.team}"`);
  });
  if (c.store.kind === 'redis' && !c.store.redis_url) problems.push('store.redis_url: required when store.kind is redis');
  try {
    assertTimezone(c.limits.timezone);
  } catch {
    problems.push(`limits.timezone: unknown time zone "${c.limits.timezone}" (expected an IANA name such as UTC or Europe/Berlin)`);
  }
  // Budgets in USD need a price for every model a budgeted key may reach (never a silent default price).
  problems.push(...budgetPricingProblems(c));
  return problems;
}

/** Validates a plain object (already parsed YAML). Throws ConfigError naming every bad field. */
export function buildConfig(raw: unknown, env: Env = process.env, file?: string): LoadedConfig {
  const walk: Walk = { missing: [], literalSecrets: [] };
  const interpolated = interpolate(raw ?? {}, [], env, walk);
  const problems: string[] = [];
  const missingSecrets: Record<string, string> = {};
  for (const m of walk.missing) {
    const soft = SOFT_MISSING.exec(m.path);
    if (soft) missingSecrets[soft[1]] = m.variable;
    else problems.push(`${m.path}: environment variable ${m.variable} is not set`);
  }
  for (const p of walk.literalSecrets) problems.push(`${p}: secrets must come from the environment, write "\${VAR}"`);

  const parsed = ConfigSchema.safeParse(interpolated);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.join('.') || '(root)';
      // A soft-missing secret shows up as a missing field of an otherwise valid backend: not an error.
      problems.push(`${path}: ${issue.message}`);
    }
    throw new ConfigError(problems, file);
  }
  if (env.PORT) {
    const port = Number(env.PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`PORT: expected an integer 0-65535, got "${env.PORT}"`);
    else parsed.data.server.port = port;
  }
  problems.push(...crossCheck(parsed.data));
  if (problems.length) throw new ConfigError(problems, file);
  return { config: deepFreeze(parsed.data), missingSecrets: Object.freeze(missingSecrets), file };
}

export function parseConfigText(text: string, env: Env = process.env, file?: string): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => `YAML syntax: ${e.message.split('\n')[0]}`), file);
  }
  const raw: unknown = doc.toJS();
  // An empty file (or one caught half-written) is not a config of all defaults.
  if (raw === null || raw === undefined) throw new ConfigError(['the config file is empty'], file);
  return buildConfig(raw, env, file);
}

export function loadConfigFile(file: string, env: Env = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read config file: ${(err as Error).message}`], file);
  }
  return parseConfigText(text, env, file);
}
