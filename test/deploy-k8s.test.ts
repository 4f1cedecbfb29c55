import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../gateway/config/load.js';
import { findBinary, gatewaySeriesNames, metricNamesInExpr } from './support/prometheus.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const K8S = join(ROOT, 'deploy/k8s');
const KUSTOMIZATIONS = ['base', 'overlays/dev', 'overlays/prod', 'monitoring'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
interface Kustomization {
  resources?: string[];
  patches?: { path?: string; patch?: string; target?: { kind: string; name: string } }[];
  configMapGenerator?: { name: string; files?: string[] }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  namespace?: string;
}

const readYamlDocs = (file: string): Obj[] =>
  parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);

function kustomization(dir: string): Kustomization {
  return parse(readFileSync(join(K8S, dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
}

/** Every manifest a kustomization pulls in, recursively, without applying patches. */
function manifests(dir: string): Obj[] {
  const k = kustomization(dir);
  return (k.resources ?? []).flatMap((r) => {
    const path = join(K8S, dir, r);
    return statSync(path).isDirectory() ? manifests(join(dir, r)) : readYamlDocs(path);
  });
}

const CRDS = new Set(['monitoring.coreos.com/v1/ServiceMonitor', 'external-secrets.io/v1/ExternalSecret']);

/** Validates against the Kubernetes OpenAPI schemas (kubernetes-models); CRDs structurally. */
async function validate(obj: Obj): Promise<void> {
  const id = `${obj.apiVersion}/${obj.kind}`;
  if (CRDS.has(id)) return validateCrd(obj);
  const mod = (await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`)) as Record<string, new (o: Obj) => { validate(): void }>;
  const Model = mod[obj.kind as string];
  if (!Model) throw new Error(`kubernetes-models has no ${id}`);
  new Model(obj).validate();
}

function validateCrd(obj: Obj): void {
  const must = (cond: unknown, what: string) => {
    if (!cond) throw new Error(`${obj.kind} ${obj.metadata?.name}: ${what}`);
  };
  must(typeof obj.metadata?.name === 'string', 'metadata.name');
  if (obj.kind === 'ServiceMonitor') {
    must(obj.spec?.selector?.matchLabels && Object.keys(obj.spec.selector.matchLabels).length > 0, 'spec.selector.matchLabels');
    must(Array.isArray(obj.spec?.endpoints) && obj.spec.endpoints.length > 0, 'spec.endpoints');
    for (const e of obj.spec.endpoints) {
      must(typeof e.port === 'string', 'endpoint.port names a Service port');
      must(typeof e.path === 'string' && e.path.startsWith('/'), 'endpoint.path');
      must(/^\d+[smh]$/.test(e.interval), 'endpoint.interval');
    }
  }
  if (obj.kind === 'ExternalSecret') {
    must(['SecretStore', 'ClusterSecretStore'].includes(obj.spec?.secretStoreRef?.kind), 'spec.secretStoreRef.kind');
    must(typeof obj.spec?.secretStoreRef?.name === 'string', 'spec.secretStoreRef.name');
    must(typeof obj.spec?.target?.name === 'string', 'spec.target.name');
    must(/^\d+[smh]$/.test(obj.spec?.refreshInterval), 'spec.refreshInterval');
    must(Array.isArray(obj.spec?.data) && obj.spec.data.length > 0, 'spec.data');
    for (const d of obj.spec.data) must(d.secretKey && d.remoteRef?.key, 'data[].secretKey and remoteRef.key');
  }
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  Boolean(selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v));

const base = manifests('base');
const find = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata?.name === name);
const workloads = (objs: Obj[]) => objs.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind));
const gateway = find(base, 'Deployment', 'switchyard')!;
const gatewayContainer = gateway.spec.template.spec.containers.find((c: Obj) => c.name === 'gateway');
const deployConfigFile = join(K8S, 'base/gateway.yaml');

/** Env the Secret provides, so the config loads as it would in the pod. */
const SECRET_ENV = { SWITCHYARD_API_KEY: 'sk-test', SWITCHYARD_ADMIN_KEY: 'sk-admin', OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '' };

/** The shutdown grace the gateway uses: from config/gateway.yaml when present, else the schema default. */
function shutdownGraceMs(): number {
  const file = join(ROOT, 'config/gateway.yaml');
  if (existsSync(file)) return loadConfigFile(file, {}).config.server.shutdown_grace_ms;
  return 30000;
}

describe('Kubernetes kustomizations', () => {
  it('reference only resources, patches and generator files that exist', () => {
    for (const dir of KUSTOMIZATIONS) {
      const k = kustomization(dir);
      expect(k.resources?.length, dir).toBeGreaterThan(0);
      for (const r of k.resources ?? []) {
        const path = join(K8S, dir, r);
        expect(existsSync(path), `${dir}: resource ${r}`).toBe(true);
        if (statSync(path).isDirectory()) expect(existsSync(join(path, 'kustomization.yaml')), `${dir}: ${r} is a kustomization`).toBe(true);
      }
      for (const p of k.patches ?? []) {
        if (p.path) expect(existsSync(join(K8S, dir, p.path)), `${dir}: patch ${p.path}`).toBe(true);
        if (p.target) expect(find(manifests(dir), p.target.kind, p.target.name), `${dir}: patch target ${p.target.kind}/${p.target.name}`).toBeDefined();
      }
      for (const g of k.configMapGenerator ?? []) for (const f of g.files ?? []) expect(existsSync(join(K8S, dir, f)), `${dir}: ${f}`).toBe(true);
    }
  });

  it('patch only objects that the overlay actually contains', () => {
    for (const dir of ['overlays/dev', 'overlays/prod']) {
      const objs = manifests(dir);
      for (const p of kustomization(dir).patches ?? []) {
        if (!p.path) continue;
        for (const doc of readYamlDocs(join(K8S, dir, p.path))) expect(find(objs, doc.kind, doc.metadata.name), `${dir}: ${p.path}`).toBeDefined();
      }
    }
  });

  it('validate every manifest against the Kubernetes schemas (CRDs structurally)', async () => {
    const all = KUSTOMIZATIONS.flatMap((d) => manifests(d).map((o) => ({ dir: d, o })));
    expect(all.length).toBeGreaterThan(15);
    for (const { dir, o } of all) await expect(validate(o), `${dir}: ${o.kind}/${o.metadata?.name}`).resolves.toBeUndefined();
  });

  it('reject an invalid manifest, so the schema check is real', async () => {
    const broken = structuredClone(gateway);
    broken.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    await expect(validate(broken)).rejects.toThrow(/containerPort/);
  });
});

describe('the gateway Deployment', () => {
  it('runs 3 replicas, surging one pod at a time and never going below the desired count', () => {
    expect(gateway.spec.replicas).toBe(3);
    expect(gateway.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(gateway.spec.selector.matchLabels).toEqual(
      Object.fromEntries(Object.keys(gateway.spec.selector.matchLabels).map((k) => [k, gateway.spec.template.metadata.labels[k]])),
    );
  });

  it('runs as a non-root user without privilege escalation, with requests and limits', () => {
    const pod = gateway.spec.template.spec;
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(gatewayContainer.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(gatewayContainer.securityContext.capabilities.drop).toContain('ALL');
    for (const kind of ['requests', 'limits']) for (const r of ['cpu', 'memory']) expect(gatewayContainer.resources[kind][r], `${kind}.${r}`).toBeDefined();
  });

  it('listens on the configured port and probes /health for liveness and /ready for readiness', () => {
    const { config } = loadConfigFile(deployConfigFile, SECRET_ENV);
    const port = gatewayContainer.ports.find((p: Obj) => p.name === 'http');
    expect(port.containerPort).toBe(config.server.port);
    expect(port.containerPort).toBe(8080);
    const probePort = (probe: Obj) => (typeof probe.httpGet.port === 'string' ? gatewayContainer.ports.find((p: Obj) => p.name === probe.httpGet.port)?.containerPort : probe.httpGet.port);
    expect(gatewayContainer.livenessProbe.httpGet.path).toBe('/health');
    expect(gatewayContainer.readinessProbe.httpGet.path).toBe('/ready');
    for (const probe of [gatewayContainer.livenessProbe, gatewayContainer.readinessProbe, gatewayContainer.startupProbe]) expect(probePort(probe)).toBe(8080);
  });

  it('gives draining requests more time than the preStop sleep plus shutdown_grace_ms', () => {
    const sleep = gatewayContainer.lifecycle.preStop.exec?.command ?? [];
    expect(sleep[0]).toBe('sleep');
    const preStop = Number(sleep[1]);
    expect(preStop).toBeGreaterThanOrEqual(5);
    const grace = gateway.spec.template.spec.terminationGracePeriodSeconds;
    expect(grace).toBeGreaterThan(shutdownGraceMs() / 1000 + preStop);
    const { config } = loadConfigFile(deployConfigFile, SECRET_ENV);
    expect(grace).toBeGreaterThan(config.server.shutdown_grace_ms / 1000 + preStop);
  });

  it('reads its config from the generated ConfigMap through SWITCHYARD_CONFIG and secrets from switchyard-secrets', () => {
    const env = Object.fromEntries(gatewayContainer.env.map((e: Obj) => [e.name, e.value]));
    const volumes = gateway.spec.template.spec.volumes;
    const configVolume = volumes.find((v: Obj) => v.configMap);
    expect(kustomization('base').configMapGenerator?.map((g) => g.name)).toContain(configVolume.configMap.name);
    const mount = gatewayContainer.volumeMounts.find((m: Obj) => m.name === configVolume.name);
    const file = kustomization('base').configMapGenerator!.find((g) => g.name === configVolume.configMap.name)!.files![0]!;
    expect(env.SWITCHYARD_CONFIG).toBe(`${mount.mountPath}/${file}`);
    expect(gatewayContainer.envFrom.map((e: Obj) => e.secretRef?.name)).toContain('switchyard-secrets');
  });
});

describe('Kubernetes cross-references', () => {
  it('have every Service, PDB, NetworkPolicy and ServiceMonitor select pods or Services that exist', () => {
    const all = [...manifests('overlays/dev'), ...manifests('overlays/prod').filter((o) => o.kind === 'ExternalSecret')];
    const pods = workloads(all).map((w) => ({ name: w.metadata.name, labels: w.spec.template.metadata.labels, containers: w.spec.template.spec.containers }));
    for (const svc of all.filter((o) => o.kind === 'Service')) {
      const target = pods.find((p) => matches(svc.spec.selector, p.labels));
      expect(target, `Service ${svc.metadata.name} selects a workload`).toBeDefined();
      for (const port of svc.spec.ports) {
        if (typeof port.targetPort !== 'string') continue;
        const named = target!.containers.flatMap((c: Obj) => c.ports ?? []).find((p: Obj) => p.name === port.targetPort);
        expect(named, `Service ${svc.metadata.name} targetPort ${port.targetPort}`).toBeDefined();
      }
    }
    for (const o of all.filter((o) => o.kind === 'PodDisruptionBudget' || o.kind === 'NetworkPolicy')) {
      const sel = o.kind === 'PodDisruptionBudget' ? o.spec.selector.matchLabels : o.spec.podSelector.matchLabels;
      expect(pods.some((p) => matches(sel, p.labels)), `${o.kind} ${o.metadata.name}`).toBe(true);
      for (const rule of [...(o.spec.ingress ?? []), ...(o.spec.egress ?? [])])
        for (const peer of [...(rule.from ?? []), ...(rule.to ?? [])])
          if (peer.podSelector) expect(pods.some((p) => matches(peer.podSelector.matchLabels, p.labels)), `${o.metadata.name} peer ${JSON.stringify(peer.podSelector)}`).toBe(true);
    }
    for (const sm of all.filter((o) => o.kind === 'ServiceMonitor')) {
      const svc = all.find((o) => o.kind === 'Service' && matches(sm.spec.selector.matchLabels, o.metadata.labels));
      expect(svc, `ServiceMonitor ${sm.metadata.name} selects a Service`).toBeDefined();
      for (const e of sm.spec.endpoints) expect(svc!.spec.ports.map((p: Obj) => p.name)).toContain(e.port);
    }
    const sm = find(all, 'ServiceMonitor', 'switchyard')!;
    expect(all.find((o) => o.kind === 'Service' && matches(sm.spec.selector.matchLabels, o.metadata.labels))!.metadata.name, 'job label the dashboards expect').toBe('switchyard');
  });

  it('route the Ingress to the gateway Service with SSE-safe nginx settings and cert-manager TLS', () => {
    const ing = find(base, 'Ingress', 'switchyard')!;
    const a = ing.metadata.annotations;
    expect(a['nginx.ingress.kubernetes.io/proxy-buffering']).toBe('off');
    // Longer than every backend's timeout_ms in the shipped config: the gateway's own 504 comes first.
    const timeouts = [...readFileSync(join(ROOT, 'deploy/k8s/base/gateway.yaml'), 'utf8').matchAll(/timeout_ms:\s*(\d+)/g)].map((m) => Number(m[1]));
    expect(timeouts.length).toBeGreaterThan(0);
    expect(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) * 1000).toBeGreaterThan(Math.max(...timeouts));
    expect(a['nginx.ingress.kubernetes.io/proxy-body-size']).toMatch(/^\d+[mk]?$/);
    expect(Number(a['nginx.ingress.kubernetes.io/limit-rps'])).toBeGreaterThan(0);
    expect(a['cert-manager.io/cluster-issuer'] ?? a['cert-manager.io/issuer']).toBeTruthy();
    expect(ing.spec.tls[0].secretName).toBeTruthy();
    expect(ing.spec.tls[0].hosts).toContain(ing.spec.rules[0].host);
    const { config } = loadConfigFile(deployConfigFile, SECRET_ENV);
    expect(Number(a['nginx.ingress.kubernetes.io/proxy-body-size'].replace('m', '')) * 1024 * 1024).toBeGreaterThanOrEqual(config.server.max_body_bytes);
    for (const path of ing.spec.rules.flatMap((r: Obj) => r.http.paths)) {
      const svc = find(base, 'Service', path.backend.service.name);
      expect(svc, `Ingress backend ${path.backend.service.name}`).toBeDefined();
      expect(svc!.spec.ports.map((p: Obj) => p.name)).toContain(path.backend.service.port.name);
      expect(matches(svc!.spec.selector, gateway.spec.template.metadata.labels)).toBe(true);
    }
  });

  it('scale the gateway Deployment with the HPA on CPU, requests per second and token-queue depth', () => {
    const hpa = find(base, 'HorizontalPodAutoscaler', 'switchyard')!;
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    const ref = hpa.spec.scaleTargetRef;
    expect(find(base, ref.kind, ref.name)?.apiVersion).toBe(ref.apiVersion);
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 20]);
    const byName = Object.fromEntries(hpa.spec.metrics.map((m: Obj) => [m.type === 'Resource' ? m.resource.name : m.pods.metric.name, m]));
    expect(byName.cpu.resource.target).toEqual({ type: 'Utilization', averageUtilization: 60 });
    expect(byName.http_requests_per_second.pods.target).toEqual({ type: 'AverageValue', averageValue: '50' });
    expect(byName.llm_token_queue_depth.pods.target).toEqual({ type: 'AverageValue', averageValue: '10000' });
    expect(hpa.spec.behavior.scaleUp.stabilizationWindowSeconds).toBe(60);
    expect(hpa.spec.behavior.scaleUp.policies).toEqual([{ type: 'Percent', value: 100, periodSeconds: 60 }]);
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBe(300);
    expect(hpa.spec.behavior.scaleDown.policies).toEqual([{ type: 'Percent', value: 25, periodSeconds: 60 }]);
  });

  it('serve the HPA Pods metrics from prometheus-adapter rules over metrics the gateway exports', async () => {
    const hpa = find(base, 'HorizontalPodAutoscaler', 'switchyard')!;
    const wanted = hpa.spec.metrics.filter((m: Obj) => m.type === 'Pods').map((m: Obj) => m.pods.metric.name);
    const cm = find(manifests('monitoring'), 'ConfigMap', 'switchyard-adapter-rules')!;
    const rules: Obj[] = parse(cm.data['config.yaml']).rules;
    const known = await gatewaySeriesNames();
    const served = rules.map((r) => {
      const series = metricNamesInExpr(r.seriesQuery);
      expect(series).toHaveLength(1);
      expect(known.has(series[0]!), `${series[0]} is defined in gateway/metrics.ts`).toBe(true);
      expect(new RegExp(r.name.matches).test(series[0]!)).toBe(true);
      expect(r.resources.overrides.pod.resource).toBe('pod');
      expect(r.metricsQuery).toContain('<<.Series>>{<<.LabelMatchers>>}');
      return r.name.as as string;
    });
    expect(served.sort()).toEqual([...wanted].sort());
    const rps = rules.find((r) => r.name.as === 'http_requests_per_second')!;
    expect(rps.seriesQuery).toMatch(/^switchyard_requests_total\{/);
    expect(rps.metricsQuery).toMatch(/rate\(/);
    expect(rules.find((r) => r.name.as === 'llm_token_queue_depth')!.seriesQuery).toMatch(/^switchyard_token_queue_depth\{/);
  });

  it('wire the gateway config to the local backend and dev Redis Services by name and port', () => {
    const { config } = loadConfigFile(deployConfigFile, SECRET_ENV);
    const dev = manifests('overlays/dev');
    const lbSvc = find(base, 'Service', 'switchyard-local-backend')!;
    const lbUrl = new URL(Object.values(config.backends).find((b) => b.type === 'openai-compatible')!.base_url!);
    expect(lbUrl.hostname).toBe(lbSvc.metadata.name);
    expect(Number(lbUrl.port)).toBe(lbSvc.spec.ports[0].port);
    const redisUrl = new URL(config.store.redis_url!);
    const redisSvc = find(dev, 'Service', redisUrl.hostname);
    expect(redisSvc, `dev Redis Service ${redisUrl.hostname}`).toBeDefined();
    expect(redisSvc!.spec.ports[0].port).toBe(Number(redisUrl.port));
    expect(config.store.kind).toBe('redis');
    expect(find(manifests('overlays/prod'), 'StatefulSet', redisUrl.hostname), 'prod uses managed Redis').toBeUndefined();
  });

  it('provide every secret the config needs: a Secret template in dev, an ExternalSecret in prod', () => {
    const text = readFileSync(deployConfigFile, 'utf8').replace(/^\s*#.*$/gm, '');
    const required = [...text.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => m[1]!);
    expect(required).toEqual(expect.arrayContaining(['SWITCHYARD_API_KEY', 'OPENAI_API_KEY']));
    const secret = find(manifests('overlays/dev'), 'Secret', 'switchyard-secrets')!;
    expect(Object.keys(secret.stringData)).toEqual(expect.arrayContaining(required));
    const es = manifests('overlays/prod').find((o) => o.kind === 'ExternalSecret')!;
    expect(es.spec.target.name).toBe('switchyard-secrets');
    expect(es.spec.data.map((d: Obj) => d.secretKey)).toEqual(expect.arrayContaining([...required, 'REDIS_URL']));
  });

  it('run the local backend on one NVIDIA GPU node with the server the gateway expects', () => {
    const lb = find(base, 'Deployment', 'switchyard-local-backend')!;
    const pod = lb.spec.template.spec;
    const c = pod.containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(Object.keys(pod.nodeSelector).length).toBeGreaterThan(0);
    expect(pod.tolerations.some((t: Obj) => t.key === 'nvidia.com/gpu')).toBe(true);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    const cmd = [...c.command, ...c.args].join(' ');
    expect(cmd).toMatch(/^switchyard-local-backend --model \/models\/\S+\.gguf/);
    const port = Number(/--port (\d+)/.exec(cmd)![1]);
    expect(c.ports.find((p: Obj) => p.name === 'http').containerPort).toBe(port);
    expect(c.readinessProbe.httpGet.path).toBe('/health');
    const claim = pod.volumes.find((v: Obj) => v.persistentVolumeClaim).persistentVolumeClaim.claimName;
    expect(find(base, 'PersistentVolumeClaim', claim)).toBeDefined();
    expect(c.volumeMounts.find((m: Obj) => m.mountPath === '/models')).toBeDefined();
  });
});

const kubectl = findBinary('kubectl');
if (!kubectl) console.warn('deploy-k8s.test.ts: kubectl not found; rendering the overlays with kustomize skipped');

describe.skipIf(!kubectl)('overlays rendered by kustomize (kubectl kustomize)', () => {
  const render = (dir: string): Obj[] => {
    const r = spawnSync(kubectl!, ['kustomize', join(K8S, dir)], { encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
    return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
  };

  for (const overlay of ['overlays/dev', 'overlays/prod']) {
    it(`render ${overlay} into valid objects in one namespace with hashed config and pinned images`, async () => {
      const objs = render(overlay);
      const ns = kustomization(overlay).namespace!;
      for (const o of objs) {
        await validate(o);
        if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(ns);
      }
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('switchyard-config-'))!;
      expect(cm.data['gateway.yaml']).toBe(readFileSync(deployConfigFile, 'utf8'));
      const gw = find(objs, 'Deployment', 'switchyard')!;
      expect(gw.spec.template.spec.volumes.find((v: Obj) => v.configMap).configMap.name).toBe(cm.metadata.name);
      for (const c of workloads(objs).flatMap((w) => w.spec.template.spec.containers)) expect(c.image, c.name).toMatch(/[:@]/);
      const secretSource = objs.find((o) => (o.kind === 'Secret' && o.metadata.name === 'switchyard-secrets') || (o.kind === 'ExternalSecret' && o.spec.target.name === 'switchyard-secrets'));
      expect(secretSource).toBeDefined();
    });
  }

  it('render the prometheus-adapter rules into the monitoring namespace', () => {
    const [cm] = render('monitoring');
    expect(cm!.metadata.namespace).toBe('monitoring');
    expect(parse(cm!.data['config.yaml']).rules).toHaveLength(2);
  });
});
