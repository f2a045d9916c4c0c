/** ADS state-of-the-world protocol over real gRPC: versions, nonces, ACK, NACK, stale nonces, node handling. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from '../../src/proto/type-urls.js';
import type { XdsConnection } from '../../src/xds/connection.js';

const NODE = (pod: string): string => `sidecar~10.1.0.1~${pod}.default~default.svc.cluster.local`;
let mesh: TestMesh;
const clients: AdsTestClient[] = [];

function client(pod: string, metadata: Record<string, unknown> = { NAMESPACE: 'default' }): AdsTestClient {
  const c = new AdsTestClient(mesh.xdsAddress, NODE(pod), metadata);
  clients.push(c);
  return c;
}

const drYaml = (lb: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ${lb}}}
`;

before(async () => {
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }, { ip: '10.0.0.2', port: 9080 }] }),
    'dr.yaml': drYaml('ROUND_ROBIN'),
  });
});

after(async () => {
  for (const c of clients) c.close();
  await mesh.stop();
});

test('CDS wildcard, then EDS by name: resources named as istiod names them', async () => {
  const c = client('a');
  c.send({ type_url: CLUSTER_TYPE });
  const cds = await c.next(CLUSTER_TYPE);
  const names = cds.resources.map((r) => r.name).sort();
  assert.deepEqual(names, ['BlackHoleCluster', 'InboundPassthroughCluster', 'PassthroughCluster', 'outbound|9080||reviews.default.svc.cluster.local']);
  assert.equal(cds.resources.find((r) => r.name.startsWith('outbound')).lb_policy, 'ROUND_ROBIN');
  assert.ok(cds.version_info.length > 0 && cds.nonce.length > 0);
  c.ack(cds);
  c.send({ type_url: ENDPOINT_TYPE, resource_names: ['outbound|9080||reviews.default.svc.cluster.local'] });
  const eds = await c.next(ENDPOINT_TYPE);
  assert.equal(eds.resources.length, 1);
  const addrs = eds.resources[0].endpoints.flatMap((l: any) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.address)).sort();
  assert.deepEqual(addrs, ['10.0.0.1', '10.0.0.2']);
  assert.equal(eds.resources[0].endpoints[0].load_balancing_weight.value, 2);
});

test('a NACK keeps the proxy on its last accepted version; other proxies still get updates', async () => {
  const bad = client('nacker');
  const good = client('acker');
  bad.send({ type_url: CLUSTER_TYPE });
  good.send({ type_url: CLUSTER_TYPE });
  const first = await bad.next(CLUSTER_TYPE);
  const goodFirst = await good.next(CLUSTER_TYPE);
  bad.ack(first);
  good.ack(goodFirst);

  const nBad = bad.received.length;
  const nGood = good.received.length;
  mesh.write('dr.yaml', drYaml('RANDOM'));
  const pushed = await bad.next(CLUSTER_TYPE, 3000, nBad);
  assert.notEqual(pushed.version_info, first.version_info);
  bad.nack(pushed, first.version_info, 'cluster outbound|9080||reviews: simulated rejection');
  const goodPushed = await good.next(CLUSTER_TYPE, 3000, nGood);
  assert.equal(goodPushed.resources.find((r) => r.name.startsWith('outbound')).lb_policy, 'RANDOM');
  good.ack(goodPushed);

  // No retry storm: the server does not resend after a NACK.
  assert.ok(await bad.quiet(CLUSTER_TYPE, 300), 'no resend after NACK');
  const con = [...mesh.server.ads.connections].find((x) => x.proxy.id === NODE('nacker')) as XdsConnection;
  const w = con.watches.get(CLUSTER_TYPE)!;
  assert.equal(w.versionAcked, first.version_info, 'server records the last version the proxy accepted');
  assert.match(w.nackError ?? '', /simulated rejection/);
  const goodCon = [...mesh.server.ads.connections].find((x) => x.proxy.id === NODE('acker')) as XdsConnection;
  assert.equal(goodCon.watches.get(CLUSTER_TYPE)!.versionAcked, goodPushed.version_info);

  // The next config change reaches the NACKing proxy again.
  const n2 = bad.received.length;
  mesh.write('dr.yaml', drYaml('LEAST_REQUEST'));
  const again = await bad.next(CLUSTER_TYPE, 3000, n2);
  assert.equal(again.resources.find((r) => r.name.startsWith('outbound')).lb_policy, 'LEAST_REQUEST');
});

test('an ACK with a stale nonce is ignored; an unchanged config pushes nothing', async () => {
  const c = client('stale');
  c.send({ type_url: CLUSTER_TYPE });
  const r1 = await c.next(CLUSTER_TYPE);
  c.ack(r1);
  c.send({ type_url: CLUSTER_TYPE, version_info: r1.version_info, response_nonce: 'not-a-nonce-we-sent' });
  assert.ok(await c.quiet(CLUSTER_TYPE, 300));
  // Rewriting a file with identical content is no observable change.
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }, { ip: '10.0.0.2', port: 9080 }] }));
  await mesh.settle();
  assert.ok(await c.quiet(CLUSTER_TYPE, 300));
});

test('proxyless gRPC clients get only what they name; LDS is an ApiListener', async () => {
  const c = client('grpc-client', { NAMESPACE: 'default', GENERATOR: 'grpc' });
  c.send({ type_url: LISTENER_TYPE, resource_names: ['reviews.default.svc.cluster.local:9080'] });
  const lds = await c.next(LISTENER_TYPE);
  assert.deepEqual(lds.resources.map((r) => r.name), ['reviews.default.svc.cluster.local:9080']);
  assert.equal(lds.resources[0].api_listener.api_listener.rds.route_config_name, 'reviews.default.svc.cluster.local:9080');
  c.ack(lds, ['reviews.default.svc.cluster.local:9080']);
  c.send({ type_url: CLUSTER_TYPE, resource_names: ['outbound|9080||reviews.default.svc.cluster.local'] });
  const cds = await c.next(CLUSTER_TYPE);
  assert.deepEqual(cds.resources.map((r) => r.name), ['outbound|9080||reviews.default.svc.cluster.local']);
  assert.equal(cds.resources[0].lb_policy, 'ROUND_ROBIN');
});

test('a stream whose first request has no valid node ID is refused with INVALID_ARGUMENT', async () => {
  const c = new AdsTestClient(mesh.xdsAddress, 'not-an-istio-node-id');
  clients.push(c);
  c.send({ type_url: CLUSTER_TYPE });
  await assert.rejects(c.next(CLUSTER_TYPE), (e: any) => e.code === 3 && /expected 4 parts/.test(e.details));
});
