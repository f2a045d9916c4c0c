/**
 * istiod's ProxyNeedsPush over real gRPC (pilot/pkg/xds/proxy_dependencies.go): a full push goes only to proxies
 * whose Sidecar scope a changed config can reach; a config that leaves a proxy's view (exportTo narrowed) still
 * reaches the proxies that saw it; everything unscoped goes to everyone.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient, type Response } from '../helpers/ads-client.js';
import { egressSidecarYaml, headerRouteVsYaml } from '../helpers/istio-yaml.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';

let mesh: TestMesh;
const clients: AdsTestClient[] = [];
const ALPHA = 'alpha.ns-a.svc.cluster.local';
const BETA = 'beta.ns-b.svc.cluster.local';

const sidecar = egressSidecarYaml;
const vs = (name: string, ns: string, host: string, header: string, exportTo?: string[]): string =>
  headerRouteVsYaml(name, ns, host, header, exportTo ? `  exportTo: [${exportTo.map((e) => JSON.stringify(e)).join(', ')}]\n` : '');

before(async () => {
  mesh = await startMeshpilot({
    'alpha.yaml': serviceYaml({ name: 'alpha', namespace: 'ns-a', port: 9080, endpoints: [{ ip: '10.0.1.1', port: 9080 }] }),
    'beta.yaml': serviceYaml({ name: 'beta', namespace: 'ns-b', port: 9080, endpoints: [{ ip: '10.0.2.1', port: 9080 }] }),
    'sidecar-a.yaml': sidecar('ns-a', ['./*']),
    'sidecar-b.yaml': sidecar('ns-b', ['./*']),
    'vs-alpha.yaml': vs('alpha', 'ns-a', ALPHA, 'm0'),
  });
});
after(async () => { for (const c of clients) c.close(); await mesh.stop(); });

/** An Envoy-like sidecar in `ns`: wildcard CDS/LDS, EDS and RDS 9080, ACKing everything. */
async function sidecarClient(ns: string, ip: string, cluster: string): Promise<AdsTestClient> {
  const c = new AdsTestClient(mesh.xdsAddress, `sidecar~${ip}~client.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns });
  clients.push(c);
  c.send({ type_url: CLUSTER_TYPE });
  c.ack(await c.next(CLUSTER_TYPE));
  c.send({ type_url: ENDPOINT_TYPE, resource_names: [cluster] });
  c.ack(await c.next(ENDPOINT_TYPE), [cluster]);
  c.send({ type_url: LISTENER_TYPE });
  c.ack(await c.next(LISTENER_TYPE));
  c.send({ type_url: ROUTE_TYPE, resource_names: ['9080'] });
  c.ack(await c.next(ROUTE_TYPE), ['9080']);
  return c;
}

function hasText(r: Response, text: string): boolean {
  return JSON.stringify(r.resources).includes(text);
}

let a: AdsTestClient;
let b: AdsTestClient;

test('a VirtualService change reaches only the namespace whose Sidecar admits its host', async () => {
  a = await sidecarClient('ns-a', '10.9.0.1', `outbound|9080||${ALPHA}`);
  b = await sidecarClient('ns-b', '10.9.0.2', `outbound|9080||${BETA}`);
  await mesh.settle();
  const na = a.received.length, nb = b.received.length;
  const skippedBefore = mesh.server.engine.stats.proxiesSkipped;

  mesh.write('vs-alpha.yaml', vs('alpha', 'ns-a', ALPHA, 'm1'));
  const rds = await a.next(ROUTE_TYPE, 3000, na);
  assert.ok(hasText(rds, 'm1'), 'ns-a sees the new header match');
  a.ack(rds, ['9080']);
  await mesh.settle();
  assert.deepEqual(a.received.slice(na).map((r) => r.type_url), [ROUTE_TYPE], 'ns-a: only its route changed');
  assert.equal(b.received.length, nb, 'ns-b (Sidecar egress ./*) is not pushed at all');
  assert.equal(mesh.server.engine.stats.proxiesSkipped - skippedBefore, 1, 'one proxy skipped by the dependency check');
});

test('a VirtualService whose exportTo narrows still reaches the proxies that saw it', async () => {
  // ns-b's VirtualService for beta, exported everywhere: ns-b (egress ./* imports ns-b's VirtualServices) gets its
  // route. (One in ns-a would not reach ns-b at all, whatever its host: istiod imports VirtualServices by the
  // egress hosts for their own namespace.)
  let nb = b.received.length;
  mesh.write('vs-beta.yaml', vs('beta-x', 'ns-b', BETA, 'x1'));
  let rds = await b.next(ROUTE_TYPE, 3000, nb);
  assert.ok(hasText(rds, 'x1'));
  b.ack(rds, ['9080']);
  await mesh.settle();

  // Narrowed to ns-a only: the new context no longer shows it to ns-b, the old one did — ns-b is pushed.
  nb = b.received.length;
  mesh.write('vs-beta.yaml', vs('beta-x', 'ns-b', BETA, 'x1', ['ns-a']));
  rds = await b.next(ROUTE_TYPE, 3000, nb);
  assert.ok(!hasText(rds, 'x1'), 'the route is gone for ns-b');
  b.ack(rds, ['9080']);
  await mesh.settle();
});

test('a Sidecar change pushes only its namespace; a Service change pushes its namespace and whoever sees it', async () => {
  let na = a.received.length, nb = b.received.length;
  mesh.write('sidecar-b.yaml', sidecar('ns-b', ['./*', 'ns-a/*']));
  const cds = await b.next(CLUSTER_TYPE, 3000, nb);
  assert.ok(cds.resources.some((c) => c.name === `outbound|9080||${ALPHA}`), 'ns-b now imports alpha');
  b.ack(cds);
  const rdsB = await b.next(ROUTE_TYPE, 3000, nb);
  assert.ok(hasText(rdsB, ALPHA), 'ns-b\'s route 9080 gains alpha');
  b.ack(rdsB, ['9080']);
  await mesh.settle();
  assert.equal(a.received.length, na, 'ns-a is not pushed for ns-b\'s Sidecar');

  // alpha (ns-a) gains a port: ns-a (its own) and ns-b (imports it now) are both pushed.
  na = a.received.length; nb = b.received.length;
  mesh.write('alpha.yaml', serviceYaml({ name: 'alpha', namespace: 'ns-a', port: 9081, endpoints: [{ ip: '10.0.1.1', port: 9081 }] }));
  const ca = await a.next(CLUSTER_TYPE, 3000, na);
  const cb = await b.next(CLUSTER_TYPE, 3000, nb);
  for (const c of [ca, cb]) assert.ok(c.resources.some((r) => r.name === `outbound|9081||${ALPHA}`));
});

test('an endpoint change merged into a full push still reaches its watchers, as EDS only', async () => {
  await mesh.settle();
  const nb = b.received.length;
  const skippedBefore = mesh.server.engine.stats.proxiesSkipped;
  const fullBefore = mesh.server.engine.stats.fullPushes;
  // Both writes land in one debounce window: one full request carrying a VirtualService exported only to ns-a
  // (ns-b imports ns-a's services by now, but cannot see this one) and an EndpointSlice of beta (which ns-b watches).
  mesh.write('vs-alpha-local.yaml', vs('alpha-local', 'ns-a', ALPHA, 'g1', ['.']));
  mesh.write('beta.yaml', serviceYaml({ name: 'beta', namespace: 'ns-b', port: 9080, endpoints: [{ ip: '10.0.2.1', port: 9080 }, { ip: '10.0.2.2', port: 9080 }] }));
  const eds = await b.next(ENDPOINT_TYPE, 3000, nb);
  assert.equal(eds.resources[0].endpoints[0].lb_endpoints.length, 2, 'ns-b sees the new beta endpoint');
  b.ack(eds, [`outbound|9080||${BETA}`]);
  await mesh.settle();
  assert.equal(mesh.server.engine.stats.fullPushes - fullBefore, 1, 'one merged full push');
  assert.equal(mesh.server.engine.stats.proxiesSkipped - skippedBefore, 1, 'ns-b left out of the config part');
  assert.deepEqual(b.received.slice(nb).map((r) => r.type_url), [ENDPOINT_TYPE], 'ns-b: EDS only');
});

/** Cache lookups (hits + misses) so far for one type: how many resources of it pushes have planned. */
async function lookups(type: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${mesh.server.monitoringPort}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^meshpilot_xds_cache_(?:hits|misses)\\{type="${type}"\\} (\\S+)$`, 'gm'))) n += Number(m[1]);
  return n;
}

