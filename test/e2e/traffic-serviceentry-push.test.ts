/**
 * WorkloadEntry changes under a ServiceEntry, over real gRPC with a raw ADS client (Envoy-like: wildcard CDS, EDS by
 * name, every response ACKed). A DNS ServiceEntry's cluster is STRICT_DNS with its endpoints inline in CDS, so a
 * WorkloadEntry it selects moving to another address must push CDS — istiod's serviceentry controller makes that a
 * full push with the ServiceEntry in ConfigsUpdated (pilot/pkg/serviceregistry/serviceentry/controller.go,
 * WorkloadInstanceHandler, istio#39505). A STATIC ServiceEntry's cluster is EDS: the same edit stays EDS-only —
 * unless the moved endpoint brings a new service account: auto mTLS verifies the server's SPIFFE SAN against the
 * service's identities, which live in the cluster, so that change pushes CDS too (istiod makes it a full push:
 * pilot/pkg/model/endpointshards.go, UpdateServiceEndpoints).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient, type Response } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from '../../src/proto/type-urls.js';

const DNS_CLUSTER = 'outbound|5000||db.vm.internal';
const STATIC_CLUSTER = 'outbound|6000||cache.vm.internal';

function entries(dbAddress: string, cacheAddress: string, cacheServiceAccount = 'cache-a'): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.vm.internal]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{number: 5000, name: tcp-db, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-vm, namespace: default}
spec: {address: ${dbAddress}, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: default}
spec:
  hosts: [cache.vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 6000, name: tcp-cache, protocol: TCP}]
  workloadSelector: {labels: {app: cache}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cache-vm, namespace: default}
spec: {address: ${cacheAddress}, labels: {app: cache}, serviceAccount: ${cacheServiceAccount}}
`;
}

let mesh: TestMesh;
let client: AdsTestClient;

/** Addresses in a cluster's inline load_assignment (DNS) or in a ClusterLoadAssignment (EDS). */
function addresses(cla: any): string[] {
  return (cla?.endpoints ?? []).flatMap((l: any) => (l.lb_endpoints ?? []).map((e: any) => e.endpoint.address.socket_address.address)).sort();
}

/** ACK every response as it arrives, as Envoy does, so the push engine's pacing never waits on us. */
function autoAck(c: AdsTestClient): () => void {
  let seen = c.received.length;
  let stopped = false;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 10));
      for (; seen < c.received.length; seen++) {
        const r: Response = c.received[seen]!;
        c.ack(r, r.type_url === ENDPOINT_TYPE ? [STATIC_CLUSTER] : undefined);
      }
    }
  };
  void loop();
  return () => { stopped = true; };
}

let stopAck: () => void;

