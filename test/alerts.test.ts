import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { findBinary, gatewaySeriesNames, metricNamesInExpr } from './support/prometheus.js';

const dir = fileURLToPath(new URL('../deploy/prometheus/', import.meta.url));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertTest {
  alertname: string;
  eval_time: string;
  exp_alerts: unknown[];
}

const rules: Rule[] = (parse(readFileSync(`${dir}alerts.yaml`, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const unitTests = (parse(readFileSync(`${dir}alerts.test.yaml`, 'utf8')) as { tests: { name: string; alert_rule_test?: AlertTest[] }[] }).tests;
const alertTests = unitTests.flatMap((t) => t.alert_rule_test ?? []);

function promtool(...args: string[]) {
  const r = spawnSync('promtool', args, { cwd: dir, encoding: 'utf8', timeout: 30000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The alerts the operations issue asks for: what each watches and its threshold. */
const REQUIRED: { alert: string; metric: string; threshold: RegExp }[] = [
  { alert: 'SwitchyardHighRequestLatencyP99', metric: 'switchyard_request_duration_seconds_bucket', threshold: /histogram_quantile\(0\.99[\s\S]*\)\s*>\s*10\s*$/ },
  { alert: 'SwitchyardHighTimeToFirstTokenP99', metric: 'switchyard_time_to_first_token_seconds_bucket', threshold: /histogram_quantile\(0\.99[\s\S]*\)\s*>\s*10\s*$/ },
  { alert: 'SwitchyardHighUpstreamLatencyP99', metric: 'switchyard_upstream_duration_seconds_bucket', threshold: /histogram_quantile\(0\.99[\s\S]*\)\s*>\s*30\s*$/ },
  { alert: 'SwitchyardBudgetBurnRateHigh', metric: 'switchyard_budget_limit_usd', threshold: /1\.2 \*/ },
  { alert: 'SwitchyardHigh5xxRate', metric: 'switchyard_requests_total', threshold: />\s*0\.01\s*$/ },
  { alert: 'SwitchyardLowToolCallSuccess', metric: 'switchyard_tool_results_total', threshold: /<\s*0\.95\s*$/ },
  { alert: 'SwitchyardQueueDepthHigh', metric: 'switchyard_queue_depth', threshold: />\s*1000\s*$/ },
  { alert: 'SwitchyardLowCacheHitRate', metric: 'switchyard_cache_requests_total', threshold: /<\s*0\.30?\s*$/ },
];

describe('Prometheus alert rules', () => {
  it('include every alert the operations guide promises, on the right metric and threshold', () => {
    for (const req of REQUIRED) {
      const rule = rules.find((r) => r.alert === req.alert);
      expect(rule, req.alert).toBeDefined();
      expect(metricNamesInExpr(rule!.expr), req.alert).toContain(req.metric);
      expect(rule!.expr.trim(), req.alert).toMatch(req.threshold);
    }
  });

  it('give every alert a severity, a summary, a runbook link and a for duration', () => {
    for (const r of rules.filter((r) => r.alert)) {
      expect(['page', 'warning', 'info'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.runbook_url, r.alert).toMatch(/docs\/operations\.md#alerts$/);
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
    }
  });

  it('select only metrics the gateway defines in gateway/metrics.ts', async () => {
    const known = await gatewaySeriesNames();
    for (const r of rules) for (const name of metricNamesInExpr(r.expr)) expect(known.has(name), `${r.alert}: ${name}`).toBe(true);
  });

  it('have a promtool unit test that makes each alert fire and one that keeps it quiet', () => {
    for (const r of rules.filter((r) => r.alert)) {
      const cases = alertTests.filter((t) => t.alertname === r.alert);
      expect(cases.some((t) => t.exp_alerts.length > 0), `${r.alert} has no firing test`).toBe(true);
      expect(cases.some((t) => t.exp_alerts.length === 0), `${r.alert} has no quiet test`).toBe(true);
    }
    for (const t of alertTests) expect(rules.some((r) => r.alert === t.alertname), `test for unknown alert ${t.alertname}`).toBe(true);
  });

  const hasPromtool = Boolean(findBinary('promtool'));
  if (!hasPromtool) console.warn('alerts.test.ts: promtool not found (apt-get install prometheus); promtool checks skipped');

  it.skipIf(!hasPromtool)('pass promtool check rules', () => {
    const r = promtool('check', 'rules', 'alerts.yaml');
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code, r.output).toBe(0);
  });

  it.skipIf(!hasPromtool)('pass promtool test rules', () => {
    const r = promtool('test', 'rules', 'alerts.test.yaml');
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
  });

  it.skipIf(!hasPromtool)('are loaded by a Prometheus config that promtool accepts', () => {
    const r = promtool('check', 'config', 'prometheus.yml');
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('alerts.yaml');
  });
});
