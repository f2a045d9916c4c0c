/**
 * istiod's push decision over real gRPC: an endpoint-only change skips the PushContext rebuild and sends only the
 * changed ClusterLoadAssignments, only to proxies that watch them; a change nothing can observe pushes nothing;
 * proxies with the same scope share one computation and receive identical bytes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';

let mesh: TestMesh;
const clients: AdsTestClient[] = [];
const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
const RATINGS = 'outbound|9080||ratings.default.svc.cluster.local';

before(async () => {
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }] }),
    'ratings.yaml': serviceYaml({ name: 'ratings', port: 9080, endpoints: [{ ip: '10.0.0.2', port: 9080 }] }),
  });
});
after(async () => { for (const c of clients) c.close(); await mesh.stop(); });

/** An Envoy-like client: wildcard CDS/LDS, EDS for the given clusters, ACKing everything. */
async function envoyLike(pod: string, eds: string[]): Promise<AdsTestClient> {
  const c = new AdsTestClient(mesh.xdsAddress, `sidecar~10.2.0.1~${pod}.default~default.svc.cluster.local`, { NAMESPACE: 'default' });
  clients.push(c);
  c.send({ type_url: CLUSTER_TYPE });
  c.ack(await c.next(CLUSTER_TYPE));
  c.send({ type_url: ENDPOINT_TYPE, resource_names: eds });
  c.ack(await c.next(ENDPOINT_TYPE), eds);
  c.send({ type_url: LISTENER_TYPE });
  c.ack(await c.next(LISTENER_TYPE));
  c.send({ type_url: ROUTE_TYPE, resource_names: ['9080'] });
  c.ack(await c.next(ROUTE_TYPE), ['9080']);
  return c;
}

test('an endpoint change: EDS only, only the changed assignment, only to proxies that watch it', async () => {
  const both = await envoyLike('both', [RATINGS, REVIEWS]);
  const onlyRatings = await envoyLike('ratings-only', [RATINGS]);
  const fullBefore = mesh.server.engine.stats.fullPushes;
  const initBefore = mesh.server.engine.stats.pushContextInitMs;
  const nBoth = both.received.length;
  const nOther = onlyRatings.received.length;

  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }, { ip: '10.0.0.3', port: 9080 }] }));
  const eds = await both.next(ENDPOINT_TYPE, 3000, nBoth);
  assert.deepEqual(eds.resources.map((r) => r.cluster_name), [REVIEWS], 'only the changed ClusterLoadAssignment');
  assert.equal(eds.resources[0].endpoints[0].lb_endpoints.length, 2);
  both.ack(eds, [RATINGS, REVIEWS]);
  await mesh.settle();
  assert.deepEqual(both.received.slice(nBoth).map((r) => r.type_url), [ENDPOINT_TYPE], 'no CDS/LDS/RDS');
  assert.equal(onlyRatings.received.length, nOther, 'a proxy not watching reviews gets nothing');
  assert.equal(mesh.server.engine.stats.fullPushes, fullBefore, 'no full push');
  assert.equal(mesh.server.engine.stats.pushContextInitMs, initBefore, 'no PushContext rebuild');
});

test('a change no proxy can observe pushes nothing', async () => {
  const c = await envoyLike('observer', [RATINGS, REVIEWS]);
  const noPushes = mesh.server.engine.stats.noPushes;
  const n = c.received.length;
  // Same endpoints, rewritten with different formatting: an EndpointSlice event, but identical endpoints.
  mesh.write('ratings.yaml', serviceYaml({ name: 'ratings', port: 9080, endpoints: [{ ip: '10.0.0.2', port: 9080 }] }) + '\n# touched\n');
  await mesh.settle();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(c.received.length, n);
  assert.equal(mesh.server.engine.stats.noPushes, noPushes, 'identical content emits no event at all');

  // A pod label change that no selector or subset reads: the event arrives, the push decides there is nothing to send.
  const before = mesh.server.engine.stats.noPushes + mesh.server.engine.stats.edsPushes;
  mesh.write('ratings.yaml', serviceYaml({ name: 'ratings', port: 9080, endpoints: [{ ip: '10.0.0.2', port: 9080, labels: { team: 'x' } }] }));
  await mesh.settle();
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(mesh.server.engine.stats.noPushes + mesh.server.engine.stats.edsPushes > before, 'the event was processed');
  assert.deepEqual(c.received.slice(n).map((r) => r.type_url).filter((t) => t !== ENDPOINT_TYPE), [], 'no config types resent');
});

test('a config change is a full push; proxies of one scope share one computation and identical bytes', async () => {
  const a = await envoyLike('share-a', [REVIEWS]);
  const b = await envoyLike('share-b', [REVIEWS]);
  const generatedBefore = mesh.server.engine.stats.generated;
  const na = a.received.length, nb = b.received.length;
  mesh.write('dr.yaml', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
`);
  const ca = await a.next(CLUSTER_TYPE, 3000, na);
  const cb = await b.next(CLUSTER_TYPE, 3000, nb);
  assert.equal(ca.version_info, cb.version_info);
  assert.equal(ca.resources.find((r) => r.name === REVIEWS).lb_policy, 'RANDOM');
  // Only the reviews cluster (and nothing else) was regenerated, once, for both proxies.
  await mesh.settle();
  const generated = mesh.server.engine.stats.generated - generatedBefore;
  assert.ok(generated >= 1 && generated <= 3, `regenerated ${generated} resources (the changed cluster; its EDS/route inputs)`);
});
