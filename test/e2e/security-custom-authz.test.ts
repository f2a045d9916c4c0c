/**
 * AuthorizationPolicy action CUSTOM through a real Envoy 1.40 (a gateway router: its listeners bind real ports in
 * file mode), with an envoyExtAuthzHttp provider from the mesh config pointing at a small Node HTTP authorization
 * service. As istiod builds it (pilot/pkg/security/authz/builder: extauthz.go, builder.go): a shadow RBAC filter
 * marks the requests the CUSTOM rules match, and only those reach ext_authz; the service allows `x-allow: 1` and
 * denies others with 403; a policy naming a provider the mesh lacks denies what it matches and is reported.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats, type EnvoyHandle } from '../helpers/envoy.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { eventually } from '../helpers/grpc-backend.js';

let mesh: TestMesh;
let gw: EnvoyHandle;
let web: HttpBackend;
let authz: http.Server;
let meshDir: string;
let HTTP_P: number;
const checks: Array<{ path: string; headers: http.IncomingHttpHeaders }> = [];
const logs: any[] = [];

function get(p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: HTTP_P, path: p, headers: { host: 'web.example.test', ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function policy(provider: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: ${provider}}
  rules:
  - to: [{operation: {paths: ["/secure/*"]}}]
`;
}

before(async () => {
  web = await startHttpBackend('web');
  // The authorization service: Envoy's HTTP ext_authz sends the original method and path (after path_prefix) with
  // the allowed headers; 200 allows (its x-authz-user goes upstream), anything else denies with that response.
  authz = http.createServer((req, res) => {
    req.resume();
    checks.push({ path: req.url ?? '', headers: req.headers });
    if (req.headers['x-allow'] === '1') res.writeHead(200, { 'x-authz-user': 'alice' }).end();
    else res.writeHead(403, { 'x-ext-authz': 'denied' }).end('denied by ext-authz');
  });
  await new Promise<void>((r) => authz.listen(0, '127.0.0.1', r));
  const authzPort = (authz.address() as AddressInfo).port;
  HTTP_P = await freePort();
  meshDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-extauthz-'));
  const meshFile = path.join(meshDir, 'mesh.yaml');
  fs.writeFileSync(meshFile, `extensionProviders:
- name: http-authz
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    timeout: 2s
    pathPrefix: /check
    includeRequestHeadersInCheck: [x-allow]
    headersToUpstreamOnAllow: [x-authz-user]
    headersToDownstreamOnDeny: [x-ext-authz]
`);
  const sink = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) logs.push(JSON.parse(l)); cb(); } });
  mesh = await startMeshpilot({
    'web.yaml': serviceYaml({ name: 'web', port: 8080, endpoints: [{ port: web.port }] }),
    'authz.yaml': serviceYaml({ name: 'ext-authz', port: 8000, endpoints: [{ port: authzPort }] }),
    'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${HTTP_P}, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.test]
  gateways: [istio-system/ingress]
  http: [{route: [{destination: {host: web}}]}]
`,
    'policy.yaml': policy('http-authz'),
  }, { meshConfigFile: meshFile, logger: pino({ level: 'info' }, sink) });
  gw = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'router~127.0.0.1~ingress-0.istio-system~istio-system.svc.cluster.local',
    metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  await eventually(async () => (await get('/public').catch(() => ({ status: 0 }))).status === 200, 20000, 100);
});

after(async () => {
  await gw?.stop();
  await mesh?.stop();
  await web?.close();
  await new Promise<void>((r) => (authz ? authz.close(() => r()) : r()));
  if (meshDir) fs.rmSync(meshDir, { recursive: true, force: true });
});

function httpFilters(dump: any): any[] {
  const ls = dump.configs.find((c: any) => c['@type'].endsWith('.ListenersConfigDump')).dynamic_listeners;
  const l = ls.find((x: any) => x.name === `0.0.0.0_${HTTP_P}`).active_state.listener;
  return l.filter_chains[0].filters[0].typed_config.http_filters;
}

test('Envoy accepts the ext_authz config: shadow RBAC (istio-ext-authz rules) then ext_authz, before the router', async () => {
  const dump = await gw.configDump();
  assert.deepEqual(rejectedResources(dump), []);
  assert.deepEqual(rejectedUpdateStats(await gw.stats()), {});
  const filters = httpFilters(dump);
  const names = filters.map((f: any) => f.name);
  assert.deepEqual(names.slice(0, 2), ['envoy.filters.http.rbac', 'envoy.filters.http.ext_authz']);
  assert.equal(names.at(-1), 'envoy.filters.http.router');
  const rbac = filters[0].typed_config;
  assert.equal(rbac.rules, undefined, 'the CUSTOM RBAC filter never enforces');
  assert.deepEqual(Object.keys(rbac.shadow_rules.policies), ['istio-ext-authz-ns[istio-system]-policy[ext-authz]-rule[0]']);
  assert.equal(rbac.shadow_rules_stat_prefix, 'istio_ext_authz_');
  const ext = filters[1].typed_config;
  assert.equal(ext.http_service.server_uri.cluster, 'outbound|8000||ext-authz.default.svc.cluster.local');
  assert.equal(ext.http_service.path_prefix, '/check');
  assert.deepEqual(ext.filter_enabled_metadata.path, [{ key: 'istio_ext_authz_shadow_effective_policy_id' }]);
});

test('requests the CUSTOM rule matches go to the authorization service: x-allow: 1 passes, others get its 403', async () => {
  const before = checks.length;
  const denied = await get('/secure/a');
  assert.equal(denied.status, 403);
  assert.equal(denied.body, 'denied by ext-authz');
  assert.equal(denied.headers['x-ext-authz'], 'denied', 'headersToDownstreamOnDeny reach the client');
  const hitsBefore = web.hits;
  const allowed = await get('/secure/b', { 'x-allow': '1' });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.body, 'web');
  assert.equal(web.hits, hitsBefore + 1);
  assert.equal(web.requests.at(-1)!.headers['x-authz-user'], 'alice', 'headersToUpstreamOnAllow reach the backend');
  assert.equal(checks.length, before + 2, 'one check per matching request');
  assert.deepEqual(checks.slice(before).map((c) => c.path), ['/check/secure/a', '/check/secure/b'], 'pathPrefix + original path');
  assert.equal(checks.at(-1)!.headers['x-allow'], '1', 'includeRequestHeadersInCheck is forwarded');
});

test('requests outside the CUSTOM rule\'s paths never call the authorization service', async () => {
  const before = checks.length;
  for (const p of ['/public', '/secure', '/other/secure/x']) {
    const r = await get(p);
    assert.equal(r.status, 200, `${p} is not matched by the CUSTOM rule`);
  }
  assert.equal(checks.length, before, 'no check request for unmatched paths');
});

test('a provider missing from the mesh config: what the policy matches is denied (as istiod), and it is reported', async () => {
  mesh.write('policy.yaml', policy('no-such-provider'));
  await eventually(async () => (await get('/secure/a', { 'x-allow': '1' })).status === 403, 10000, 100);
  const before = checks.length;
  const r = await get('/secure/c', { 'x-allow': '1' });
  assert.equal(r.status, 403);
  assert.match(r.body, /RBAC: access denied/);
  assert.equal((await get('/public')).status, 200, 'unmatched requests still pass');
  assert.equal(checks.length, before, 'the authorization service is not called');
  const line = logs.find((l) => l.code === 'CUSTOM_PROVIDER');
  assert.ok(line, 'a warning is logged');
  assert.match(line.msg, /AuthorizationPolicy istio-system\/ext-authz: CUSTOM provider "no-such-provider": extension provider "no-such-provider" not found in the mesh config \(available: http-authz\)/);
  assert.deepEqual(rejectedResources(await gw.configDump()), []);

  mesh.write('policy.yaml', policy('http-authz'));
  await eventually(async () => (await get('/secure/a', { 'x-allow': '1' })).status === 200, 10000, 100);
});
