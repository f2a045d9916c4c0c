/**
 * Delta (incremental) ADS with Envoy's semantics, over real gRPC: wildcard, initial_resource_versions on
 * reconnect, per-resource versions, removed_resources, explicit subscribe/unsubscribe, NACK; and a real Envoy
 * speaking DELTA_GRPC routes HTTP through meshpilot's config.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { DeltaTestClient } from '../helpers/ads-client.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats } from '../helpers/envoy.js';
import { startHttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { eventually } from '../helpers/grpc-backend.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/proto/type-urls.js';

let mesh: TestMesh;
const clients: DeltaTestClient[] = [];
const NODE = (pod: string): string => `sidecar~10.1.0.1~${pod}.default~default.svc.cluster.local`;
const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
const RATINGS = 'outbound|9080||ratings.default.svc.cluster.local';

function client(pod: string): DeltaTestClient {
  const c = new DeltaTestClient(mesh.xdsAddress, NODE(pod), { NAMESPACE: 'default' });
  clients.push(c);
  return c;
}

before(async () => {
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }] }),
    'ratings.yaml': serviceYaml({ name: 'ratings', port: 9080, endpoints: [{ ip: '10.0.0.2', port: 9080 }] }),
  });
});

after(async () => {
  for (const c of clients) c.close();
  await mesh.stop();
});

test('wildcard CDS: all clusters with per-resource versions; only changes afterwards; removals named', async () => {
  const c = client('a');
  c.send({ type_url: CLUSTER_TYPE });
  const first = await c.next(CLUSTER_TYPE);
  const names = first.resources.map((r) => r.name).sort();
  assert.ok(names.includes(REVIEWS) && names.includes(RATINGS) && names.includes('PassthroughCluster'));
  assert.ok(first.resources.every((r) => r.version.length > 0));
  assert.equal(first.resources.find((r) => r.name === REVIEWS)!.resource.name, REVIEWS);
  c.ack(first);

  // Changing one service sends that service's cluster only.
  let n = c.received.length;
  mesh.write('ratings.yaml', serviceYaml({ name: 'ratings', port: 9080, portName: 'http2', endpoints: [{ ip: '10.0.0.2', port: 9080 }] }));
  const changed = await c.next(CLUSTER_TYPE, 3000, n);
  assert.deepEqual(changed.resources.map((r) => r.name), [RATINGS]);
  assert.deepEqual(changed.removed_resources, []);
  c.ack(changed);

  // Deleting a service removes its cluster by name.
  n = c.received.length;
  mesh.remove('ratings.yaml');
  const removed = await c.next(CLUSTER_TYPE, 3000, n);
  assert.deepEqual(removed.resources, []);
  assert.deepEqual(removed.removed_resources, [RATINGS]);
  c.ack(removed);
  mesh.write('ratings.yaml', serviceYaml({ name: 'ratings', port: 9080, endpoints: [{ ip: '10.0.0.2', port: 9080 }] }));
  await mesh.settle();
});

test('reconnect with initial_resource_versions: unchanged resources are not resent, stale ones are', async () => {
  const c1 = client('b');
  c1.send({ type_url: CLUSTER_TYPE });
  const all = await c1.next(CLUSTER_TYPE);
  c1.ack(all);
  c1.close();
  const known: Record<string, string> = {};
  for (const r of all.resources) known[r.name] = r.version;
  known[REVIEWS] = 'an-old-version';
  known['outbound|9080||gone.default.svc.cluster.local'] = 'x';
  const c2 = client('b');
  c2.send({ type_url: CLUSTER_TYPE, initial_resource_versions: known });
  const resp = await c2.next(CLUSTER_TYPE);
  assert.deepEqual(resp.resources.map((r) => r.name), [REVIEWS], 'only the resource whose version differs');
  assert.deepEqual(resp.removed_resources, ['outbound|9080||gone.default.svc.cluster.local']);
});

test('explicit EDS subscribe/unsubscribe; endpoint changes reach subscribers only; NACK then recovery', async () => {
  const c = client('c');
  c.send({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [REVIEWS] });
  const eds = await c.next(ENDPOINT_TYPE);
  assert.deepEqual(eds.resources.map((r) => r.name), [REVIEWS]);
  c.ack(eds);
  let n = c.received.length;
  c.send({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [RATINGS] });
  const added = await c.next(ENDPOINT_TYPE, 3000, n);
  assert.deepEqual(added.resources.map((r) => r.name), [RATINGS], 'a new subscription gets just that resource');
  c.ack(added);
  c.send({ type_url: ENDPOINT_TYPE, resource_names_unsubscribe: [RATINGS] });

  // An endpoint change to ratings (no longer subscribed) sends nothing; one to reviews sends reviews only.
  n = c.received.length;
  mesh.write('ratings.yaml', serviceYaml({ name: 'ratings', port: 9080, endpoints: [{ ip: '10.0.0.9', port: 9080 }] }));
  await mesh.settle();
  assert.ok(await c.quiet(ENDPOINT_TYPE, 200));
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.7', port: 9080 }] }));
  const upd = await c.next(ENDPOINT_TYPE, 3000, n);
  assert.deepEqual(upd.resources.map((r) => r.name), [REVIEWS]);
  const addr = upd.resources[0]!.resource.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address;
  assert.equal(addr, '10.0.0.7');
  // NACK it: the server must not resend, and must treat the client as still holding the old version.
  c.send({ type_url: ENDPOINT_TYPE, response_nonce: upd.nonce, error_detail: { code: 3, message: 'simulated' } });
  assert.ok(await c.quiet(ENDPOINT_TYPE, 300));
  n = c.received.length;
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.8', port: 9080 }] }));
  const again = await c.next(ENDPOINT_TYPE, 3000, n);
  assert.deepEqual(again.resources.map((r) => r.name), [REVIEWS]);
});

test('a real Envoy over DELTA_GRPC accepts the config and routes HTTP; endpoint changes move traffic', async () => {
  const [b1, b2] = await Promise.all([startHttpBackend('one'), startHttpBackend('two')]);
  const port = await freePort();
  mesh.write('web.yaml', serviceYaml({ name: 'web', port, endpoints: [{ port: b1.port }] }));
  await mesh.settle();
  const envoy = await startEnvoy({
    xdsPort: mesh.server.xdsPort, adsApiType: 'DELTA_GRPC',
    nodeId: 'sidecar~127.0.0.1~delta-envoy.default~default.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default' },
  });
  const get = (): Promise<string> => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'web.default.svc.cluster.local' }, agent: false }, (res) => {
      let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  try {
    await eventually(async () => { try { return (await get()) === 'one'; } catch { return false; } }, 10000);
    mesh.write('web.yaml', serviceYaml({ name: 'web', port, endpoints: [{ port: b2.port }] }));
    await eventually(async () => (await get()) === 'two', 5000);
    const dump = await envoy.configDump();
    assert.deepEqual(rejectedResources(dump), []);
    assert.deepEqual(rejectedUpdateStats(await envoy.stats()), {});
    const con = [...mesh.server.ads.connections].find((x) => x.proxy.id.includes('delta-envoy'))!;
    assert.equal(con.kind, 'delta');
  } finally {
    await envoy.stop();
    await Promise.all([b1.close(), b2.close()]);
  }
});
