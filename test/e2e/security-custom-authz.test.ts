/**
 * AuthorizationPolicy action CUSTOM through a real Envoy 1.40 (a gateway router: its listeners bind real ports in
 * file mode), with an envoyExtAuthzHttp provider from the mesh config pointing at a small Node HTTP authorization
 * service. As istiod builds it (pilot/pkg/security/authz/builder: extauthz.go, builder.go): a shadow RBAC filter
 * marks the requests the CUSTOM rules match, and only those reach ext_authz; the service allows `x-allow: 1` and
 * denies others with 403; a policy naming a provider the mesh lacks denies what it matches and is reported.
 * And an envoyExtAuthzGrpc provider on a sidecar's inbound chain (a Sidecar ingress listener that binds for real in
 * interception NONE) with a real gRPC `envoy.service.auth.v3.Authorization` server: HTTP and TCP (network ext_authz).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { pino } from 'pino';
import { createRequire } from 'node:module';
import { PROTO_INCLUDE_DIRS } from '../../src/proto/envoy-protos.js';
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
let IN_HTTP: number, IN_TCP: number;
let sidecarEnvoy: EnvoyHandle;
let grpcAuthz: grpc.Server;
let tcpEcho: net.Server;
const checks: Array<{ path: string; headers: http.IncomingHttpHeaders }> = [];
/** Check calls the gRPC authorization service received: HTTP path (or 'tcp' for a connection check). */
const grpcChecks: string[] = [];
let allowTcp = false;
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

/**
 * A gRPC authorization service (envoy.service.auth.v3.Authorization/Check) on loopback: HTTP requests pass with
 * `x-allow: 1` (OK, adding x-authz-grpc upstream) and are denied with 403 otherwise; TCP connections as `allowTcp` says.
 */
