/**
 * Sidecar ingress listeners and port-specific egress listeners through real Envoy 1.40 sidecars and real HTTP
 * servers on loopback (TCP and a unix domain socket). Expectations follow Istio's Sidecar reference
 * (IstioIngressListener: port, bind, captureMode, defaultEndpoint; IstioEgressListener: port, hosts) and istiod's
 * listener_inbound.go (ingress chains, a real `BIND_PORT` listener when captured with NONE), cluster.go
 * buildInboundClustersFromSidecar (`inbound|PORT||` to the defaultEndpoint), listener.go
 * buildSidecarOutboundListeners (egress listeners with a port first, the catch-all never joins their listener) and
 * model/sidecar.go GetEgressListenerForRDS (route "PORT" holds only that listener's hosts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats, type EnvoyHandle } from '../helpers/envoy.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { httpGet, until } from '../helpers/http-probe.js';
import { pino } from 'pino';



const dumpOf = (d: any, kind: string): any => d.configs.find((c: any) => c['@type'].endsWith(kind));
const listenerNames = (d: any): string[] => (dumpOf(d, '.ListenersConfigDump')?.dynamic_listeners ?? []).filter((l: any) => l.active_state).map((l: any) => l.name).sort();

let mesh: TestMesh;
let tmp: string;
let web: HttpBackend, other: HttpBackend, third: HttpBackend, app: HttpBackend, app2: HttpBackend;
let uds: http.Server;
let sock: string;
const envoys: EnvoyHandle[] = [];
/** meshpilot's error log lines (validation errors name file, document, object and field). */
const errorLog: string[] = [];
let WP = 0, OP = 0, IN_A = 0, IN_U = 0, IN_R = 0, IN_T = 0;

