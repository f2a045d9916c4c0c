/**
 * Kubernetes multi-cluster end to end: meshpilot watches two API servers (the wire-protocol server in
 * test/helpers/fake-apiserver.ts, through the real @kubernetes/client-node) — the config cluster from
 * --kubeconfig, a remote one from an istio/multiCluster Secret — and a real xDS client (@grpc/grpc-js-xds) calls
 * real gRPC servers: one service name, endpoints from both clusters; the remote cluster's removal drops exactly
 * its endpoints; a watch dropped mid-stream loses no update; /ready waits for the informers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { startGrpcBackend, setXdsBootstrap, tally, eventually, type GrpcBackend } from '../helpers/grpc-backend.js';
import { FakeApiServer, svc, pod, slice, namespace } from '../helpers/fake-apiserver.js';
import { freePort } from '../helpers/ports.js';
import { MULTICLUSTER_SECRET_LABEL } from '../../src/sources/kube/multicluster.js';

const TARGET = 'xds:///reviews.default.svc.cluster.local:9080';
let mesh: TestMesh;
let meshStarted: Promise<TestMesh>;
let monitoringPort = 0;
let a: FakeApiServer, b: FakeApiServer;
let a1: GrpcBackend, a2: GrpcBackend, b1: GrpcBackend, b2: GrpcBackend;
let client: grpc.Client;

/** A pod and its one-endpoint slice (test backends share 127.0.0.1 and differ by port). */
function endpoint(api: FakeApiServer, name: string, port: number): void {
  api.apply(pod(name, 'default', '127.0.0.1', { app: 'reviews' }));
  api.apply(slice(name, 'default', 'reviews', 'grpc', port, [{ ip: '127.0.0.1', pod: name }]));
}

function getStatus(port: number, path: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

const seen = async (n = 30): Promise<Set<string>> => new Set((await tally(client, n)).keys());

before(async () => {
  [a1, a2, b1, b2] = await Promise.all(['a1', 'a2', 'b1', 'b2'].map((n) => startGrpcBackend(n)));
  a = await new FakeApiServer({ token: 'token-a' }).start();
  b = await new FakeApiServer({ token: 'token-b' }).start();
  for (const api of [a, b]) {
    api.apply(namespace('default'));
    api.apply(svc('reviews', 'default', [{ name: 'grpc', port: 9080 }]));
  }
  endpoint(a, 'a1', a1.port);
  endpoint(b, 'b1', b1.port);
  endpoint(b, 'b2', b2.port);
  a.unavailable = true; // the config cluster answers 503 until the first test lets it sync
  monitoringPort = await freePort();
  meshStarted = startMeshpilot({}, {
    clusterId: 'cluster-a', monitoringPort,
    kube: { kubeconfigs: [{ path: a.kubeconfigFile('cluster-a') }], reflector: { backoffInitialMs: 20, backoffMaxMs: 200 }, remoteClusterTimeoutMs: 2000 },
  });
  meshStarted.catch(() => undefined);
});

after(async () => {
  client?.close();
  await (mesh ?? await meshStarted.catch(() => undefined))?.stop();
  await Promise.all([a, b].map((x) => x?.stop()));
  await Promise.all([a1, a2, b1, b2].map((x) => x?.close()));
});

test('no xDS and /ready 503 until every informer of the config cluster has synced', async () => {
  // The server under start: its monitoring port is up, its xDS port is not (istiod waits for its caches too).
  const port = monitoringPort;
  await eventually(async () => (await getStatus(port, '/ready').catch(() => ({ code: 0 }))).code !== 0, 10_000);
  assert.equal((await getStatus(port, '/ready')).code, 503);
  const clusterzBefore = JSON.parse((await getStatus(port, '/debug/clusterz')).body);
  assert.notEqual(clusterzBefore.clusters[0].state, 'synced');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await Promise.race([meshStarted.then(() => 'started'), new Promise((r) => setTimeout(() => r('waiting'), 50))]), 'waiting', 'start() waits for the sync');
  a.unavailable = false;
  mesh = await meshStarted;
  assert.ok(mesh.server.xdsPort > 0);
  assert.equal((await getStatus(port, '/ready')).code, 200);
  setXdsBootstrap(mesh.xdsAddress);
  grpcXds.register();
  client = new grpc.Client(TARGET, grpc.credentials.createInsecure());
  const clusterz = JSON.parse((await getStatus(port, '/debug/clusterz')).body);
  assert.equal(clusterz.clusters[0].id, 'cluster-a');
  assert.equal(clusterz.clusters[0].state, 'synced');
  assert.ok(clusterz.clusters[0].informers.every((i: any) => i.synced), 'every informer synced');
  await eventually(async () => (await seen(10)).has('a1'), 5000);
});

