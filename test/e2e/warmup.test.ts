/**
 * Warm-up (PushEngine.warmUp): before the xDS port opens, the server generates what every sidecar of each namespace
 * shares — outbound clusters, load assignments, outbound listeners, routes — and then each selector service's
 * inbound side, so proxies connecting after a restart are served from the resource cache. Over real gRPC.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';

const FILES = {
  'alpha.yaml': serviceYaml({ name: 'alpha', namespace: 'ns-a', port: 9080, endpoints: [{ ip: '10.0.1.1', port: 9080 }] }),
  'beta.yaml': serviceYaml({ name: 'beta', namespace: 'ns-b', port: 7070, endpoints: [{ ip: '10.0.2.1', port: 7070 }] }),
};

const meshes: TestMesh[] = [];
const clients: AdsTestClient[] = [];
after(async () => { for (const c of clients) c.close(); for (const m of meshes) await m.stop(); });

/** A labelled sidecar of alpha's workload: all four types, as Envoy asks for them; returns what each response held. */
async function connect(mesh: TestMesh): Promise<Record<string, string[]>> {
  const c = new AdsTestClient(mesh.xdsAddress, 'sidecar~10.0.1.1~alpha-0.ns-a~ns-a.svc.cluster.local',
    { NAMESPACE: 'ns-a', LABELS: { app: 'alpha', 'security.istio.io/tlsMode': 'istio' } });
  clients.push(c);
  const got: Record<string, string[]> = {};
  c.send({ type_url: CLUSTER_TYPE });
  const cds = await c.next(CLUSTER_TYPE);
  c.ack(cds);
  got.cds = cds.resources.map((r) => r.name);
  const eds = got.cds.filter((n) => n.startsWith('outbound|'));
  c.send({ type_url: ENDPOINT_TYPE, resource_names: eds });
  c.ack(await c.next(ENDPOINT_TYPE), eds);
  c.send({ type_url: LISTENER_TYPE });
  const lds = await c.next(LISTENER_TYPE);
  c.ack(lds);
  got.lds = lds.resources.map((r) => r.name);
  c.send({ type_url: ROUTE_TYPE, resource_names: ['9080', '7070'] });
  const rds = await c.next(ROUTE_TYPE);
  c.ack(rds, ['9080', '7070']);
  got.rds = rds.resources.map((r) => r.name);
  return got;
}

/** The first test's warm-up (plaintext port only), compared with both ports' in the last test. */
let plainWarmup: TestMesh['server']['warmup'];

test('the config is generated before the port opens: a service\'s sidecar connecting first generates nothing', async () => {
  const mesh = await startMeshpilot(FILES);
  meshes.push(mesh);
  plainWarmup = mesh.server.warmup;
  const atStart = mesh.server.engine.stats.generated;
  // Per namespace: two outbound clusters and their load assignments, BlackHole, Passthrough, InboundPassthrough,
  // outbound listeners and two route configurations (each resource once across namespaces when their keys agree).
  assert.ok(atStart >= 10, `${atStart} resources generated before any proxy connected`);
  const got = await connect(mesh);
  assert.ok(got.cds!.includes('outbound|9080||alpha.ns-a.svc.cluster.local') && got.cds!.includes('inbound|9080||'));
  assert.deepEqual(got.rds!.sort(), ['7070', '9080']);
  // Its inbound side (inbound cluster, virtualInbound listener) came from the warm-up of alpha's selector.
  assert.equal(mesh.server.engine.stats.generated - atStart, 0, 'every resource was in the cache');
});

test('--warmup-budget 0: nothing before the first proxy, which then generates everything it gets', async () => {
  const mesh = await startMeshpilot(FILES, { warmupBudgetMs: 0 });
  meshes.push(mesh);
  assert.equal(mesh.server.engine.stats.generated, 0);
  const got = await connect(mesh);
  const total = got.cds!.length + got.lds!.length + got.rds!.length;
  assert.ok(mesh.server.engine.stats.generated >= total, `${mesh.server.engine.stats.generated} generated for ${total} CDS/LDS/RDS resources`);
});

test('with the secure port open, sidecars with SDS-backed TLS are warmed too', async () => {
  const mesh = await startMeshpilot(FILES, { secureXdsPort: 0 });
  meshes.push(mesh);
  const plain = plainWarmup!;
  const both = mesh.server.warmup!;
  assert.deepEqual([plain.of, plain.namespaces, plain.workloads], [2, 2, 2], 'plaintext only: two namespaces, two services');
  assert.deepEqual([both.of, both.namespaces, both.workloads], [4, 4, 4], 'both ports: each twice');
  assert.ok(both.resources > plain.resources, `${both.resources} resources (SDS-backed inbound listeners too) vs ${plain.resources}`);
});
