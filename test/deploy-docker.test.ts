import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../gateway/config/load.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');

interface Instruction {
  cmd: string;
  args: string;
}
interface Stage {
  name: string;
  image: string;
  instructions: Instruction[];
}

/** A Dockerfile reader good enough for structural checks: continuations, ARG defaults, stages. */
function readDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, cmd = '', rest = ''] = /^(\w+)\s+([\s\S]*)$/.exec(line) ?? [];
    const upper = cmd.toUpperCase();
    if (upper === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=');
      args[k!.trim()] = v.trim();
      continue;
    }
    if (upper === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const image = (m?.[1] ?? '').replace(/\$\{(\w+)\}|\$(\w+)/g, (_s, a: string, b: string) => args[a ?? b] ?? '');
      stages.push({ name: m?.[2] ?? String(stages.length), image, instructions: [] });
      continue;
    }
    stages.at(-1)?.instructions.push({ cmd: upper, args: rest });
  }
  return stages;
}

function dockerignore(): RegExp[] {
  return readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'))
    .map((p) => {
      const re = p
        .replace(/^\/+|\/+$/g, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(?:.*/)?')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]');
      return new RegExp(`^${re}(?:/.*)?$`);
    });
}

/** COPY sources of the build context (not --from), without flags and the destination. */
function copySources(ins: Instruction): string[] {
  if (ins.cmd !== 'COPY' || /--from=/.test(ins.args)) return [];
  const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
  return parts.slice(0, -1);
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const stages = readDockerfile(dockerfile);
const stage = (name: string) => {
  const s = stages.find((s) => s.name === name);
  if (!s) throw new Error(`Dockerfile has no stage ${name}`);
  return s;
};
const last = (s: Stage, cmd: string) => s.instructions.filter((i) => i.cmd === cmd).at(-1);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

describe('Dockerfile', () => {
  it('builds with dev dependencies and tsc, then runs on production dependencies only', () => {
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['build', 'deps', 'runtime', 'local-backend']));
    const build = stage('build');
    expect(build.image).toBe('node:20-slim');
    const runs = build.instructions.filter((i) => i.cmd === 'RUN').map((i) => i.args);
    expect(runs.some((r) => /npm ci(?![^&]*--omit=dev)/.test(r))).toBe(true);
    expect(runs.some((r) => /npm run build\b/.test(r))).toBe(true);
    expect(pkg.scripts.build).toMatch(/tsc -p tsconfig\.build\.json/);
    const deps = stage('deps');
    expect(deps.instructions.some((i) => i.cmd === 'RUN' && /npm ci .*--omit=dev/.test(i.args))).toBe(true);
    const runtime = stage('runtime');
    expect(runtime.image).toBe('node:20-slim');
    const copiesModules = runtime.instructions.filter((i) => i.cmd === 'COPY' && /node_modules/.test(i.args));
    expect(copiesModules.length).toBeGreaterThan(0);
    for (const c of copiesModules) expect(c.args, 'runtime node_modules must come from the production deps').toMatch(/--from=(gateway-)?deps\b/);
    // The gateway image drops the GPU builds of node-llama-cpp it cannot load; the GPU image keeps them.
    const gatewayDeps = stage('gateway-deps');
    expect(gatewayDeps.image).toBe('deps');
    expect(gatewayDeps.instructions.some((i) => i.cmd === 'RUN' && /rm -rf .*linux-x64-cuda\b.*linux-x64-cuda-ext.*linux-x64-vulkan/.test(i.args))).toBe(true);
    const local = stage('local-backend');
    expect(local.instructions.some((i) => i.cmd === 'COPY' && /--from=deps\b.*node_modules/.test(i.args))).toBe(true);
  });

  it('makes the gateway the default target: last stage, non-root, port 8080, /health check, dist/gateway/main.js', () => {
    expect(stages.at(-1)!.name).toBe('runtime');
    const runtime = stage('runtime');
    const user = last(runtime, 'USER')?.args ?? 'root';
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(user, 'numeric, so runAsNonRoot can verify it').toMatch(/^\d+(:\d+)?$/);
    expect(last(runtime, 'EXPOSE')?.args).toBe('8080');
    expect(last(runtime, 'HEALTHCHECK')?.args).toMatch(/CMD node -e .*fetch\(.*\/health/);
    expect(JSON.parse(last(runtime, 'CMD')!.args)).toEqual(['node', 'dist/gateway/main.js']);
    const buildTs = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8'));
    const baseTs = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8'));
    expect(buildTs.include).toContain('gateway');
    expect(baseTs.compilerOptions.outDir).toBe('dist');
    expect(baseTs.compilerOptions.rootDir).toBe('.');
    expect(existsSync(join(ROOT, 'gateway/main.ts'))).toBe(true);
  });

  it('builds a non-root local-backend target on a CUDA runtime base that serves on 8081', () => {
    const lb = stage('local-backend');
    expect(lb.image).toMatch(/^nvidia\/cuda:12\.[\d.]+-runtime-/);
    expect(lb.instructions.some((i) => i.cmd === 'COPY' && /--from=\S+ \/usr\/local\/bin\/node /.test(i.args))).toBe(true);
    const user = last(lb, 'USER')?.args ?? 'root';
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(last(lb, 'HEALTHCHECK')?.args).toMatch(/\/health/);
    expect(last(lb, 'EXPOSE')?.args).toBe('8081');
    expect(JSON.parse(last(lb, 'ENTRYPOINT')!.args)).toEqual(['switchyard-local-backend']);
    expect(JSON.parse(last(lb, 'CMD')!.args).join(' ')).toMatch(/--model \/models\/\S+\.gguf .*--port 8081/);
    // The wrapper runs the compiled form of the CLI that `npm run local-backend` runs.
    const cli = /node --import tsx (\S+)\.ts/.exec(pkg.scripts['local-backend'])?.[1];
    expect(cli).toBeDefined();
    expect(dockerfile).toContain(`exec node /app/dist/${cli}.js`);
    expect(pkg.bin['switchyard-local-backend']).toBeDefined();
  });

  it('copies only sources that exist and that .dockerignore keeps in the context', () => {
    const ignored = dockerignore();
    const sources = stages.flatMap((s) => s.instructions.flatMap(copySources));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      expect(existsSync(join(ROOT, src)), `COPY source ${src} exists`).toBe(true);
      expect(ignored.filter((re) => re.test(src.replace(/^\.\//, ''))).map(String), `COPY source ${src} is excluded by .dockerignore`).toEqual([]);
    }
    for (const s of stages)
      for (const i of s.instructions.filter((i) => i.cmd === 'COPY' && /--from=/.test(i.args))) {
        const from = /--from=(\S+)/.exec(i.args)![1]!;
        const idx = stages.findIndex((x) => x.name === from);
        expect(idx, `COPY --from=${from} in ${s.name} names an earlier stage`).toBeGreaterThanOrEqual(0);
        expect(idx).toBeLessThan(stages.indexOf(s));
      }
  });

  it('keeps node_modules, git history, tests and local models out of the build context', () => {
    const ignored = dockerignore();
    for (const path of ['node_modules', '.git', 'dist', 'test', 'model.gguf', '.env']) expect(ignored.some((re) => re.test(path)), path).toBe(true);
  });

  it.skipIf(!existsSync(join(ROOT, 'local-backend/cli.ts')))('points the local-backend wrapper at a CLI that exists', () => {
    expect(existsSync(join(ROOT, 'local-backend/cli.ts'))).toBe(true);
  });
});

const compose = parse(readFileSync(join(DEPLOY, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Record<string, unknown> & { volumes?: string[]; environment?: Record<string, string>; build?: { context: string; dockerfile: string; target: string }; healthcheck?: { test: string[] }; command?: string[]; depends_on?: Record<string, { condition: string }> }>;
  volumes?: Record<string, unknown>;
};

describe('docker-compose.yml', () => {
  it('runs gateway, redis, local-backend, prometheus and grafana, each with a healthcheck', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['gateway', 'grafana', 'local-backend', 'prometheus', 'redis']);
    for (const [name, svc] of Object.entries(compose.services)) {
      expect(Array.isArray(svc.healthcheck?.test), `${name} healthcheck`).toBe(true);
      expect(svc.healthcheck!.test[0]).toMatch(/^CMD(-SHELL)?$/);
    }
    expect(compose.services.redis!.healthcheck!.test.join(' ')).toMatch(/redis-cli ping/);
    expect(compose.services.gateway!.depends_on?.redis?.condition).toBe('service_healthy');
    expect(compose.services.gateway!.healthcheck!.test.join(' ')).toMatch(/127\.0\.0\.1:8080\/(ready|health)/);
  });

  it('builds images from the top-level Dockerfile targets', () => {
    for (const [name, target] of [['gateway', 'runtime'], ['local-backend', 'local-backend']] as const) {
      const build = compose.services[name]!.build!;
      expect(resolve(DEPLOY, build.context, build.dockerfile)).toBe(join(ROOT, 'Dockerfile'));
      expect(build.target).toBe(target);
      expect(stages.some((s) => s.name === target)).toBe(true);
    }
  });

  it('mounts only files and directories that exist, and named volumes that are declared', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const [src] = v.split(':');
        if (src!.startsWith('.') || src!.startsWith('/')) expect(existsSync(resolve(DEPLOY, src!)), `${name}: ${src}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${src}`).toHaveProperty([src!]);
      }
    }
  });

  it('gives the gateway a config the gateway accepts, pointing at the compose redis and local backend', () => {
    const gw = compose.services.gateway!;
    const cfgPath = gw.environment!.SWITCHYARD_CONFIG!;
    const mount = gw.volumes!.map((v) => v.split(':')).find(([, dest]) => dest === cfgPath);
    expect(mount, `SWITCHYARD_CONFIG ${cfgPath} is mounted`).toBeDefined();
    const env = Object.fromEntries(Object.entries(gw.environment!).map(([k, v]) => [k, String(v).replace(/^\$\{\w+:-(.*)\}$/, '$1')]));
    const { config } = loadConfigFile(resolve(DEPLOY, mount![0]!), env);
    expect(config.server.port).toBe(8080);
    expect(config.store.kind).toBe('redis');
    expect(config.store.redis_url).toBe('redis://redis:6379');
    const local = Object.values(config.backends).find((b) => b.base_url?.includes('local-backend'));
    expect(local?.base_url).toBe('http://local-backend:8081/v1');
    expect(compose.services['local-backend']!.command!.join(' ')).toMatch(/--port 8081/);
  });

  it('has Prometheus scrape the compose services with the rule file it mounts', () => {
    const prom = compose.services.prometheus!;
    const mounts = Object.fromEntries(prom.volumes!.map((v) => v.split(':')).map(([src, dest]) => [dest, src]));
    const cfgFile = (prom.command as string[]).find((c) => c.startsWith('--config.file='))!.split('=')[1]!;
    expect(mounts[cfgFile]).toBeDefined();
    const cfg = parse(readFileSync(resolve(DEPLOY, mounts[cfgFile]!), 'utf8'));
    for (const rule of cfg.rule_files as string[]) expect(mounts[resolve('/etc/prometheus', rule)], `rule file ${rule} mounted`).toBeDefined();
    const targets: string[] = cfg.scrape_configs.flatMap((s: { static_configs: { targets: string[] }[] }) => s.static_configs.flatMap((c) => c.targets));
    expect(targets).toContain('gateway:8080');
    expect(targets).toContain('local-backend:8081');
    for (const t of targets.filter((t) => !t.startsWith('localhost'))) expect(Object.keys(compose.services)).toContain(t.split(':')[0]);
    expect(cfg.scrape_configs.map((s: { job_name: string }) => s.job_name)).toContain('switchyard');
  });

  it('provisions Grafana with the Prometheus datasource and the dashboards directory', () => {
    const g = compose.services.grafana!;
    const mounts = Object.fromEntries(g.volumes!.map((v) => v.split(':')).map(([src, dest]) => [dest, src]));
    expect(mounts['/etc/grafana/provisioning']).toBe('./grafana/provisioning');
    expect(statSync(resolve(DEPLOY, 'grafana/dashboards')).isDirectory()).toBe(true);
    expect(g.environment!.PROMETHEUS_URL).toBe('http://prometheus:9090');
    const home = g.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    const dashMount = Object.entries(mounts).find(([dest]) => home.startsWith(`${dest}/`));
    expect(dashMount).toBeDefined();
    expect(existsSync(resolve(DEPLOY, dashMount![1]!, home.slice(dashMount![0].length + 1)))).toBe(true);
  });
});