async function startGrpcAuthz(): Promise<{ server: grpc.Server; port: number }> {
  const pbDir = path.dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (_o: string, target: string): string => {
    for (const dir of [pbDir, ...PROTO_INCLUDE_DIRS]) {
      const c = path.join(dir, target);
      if (fs.existsSync(c)) return c;
    }
    return target;
  };
  root.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true });
  root.resolveAll();
  const Req = root.lookupType('envoy.service.auth.v3.CheckRequest');
  const Res = root.lookupType('envoy.service.auth.v3.CheckResponse');
  const server = new grpc.Server();
  server.addService({
    Check: {
      path: '/envoy.service.auth.v3.Authorization/Check', requestStream: false, responseStream: false,
      requestDeserialize: (b: Buffer) => Req.toObject(Req.decode(b), { defaults: false }),
      responseSerialize: (o: any) => Buffer.from(Res.encode(Res.fromObject(o)).finish()),
      requestSerialize: (o: any) => o, responseDeserialize: (b: Buffer) => b,
    },
  } as grpc.ServiceDefinition, {
    Check: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      const httpReq = call.request.attributes?.request?.http;
      if (!httpReq) {
        grpcChecks.push('tcp');
        cb(null, { status: { code: allowTcp ? 0 : 7 } });
        return;
      }
      grpcChecks.push(httpReq.path);
      if (httpReq.headers?.['x-allow'] === '1') {
        cb(null, { status: { code: 0 }, ok_response: { headers: [{ header: { key: 'x-authz-grpc', value: 'ok' } }] } });
      } else {
        cb(null, { status: { code: 7 }, denied_response: { status: { code: 403 }, body: 'denied by grpc ext-authz' } });
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port };
}

function getOn(port: number, p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, headers: { host: 'api.default.svc.cluster.local', ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Send a line over TCP through the sidecar; resolves with what came back before the connection closed. */
function tcpRoundTrip(port: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => s.write('ping\n'));
    s.on('data', (d) => { got += d; if (got.includes('\n')) s.end(); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.setTimeout(3000, () => s.destroy());
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
  const g = await startGrpcAuthz();
  grpcAuthz = g.server;
  // A reset from Envoy after the test is done must not end the process as an uncaught error.
  tcpEcho = net.createServer((sock) => sock.on('error', () => undefined).on('data', (d) => sock.write(`echo:${d}`)));
  await new Promise<void>((r) => tcpEcho.listen(0, '127.0.0.1', r));
  [HTTP_P, IN_HTTP, IN_TCP] = await Promise.all([freePort(), freePort(), freePort()]);
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
- name: grpc-authz
  envoyExtAuthzGrpc:
    service: default/ext-authz-grpc.default.svc.cluster.local
    port: 9000
    timeout: 2s
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
    'grpc-authz.yaml': serviceYaml({ name: 'ext-authz-grpc', port: 9000, portName: 'grpc', endpoints: [{ port: g.port }] }),
    'api.yaml': `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: default}
spec:
  workloadSelector: {labels: {app: api}}
  ingress:
  - port: {number: ${IN_HTTP}, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:${web.port}
  - port: {number: ${IN_TCP}, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:${(tcpEcho.address() as AddressInfo).port}
  egress:
  - hosts: ["./*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: api}}
  action: CUSTOM
  provider: {name: grpc-authz}
  rules:
  - to: [{operation: {paths: ["/secure/*"]}}]
`,
  }, { meshConfigFile: meshFile, logger: pino({ level: 'info' }, sink) });
  gw = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'router~127.0.0.1~ingress-0.istio-system~istio-system.svc.cluster.local',
    metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  await eventually(async () => (await get('/public').catch(() => ({ status: 0 }))).status === 200, 20000, 100);
  sidecarEnvoy = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'sidecar~127.0.0.1~api-0.default~default.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default', LABELS: { app: 'api' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  await eventually(async () => (await getOn(IN_HTTP, '/public').catch(() => ({ status: 0 }))).status === 200, 20000, 100);
});

after(async () => {
  await gw?.stop();
  await sidecarEnvoy?.stop();
  await mesh?.stop();
  grpcAuthz?.forceShutdown();
  await new Promise<void>((r) => (tcpEcho ? tcpEcho.close(() => r()) : r()));
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
  // While Envoy swaps the listener, a request on the draining one may be reset: count it as not yet.
  await eventually(async () => (await get('/secure/a', { 'x-allow': '1' }).catch(() => ({ status: 0 }))).status === 403, 10000, 100);
  const before = checks.length;
  const r = await get('/secure/c', { 'x-allow': '1' });
  assert.equal(r.status, 403);
  assert.match(r.body, /RBAC: access denied/);
  assert.equal((await get('/public')).status, 200, 'unmatched requests still pass');
  assert.equal(checks.length, before, 'the authorization service is not called');
  const line = logs.find((l) => l.code === 'CUSTOM_PROVIDER');
  assert.ok(line, 'a warning is logged');
  assert.match(line.msg, /AuthorizationPolicy istio-system\/ext-authz: CUSTOM provider "no-such-provider": extension provider "no-such-provider" not found in the mesh config \(available: http-authz, grpc-authz\)/);
  assert.deepEqual(rejectedResources(await gw.configDump()), []);

  mesh.write('policy.yaml', policy('http-authz'));
  await eventually(async () => (await get('/secure/a', { 'x-allow': '1' }).catch(() => ({ status: 0 }))).status === 200, 10000, 100);
});

test('gRPC provider on a sidecar inbound chain: Envoy accepts it; matching requests are checked over gRPC, others are not', async () => {
  const dump = await sidecarEnvoy.configDump();
  assert.deepEqual(rejectedResources(dump), []);
  assert.deepEqual(rejectedUpdateStats(await sidecarEnvoy.stats()), {});
  const before = grpcChecks.length;
  const denied = await getOn(IN_HTTP, '/secure/a');
  assert.equal(denied.status, 403);
  assert.equal(denied.body, 'denied by grpc ext-authz');
  const hits = web.hits;
  const ok = await getOn(IN_HTTP, '/secure/b', { 'x-allow': '1' });
  assert.equal(ok.status, 200);
  assert.equal(web.hits, hits + 1);
  assert.equal(web.requests.at(-1)!.headers['x-authz-grpc'], 'ok', 'the OK response headers reach the workload');
  assert.equal((await getOn(IN_HTTP, '/public')).status, 200);
  assert.deepEqual(grpcChecks.slice(before), ['/secure/a', '/secure/b'], 'one gRPC Check per matching request, none for /public');
});

test('gRPC provider on a TCP ingress chain: network ext_authz checks each connection (the HTTP-only paths do not apply to TCP)', async () => {
  const before = grpcChecks.length;
  allowTcp = false;
  assert.equal(await tcpRoundTrip(IN_TCP), '', 'a denied connection is closed without reaching the workload');
  allowTcp = true;
  assert.equal(await tcpRoundTrip(IN_TCP), 'echo:ping\n');
  assert.deepEqual(grpcChecks.slice(before), ['tcp', 'tcp']);
});