function sidecars(appEndpoint: number): string {
  return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: ${WP}, protocol: HTTP, name: http}
    hosts: ["./web.default.svc.cluster.local"]
  - hosts: ["./*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: app, namespace: default}
spec:
  workloadSelector: {labels: {app: app}}
  ingress:
  - port: {number: ${IN_A}, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:${appEndpoint}
  - port: {number: ${IN_U}, protocol: HTTP, name: http-uds}
    defaultEndpoint: unix://${sock}
  egress:
  - hosts: ["~/*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: redirect, namespace: default}
spec:
  workloadSelector: {labels: {app: redirect}}
  ingress:
  - port: {number: ${IN_R}, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:${app.port}
    captureMode: NONE
  - port: {number: ${IN_T}, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:${app.port}
  inboundConnectionPool: {tcp: {maxConnections: 5}, http: {idleTimeout: 30s}}
  egress:
  - hosts: ["~/*"]
`;
}

function sidecar(name: string, mode: 'NONE' | 'REDIRECT'): Promise<EnvoyHandle> {
  return startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: `sidecar~127.0.0.1~${name}-0.default~default.svc.cluster.local`,
    metadata: { INTERCEPTION_MODE: mode, NAMESPACE: 'default', LABELS: { app: name }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  }).then((e) => { envoys.push(e); return e; });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-sidecar-'));
  sock = path.join(tmp, 'app.sock');
  [web, other, third, app, app2] = await Promise.all(['web', 'other', 'third', 'app', 'app2'].map((n) => startHttpBackend(n)));
  uds = http.createServer((req, res) => { req.resume(); res.end('uds'); });
  await new Promise<void>((r) => uds.listen(sock, () => r()));
  [WP, OP, IN_A, IN_U, IN_R, IN_T] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  mesh = await startMeshpilot({
    'svc.yaml': [
      serviceYaml({ name: 'web', port: WP, endpoints: [{ port: web.port }] }),
      serviceYaml({ name: 'other', port: WP, endpoints: [{ port: other.port }] }),
      serviceYaml({ name: 'third', port: OP, endpoints: [{ port: third.port }] }),
    ].join('---\n'),
    'sidecars.yaml': sidecars(app.port),
  }, { logger: pino({ level: 'error' }, { write: (line: string) => { errorLog.push(line); } }) });
});

after(async () => {
  await Promise.all(envoys.map((e) => e.stop()));
  await Promise.all([web, other, third, app, app2].map((b) => b?.close()));
  uds?.close();
  await mesh?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('egress listener with a port: a listener on that port for its hosts only; the catch-all keeps its other ports', async () => {
  const client = await sidecar('client', 'NONE');
  const dump = await client.waitFor((d) => listenerNames(d).length === 2 && (dumpOf(d, '.RoutesConfigDump')?.dynamic_route_configs ?? []).length === 2, 15_000);
  assert.deepEqual(listenerNames(dump), [`127.0.0.1_${OP}`, `127.0.0.1_${WP}`].sort());
  const routes = dumpOf(dump, '.RoutesConfigDump').dynamic_route_configs.map((r: any) => r.route_config);
  const wpRoute = routes.find((r: any) => r.name === String(WP));
  assert.deepEqual(wpRoute.virtual_hosts.map((v: any) => v.name), [`web.default.svc.cluster.local:${WP}`, 'block_all'],
    "route WP holds only the port-specific listener's host (other shares the port but is imported by the catch-all only)");
  assert.equal((await until('web via its egress listener', () => httpGet(WP, 'web.default.svc.cluster.local'), (r) => r.status === 200)).body, 'web');
  assert.equal((await httpGet(WP, 'other.default.svc.cluster.local')).status, 502, 'other is not on this listener: REGISTRY_ONLY blocks it');
  assert.equal(other.hits, 0);
  assert.equal((await until('third via the catch-all', () => httpGet(OP, 'third.default.svc.cluster.local'), (r) => r.status === 200)).body, 'third');
  assert.deepEqual(rejectedResources(await client.configDump()), []);
  assert.deepEqual(rejectedUpdateStats(await client.stats()), {});
});

test('ingress listeners (interception NONE): BIND_PORT listeners deliver to the defaultEndpoint, TCP or unix socket', async () => {
  const server = await sidecar('app', 'NONE');
  const dump = await server.waitFor((d) => listenerNames(d).length === 2, 15_000);
  assert.deepEqual(listenerNames(dump), [`0.0.0.0_${IN_A}`, `0.0.0.0_${IN_U}`].sort());
  const clusters = dumpOf(dump, '.ClustersConfigDump').dynamic_active_clusters.map((c: any) => c.cluster);
  assert.deepEqual(clusters.find((c: any) => c.name === `inbound|${IN_U}||`).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { pipe: { path: sock } });
  assert.equal((await until('app via the ingress listener', () => httpGet(IN_A, 'anything'), (r) => r.status === 200)).body, 'app');
  assert.equal((await until('unix socket app', () => httpGet(IN_U, 'anything'), (r) => r.status === 200)).body, 'uds');
  // Moving the defaultEndpoint moves traffic (the inbound cluster's cache key follows the Sidecar).
  mesh.write('sidecars.yaml', sidecars(app2.port));
  await mesh.settle();
  assert.equal((await until('app2 after the edit', () => httpGet(IN_A, 'anything'), (r) => r.body === 'app2')).status, 200);
  assert.deepEqual(rejectedResources(await server.configDump()), []);
  assert.deepEqual(rejectedUpdateStats(await server.stats()), {});
});

test('ingress listeners (interception REDIRECT): captureMode NONE binds for real and serves; the rest are virtualInbound chains', async () => {
  const server = await sidecar('redirect', 'REDIRECT');
  const dump = await server.waitFor((d) => listenerNames(d).includes('virtualInbound') && listenerNames(d).includes(`0.0.0.0_${IN_R}`), 15_000);
  const vi = dumpOf(dump, '.ListenersConfigDump').dynamic_listeners.find((l: any) => l.name === 'virtualInbound').active_state.listener;
  const ports = vi.filter_chains.map((c: any) => c.filter_chain_match?.destination_port).filter(Boolean);
  // 15006: istiod's virtualInbound-blackhole chain for traffic addressed to the listener itself.
  assert.deepEqual(ports, [15006, IN_T], 'the TCP ingress port is a virtualInbound chain; the NONE one is not');
  const tcpChain = vi.filter_chains.find((c: any) => c.filter_chain_match?.destination_port === IN_T);
  assert.equal(tcpChain.name, `0.0.0.0_${IN_T}`);
  assert.equal(tcpChain.filters[0].typed_config.cluster, `inbound|${IN_T}||`);
  const inbound = dumpOf(dump, '.ClustersConfigDump').dynamic_active_clusters.map((c: any) => c.cluster).find((c: any) => c.name === `inbound|${IN_T}||`);
  assert.equal(inbound.circuit_breakers.thresholds[0].max_connections, 5, 'inboundConnectionPool reaches the inbound clusters');
  const hits = app.hits;
  assert.equal((await until('app via the bound ingress listener', () => httpGet(IN_R, 'anything'), (r) => r.status === 200)).body, 'app');
  assert.ok(app.hits > hits);
  assert.deepEqual(rejectedResources(await server.configDump()), []);
  assert.deepEqual(rejectedUpdateStats(await server.stats()), {});
});

test('a Sidecar with a bad defaultEndpoint is refused naming the field, and the last good one keeps serving', async () => {
  const n = errorLog.length;
  mesh.write('sidecars.yaml', sidecars(app2.port).replace(`127.0.0.1:${app2.port}`, `10.0.0.1:${app2.port}`));
  await until('the validation error is logged', async () => errorLog.length, (len) => len > n, 5000);
  const msg = errorLog.slice(n).map((l) => JSON.parse(l).msg as string).join('\n');
  assert.match(msg, /Sidecar app\).*spec\.ingress\[0\]\.defaultEndpoint: sidecar: defaultEndpoint must be of form 127\.0\.0\.1:<port>/);
  await mesh.settle();
  assert.equal((await httpGet(IN_A, 'anything')).body, 'app2', 'still the last good config');
  mesh.write('sidecars.yaml', sidecars(app2.port));
  await mesh.settle();
});