before(async () => {
  mesh = await startMeshpilot({ 'vm.yaml': entries('db-1.example.test', '10.20.0.1') });
  client = new AdsTestClient(mesh.xdsAddress, 'sidecar~10.2.0.9~client-0.default~default.svc.cluster.local', { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE' });
  client.send({ type_url: CLUSTER_TYPE });
  const cds = await client.next(CLUSTER_TYPE);
  client.ack(cds);
  client.send({ type_url: ENDPOINT_TYPE, resource_names: [STATIC_CLUSTER] });
  client.ack(await client.next(ENDPOINT_TYPE), [STATIC_CLUSTER]);
  client.send({ type_url: LISTENER_TYPE });
  client.ack(await client.next(LISTENER_TYPE));
  stopAck = autoAck(client);
});

after(async () => { stopAck?.(); client?.close(); await mesh?.stop(); });

test('DNS ServiceEntry: moving its WorkloadEntry pushes the STRICT_DNS cluster with the new address within a second', async (t) => {
  const first = client.received.find((r) => r.type_url === CLUSTER_TYPE)!;
  const db0 = first.resources.find((c) => c.name === DNS_CLUSTER);
  assert.equal(db0.type, 'STRICT_DNS');
  assert.deepEqual(addresses(db0.load_assignment), ['db-1.example.test']);

  const n = client.received.length;
  const t0 = Date.now();
  mesh.write('vm.yaml', entries('db-2.example.test', '10.20.0.1'));
  const cds = await client.next(CLUSTER_TYPE, 3000, n);
  const ms = Date.now() - t0;
  const db1 = cds.resources.find((c) => c.name === DNS_CLUSTER);
  assert.deepEqual(addresses(db1.load_assignment), ['db-2.example.test'], 'the cluster carries the new address');
  t.diagnostic(`CDS with the new address ${ms} ms after the file write (50 ms test debounce)`);
  assert.ok(ms < 1000, `CDS arrived ${ms} ms after the edit`);
  await mesh.settle();
  const types = client.received.slice(n).map((r) => r.type_url);
  // EDS may follow CDS in the same push (Envoy re-warms EDS clusters after a CDS update); nothing else is resent.
  assert.deepEqual(types.filter((t) => t !== CLUSTER_TYPE && t !== ENDPOINT_TYPE), [], 'listeners are not resent');
});

test('STATIC ServiceEntry: moving its WorkloadEntry stays an EDS-only push', async () => {
  await mesh.settle();
  const n = client.received.length;
  const fullBefore = mesh.server.engine.stats.fullPushes;
  mesh.write('vm.yaml', entries('db-2.example.test', '10.20.0.2'));
  const eds = await client.next(ENDPOINT_TYPE, 3000, n);
  assert.deepEqual(eds.resources.map((r) => r.cluster_name), [STATIC_CLUSTER]);
  assert.deepEqual(addresses(eds.resources[0]), ['10.20.0.2']);
  await mesh.settle();
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(client.received.slice(n).map((r) => r.type_url), [ENDPOINT_TYPE], 'no CDS, no LDS');
  assert.equal(mesh.server.engine.stats.fullPushes, fullBefore, 'no full push');
});

test('a DNS ServiceEntry edit and a STATIC one together: CDS for the DNS cluster, EDS for the STATIC one', async () => {
  await mesh.settle();
  const n = client.received.length;
  mesh.write('vm.yaml', entries('db-3.example.test', '10.20.0.3'));
  const cds = await client.next(CLUSTER_TYPE, 3000, n);
  const eds = await client.next(ENDPOINT_TYPE, 3000, n);
  assert.deepEqual(addresses(cds.resources.find((c) => c.name === DNS_CLUSTER).load_assignment), ['db-3.example.test']);
  assert.deepEqual(addresses(eds.resources.find((r) => r.cluster_name === STATIC_CLUSTER)), ['10.20.0.3']);
});

/** The SPIFFE SANs a cluster's mTLS match verifies. */
function sans(cluster: unknown): string[] {
  return [...new Set(JSON.stringify(cluster).match(/spiffe:\/\/[^"]+/g) ?? [])].sort();
}

test('STATIC ServiceEntry: an endpoint with a new service account pushes the cluster with the new SAN', async () => {
  await mesh.settle();
  const cds0 = client.received.filter((r) => r.type_url === CLUSTER_TYPE).at(-1)!;
  assert.deepEqual(sans(cds0.resources.find((c) => c.name === STATIC_CLUSTER)), ['spiffe://cluster.local/ns/default/sa/cache-a']);
  const n = client.received.length;
  mesh.write('vm.yaml', entries('db-3.example.test', '10.20.0.4', 'cache-b'));
  const cds = await client.next(CLUSTER_TYPE, 3000, n);
  assert.deepEqual(sans(cds.resources.find((c) => c.name === STATIC_CLUSTER)), ['spiffe://cluster.local/ns/default/sa/cache-b'],
    'the client verifies the new identity');
  const eds = await client.next(ENDPOINT_TYPE, 3000, n);
  assert.deepEqual(addresses(eds.resources.find((r) => r.cluster_name === STATIC_CLUSTER)), ['10.20.0.4']);
  await mesh.settle();
  assert.deepEqual(client.received.slice(n).map((r) => r.type_url), [CLUSTER_TYPE, ENDPOINT_TYPE], 'no LDS');
});
