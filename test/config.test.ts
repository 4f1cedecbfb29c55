/**
 * Config as users meet it: YAML files, `${VAR}` interpolation, validation errors
 * that name the field, exit code 2, and `switchyard check`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, parseConfigText, loadConfigFile, ConfigError } from '../gateway/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'switchyard-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['bin/switchyard.js', ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    timeout: 20000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const GOOD = `
backends:
  mock: { type: openai-compatible, base_url: "http://127.0.0.1:9000/v1", api_key: "\${MOCK_KEY:-none}" }
models:
  gpt-4o-mini: { backend: mock, model: gpt-4o-mini }
`;

describe('configuration', () => {
  it('fills every default and interpolates ${VAR} and ${VAR:-default}', () => {
    const { config } = parseConfigText(GOOD + 'keys:\n  - { id: a, key: "${A_KEY}" }\n', { A_KEY: 'sk-from-env' });
    expect(config.server).toEqual({ host: '0.0.0.0', port: 8080, max_body_bytes: 10485760, shutdown_grace_ms: 30000, implementation: 'auto' });
    expect(config.backends.mock.api_key).toBe('none');
    expect(config.backends.mock.max_connections).toBe(128);
    expect(config.keys[0]).toMatchObject({ id: 'a', key: 'sk-from-env', models: ['*'] });
    expect(Object.isFrozen(config.backends.mock)).toBe(true);
  });

  it('lets PORT override server.port', () => {
    expect(parseConfigText(GOOD, { PORT: '9123' }).config.server.port).toBe(9123);
  });

  it('keeps a backend whose key variable is unset, to answer 503 naming it', () => {
    const loaded = parseConfigText(GOOD.replace('${MOCK_KEY:-none}', '${UPSTREAM_KEY}'), {});
    expect(loaded.missingSecrets).toEqual({ mock: 'UPSTREAM_KEY' });
  });

  it('refuses secrets written literally in the file', () => {
    expect(() => parseConfigText(GOOD.replace('${MOCK_KEY:-none}', 'sk-literal'), {})).toThrow(/backends\.mock\.api_key: secrets must come from the environment/);
  });

  it('names the path of every bad field', () => {
    const text = `
server: { port: "eighty" }
backends:
  mock: { type: carrier-pigeon }
models:
  m: { backend: nowhere, model: x }
`;
    let err: unknown;
    try {
      parseConfigText(text, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain('server.port');
    expect(msg).toContain('backends.mock.type');
  });

  it('reports an unknown backend referenced by a model', () => {
    expect(() => parseConfigText(GOOD.replace('backend: mock', 'backend: ghost'), {})).toThrow(/models\.gpt-4o-mini\.backend: unknown backend "ghost"/);
  });

  it('reports routes that could never work as written: duplicate names, an empty token range, targets next to complexity', () => {
    const cfg = (routes: unknown[]) => ({ backends: { mock: { type: 'openai-compatible', base_url: 'http://127.0.0.1:1/v1' } }, models: { a: { backend: 'mock', model: 'a' }, b: { backend: 'mock', model: 'b' } }, routes });
    expect(() => buildConfig(cfg([{ name: 'r', match: { model: 'a' } }, { name: 'r', match: { model: 'b' } }]), {})).toThrow(/routes\.1\.name: duplicate route name "r"/);
    expect(() => buildConfig(cfg([{ name: 'r', match: { prompt_tokens: { min: 500, max: 100 } } }]), {})).toThrow(/routes\.0\.match\.prompt_tokens: min 500 is above max 100/);
    expect(() => buildConfig(cfg([{ name: 'r', match: { model: 'auto' }, targets: [{ model: 'a' }], complexity: { simple: 'a', medium: 'a', complex: 'b', reasoning: 'b' } }]), {})).toThrow(/routes\.0: has both targets and complexity/);
  });

  it('reports YAML syntax errors', () => {
    expect(() => parseConfigText('server: [unclosed', {})).toThrow(/YAML syntax/);
  });

  it('loads every shipped config file, with a value for each variable it names', () => {
    const files = readdirSync('config').filter((f) => f.endsWith('.yaml'));
    expect(files).toEqual(expect.arrayContaining(['gateway.yaml', 'production.example.yaml']));
    for (const f of files) {
      const text = readFileSync(join('config', f), 'utf8');
      const env = Object.fromEntries([...text.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => [m[1], m[1] === 'REDIS_URL' ? 'redis://127.0.0.1:6379' : `value-of-${m[1]}`]));
      expect(() => loadConfigFile(join('config', f), env), f).not.toThrow();
    }
  });
});

describe('the switchyard command', () => {
  it('check accepts a valid file and exits 0', () => {
    const r = cli(['check', write('good.yaml', GOOD)]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('ok');
  });

  it('exits 2 naming the field on bad YAML, an unknown backend and a missing variable', () => {
    const bad = cli(['check', write('bad.yaml', 'models: {')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('YAML syntax');

    const unknown = cli(['--config', write('unknown.yaml', GOOD.replace('backend: mock', 'backend: ghost'))]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('models.gpt-4o-mini.backend');

    const missing = cli(['--config', write('missing.yaml', GOOD + 'keys:\n  - { id: a, key: "${TEAM_A_KEY}" }\n')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('keys.0.key: environment variable TEAM_A_KEY is not set');

    const viaEnv = cli([], { SWITCHYARD_CONFIG: join(dir, 'unknown.yaml') });
    expect(viaEnv.code).toBe(2);
    expect(viaEnv.err).toContain('models.gpt-4o-mini.backend');
  });
});