test('a remote cluster from an istio/multiCluster Secret: one hostname, endpoints from both clusters', async () => {
  a.apply({
    apiVersion: 'v1', kind: 'Secret',
    metadata: { name: 'istio-remote-secret-cluster-b', namespace: 'istio-system', labels: { [MULTICLUSTER_SECRET_LABEL]: 'true' } },
    data: { 'cluster-b': Buffer.from(b.kubeconfig('cluster-b')).toString('base64') },
  });
  await eventually(async () => (await seen()).size === 3, 8000);
  const counts = await tally(client, 60);
  assert.deepEqual([...counts.keys()].sort(), ['a1', 'b1', 'b2'], `calls reach both clusters: ${JSON.stringify([...counts])}`);
  const eps = mesh.server.engine.pushContext.data.endpoints['reviews.default.svc.cluster.local']!;
  assert.deepEqual(eps.map((e) => e.clusterId).sort(), ['cluster-a', 'cluster-b', 'cluster-b']);
  assert.equal(mesh.server.engine.pushContext.data.services.filter((s) => s.name === 'reviews').length, 1, 'services merge by hostname');
});

test('a watch dropped mid-stream loses no update: the model ends equal to the server state', async () => {
  // Drop every watch on the config cluster, change its endpoints while no watch is open, then once more mid-way.
  a.dropWatches();
  endpoint(a, 'a2', a2.port);
  a.remove('Pod', 'default', 'a1');
  a.remove('EndpointSlice', 'default', 'a1');
  await eventually(async () => a.watcherCount('apis/discovery.k8s.io/v1/endpointslices') > 0, 5000);
  b.dropWatches();
  b.apply(slice('b2', 'default', 'reviews', 'grpc', b2.port, [{ ip: '127.0.0.1', pod: 'b2', ready: false }]));
  await eventually(async () => {
    const s = await seen();
    return s.has('a2') && !s.has('a1') && !s.has('b2') && s.has('b1');
  }, 8000);
  await mesh.settle();
  // The model matches both servers: a2 from cluster-a; b1 healthy and b2 unhealthy from cluster-b.
  const eps = mesh.server.engine.pushContext.data.endpoints['reviews.default.svc.cluster.local']!;
  const summary = eps.map((e) => `${e.clusterId}/${e.workloadName}/${e.port}/${e.healthy}`).sort();
  assert.deepEqual(summary, [`cluster-a/a2/${a2.port}/true`, `cluster-b/b1/${b1.port}/true`, `cluster-b/b2/${b2.port}/false`]);
});

test('removing the remote cluster drops only its endpoints', async () => {
  b.apply(slice('b2', 'default', 'reviews', 'grpc', b2.port, [{ ip: '127.0.0.1', pod: 'b2' }]));
  await eventually(async () => (await seen()).has('b2'), 5000);
  a.remove('Secret', 'istio-system', 'istio-remote-secret-cluster-b');
  await eventually(async () => {
    const s = await seen(20);
    return s.size === 1 && s.has('a2');
  }, 8000);
  const eps = mesh.server.engine.pushContext.data.endpoints['reviews.default.svc.cluster.local']!;
  assert.deepEqual(eps.map((e) => e.clusterId), ['cluster-a']);
  assert.equal(b.watcherCount(), 0, 'the removed cluster is no longer watched');
});