test('a VirtualService change and an endpoint change in one debounce window: the affected proxy gets EDS and RDS only', async () => {
  await mesh.settle();
  const na = a.received.length, nb = b.received.length;
  const cdsBefore = await lookups('cds'), ldsBefore = await lookups('lds');
  const fullBefore = mesh.server.engine.stats.fullPushes;
  // beta's own VirtualService (ns-b admits it) and an EndpointSlice giving beta a third endpoint (the pods, the
  // workload registry, stay as they are), merged into one full push.
  mesh.write('vs-beta-own.yaml', vs('beta-own', 'ns-b', BETA, 'b1'));
  mesh.write('beta-slice.yaml', `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: beta-1, namespace: ns-b, labels: {kubernetes.io/service-name: beta}}\n` +
    `addressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n${[1, 2, 3].map((i) => `- addresses: ["10.0.3.${i}"]\n`).join('')}`);
  const eds = await b.next(ENDPOINT_TYPE, 3000, nb);
  assert.ok(hasText(eds, '10.0.3.3'), 'ns-b sees the EndpointSlice\'s endpoints');
  b.ack(eds, [`outbound|9080||${BETA}`]);
  const rds = await b.next(ROUTE_TYPE, 3000, nb);
  assert.ok(hasText(rds, 'b1'), 'and the new route');
  b.ack(rds, ['9080']);
  await mesh.settle();
  assert.equal(mesh.server.engine.stats.fullPushes - fullBefore, 1, 'one merged full push');
  assert.deepEqual(b.received.slice(nb).map((r) => r.type_url), [ENDPOINT_TYPE, ROUTE_TYPE], 'ns-b: no CDS or LDS');
  assert.equal(a.received.length, na, 'ns-a (egress ./*) is not pushed');
  // Not planned and compared equal, but not offered at all: a VirtualService cannot change ns-b's clusters or
  // listeners here, and the endpoint change reaches them only through EDS.
  assert.equal(await lookups('cds'), cdsBefore, 'no CDS planned');
  assert.equal(await lookups('lds'), ldsBefore, 'no LDS planned');
});
