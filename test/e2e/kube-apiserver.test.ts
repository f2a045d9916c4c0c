/**
 * meshpilot against a REAL Kubernetes API server (kube-apiserver built from k8s.io/kubernetes + Debian's etcd, by
 * scripts/install-kube-apiserver.sh), with kubectl as the writer and @grpc/grpc-js-xds as the xDS client:
 * sync (including Istio CRDs installed and not installed), watch updates moving RPCs, /ready, and the leader Lease
 * written through the real coordination.k8s.io API. Skips, saying why, where the server cannot be installed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { startGrpcBackend, setXdsBootstrap, tally, eventually, type GrpcBackend } from '../helpers/grpc-backend.js';
import { startRealApiServer, realApiServerMissing, type RealApiServer } from '../helpers/kube-apiserver.js';

/** The API server refuses loopback endpoint addresses: backends are reached through this host's own address. */
const HOST_IP = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
const missing = realApiServerMissing() ?? (HOST_IP ? undefined : 'no non-loopback IPv4 address for endpoints');
const forwarders: net.Server[] = [];
const sockets = new Set<net.Socket>();

/** A TCP forwarder HOST_IP:port → 127.0.0.1:backendPort (the test backends listen on loopback). */
async function forward(backendPort: number): Promise<number> {
  const srv = net.createServer((sock) => {
    const up = net.connect(backendPort, '127.0.0.1');
    for (const x of [sock, up]) { sockets.add(x); x.on('close', () => sockets.delete(x)); }
    sock.pipe(up).pipe(sock);
    sock.on('error', () => up.destroy());
    up.on('error', () => sock.destroy());
  });
  forwarders.push(srv);
  await new Promise<void>((r) => srv.listen(0, HOST_IP, () => r()));
  return (srv.address() as net.AddressInfo).port;
}
let aPort = 0, bPort = 0;
const TARGET = 'xds:///reviews.default.svc.cluster.local:9080';
let kube: RealApiServer;
let mesh: TestMesh;
let a: GrpcBackend, b: GrpcBackend;
let client: grpc.Client;

function crd(group: string, kind: string, plural: string): Record<string, any> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${plural}.${group}` },
    spec: {
      group, scope: 'Namespaced', names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

async function backendPod(name: string, port: number, ready: boolean): Promise<void> {
  await kube.apply({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: 'reviews' } },
    spec: { serviceAccountName: 'default', containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'grpc', containerPort: port }] }] },
  });
  // What the kubelet would report.
  await kube.setPodStatus('default', name, { phase: 'Running', podIP: HOST_IP, podIPs: [{ ip: HOST_IP }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] });
}

/** What the EndpointSlice controller would publish (one slice per backend: they share one address). */
async function backendSlice(name: string, port: number, ready: boolean): Promise<void> {
  await kube.apply({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': 'reviews' } },
    addressType: 'IPv4', ports: [{ name: 'grpc', port, protocol: 'TCP' }],
    endpoints: [{ addresses: [HOST_IP], conditions: { ready }, targetRef: { kind: 'Pod', name, namespace: 'default' } }],
  });
}

const seen = async (n = 30): Promise<Set<string>> => new Set((await tally(client, n)).keys());

before(async () => {
  if (missing) return;
  [a, b] = await Promise.all([startGrpcBackend('a'), startGrpcBackend('b')]);
  [aPort, bPort] = [await forward(a.port), await forward(b.port)];
  kube = await startRealApiServer();
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system', labels: { 'topology.istio.io/network': 'net-1' } } });
  await kube.apply(crd('networking.istio.io', 'VirtualService', 'virtualservices'));
  await kube.apply(crd('networking.istio.io', 'DestinationRule', 'destinationrules'));
  await kube.kubectl(['wait', '--for=condition=Established', 'crd/virtualservices.networking.istio.io', 'crd/destinationrules.networking.istio.io', '--timeout=30s']);
  await kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'grpc', port: 9080 }] } });
  await backendPod('reviews-a', aPort, true);
  await backendPod('reviews-b', bPort, true);
  await backendSlice('reviews-a', aPort, true);
  await backendSlice('reviews-b', bPort, true);
  await kube.apply({
    apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' },
    spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] },
  });
  mesh = await startMeshpilot({}, { kube: { kubeconfigs: [{ path: kube.kubeconfigPath }], reflector: { backoffInitialMs: 50, backoffMaxMs: 1000 } } });
  await eventually(async () => mesh.server.isReady(), 30_000);
  await mesh.settle();
  setXdsBootstrap(mesh.xdsAddress);
  grpcXds.register();
  client = new grpc.Client(TARGET, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await mesh?.stop();
  await kube?.stop();
  for (const f of forwarders) f.close();
  for (const x of sockets) x.destroy();
  await Promise.all([a, b].map((x) => x?.close()));
});

test('syncs Services, Pods, EndpointSlices, Namespaces and installed Istio CRDs from a real API server', { skip: missing }, async () => {
  const st = mesh.server.kube!.status();
  assert.equal(st.ready, true);
  const c = st.clusters[0]!;
  assert.equal(c.state, 'synced');
  assert.equal(c.network, 'net-1', 'network from the system namespace label');
  const absent = c.informers.filter((i) => i.absent).map((i) => i.kind).sort();
  assert.ok(absent.includes('Gateway') && absent.includes('AuthorizationPolicy'), `kinds without a CRD sync as empty: ${absent}`);
  assert.ok(!absent.includes('VirtualService'));
  const ctx = mesh.server.engine.pushContext.data;
  const reviews = ctx.services.find((s) => s.hostname === 'reviews.default.svc.cluster.local')!;
  assert.match(reviews.address ?? '', /^10\.96\./, 'ClusterIP allocated by the API server');
  assert.ok(ctx.services.some((s) => s.hostname === 'kubernetes.default.svc.cluster.local'), 'the API server\'s own Service');
  assert.deepEqual(ctx.virtualServices.map((v) => `${v.namespace}/${v.name}`), ['default/reviews']);
  assert.deepEqual(ctx.endpoints['reviews.default.svc.cluster.local']!.map((e) => e.workloadName).sort(), ['reviews-a', 'reviews-b']);
});

test('kubectl edits move RPCs: endpoint unready, ready again, removed, added back', { skip: missing }, async () => {
  await eventually(async () => (await seen()).size === 2, 10_000);
  await backendSlice('reviews-b', bPort, false);
  await eventually(async () => { const s = await seen(10); return s.size === 1 && s.has('a'); }, 10_000);
  // b ready again before a goes (never zero endpoints: grpc-js-xds then arms a 15-minute priority deactivation
  // timer that would keep this test process alive).
  await backendSlice('reviews-b', bPort, true);
  await eventually(async () => (await seen()).size === 2, 10_000);
  await kube.delete('endpointslice', 'default', 'reviews-a');
  await eventually(async () => { const s = await seen(10); return s.size === 1 && s.has('b'); }, 10_000);
  await backendSlice('reviews-a', aPort, true);
  await eventually(async () => (await seen()).size === 2, 10_000);
});

test('leader election writes a Lease the real coordination.k8s.io API accepts', { skip: missing }, async () => {
  await eventually(async () => mesh.server.leader?.isLeader() === true, 10_000);
  const lease = JSON.parse(await kube.kubectl(['get', 'lease', 'meshpilot-leader', '-n', 'istio-system', '-o', 'json']));
  assert.equal(lease.spec.holderIdentity, mesh.server.leader!.identity);
  assert.ok(lease.spec.renewTime, 'renewTime (MicroTime) stored');
});

test('kube-apiserver restart: informers reconnect with backoff and the model ends equal to the server state', { skip: missing }, async (t) => {
  await kube.restart();
  // Written after the restart: the informers must resume (or re-list on 410 from the new watch cache).
  await backendSlice('reviews-b', bPort, false);
  await kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ratings', namespace: 'default' }, spec: { selector: { app: 'ratings' }, ports: [{ name: 'http', port: 9080 }] } });
  await eventually(async () => { const s = await seen(10); return s.size === 1 && s.has('a'); }, 20_000);
  await eventually(async () => mesh.server.engine.pushContext.data.services.some((s) => s.name === 'ratings'), 10_000);
  const server = JSON.parse(await kube.kubectl(['get', 'services,endpointslices,pods', '-A', '-o', 'json'])).items as any[];
  const data = mesh.server.engine.pushContext.data;
  assert.deepEqual(data.services.map((s) => `${s.namespace}/${s.name}`).sort(),
    server.filter((o) => o.kind === 'Service').map((o) => `${o.metadata.namespace}/${o.metadata.name}`).sort());
  const eps = data.endpoints['reviews.default.svc.cluster.local']!.map((e) => `${e.workloadName}:${e.port}:${e.healthy}`).sort();
  assert.deepEqual(eps, [`reviews-a:${aPort}:true`, `reviews-b:${bPort}:false`]);
  const informers = mesh.server.kube!.status().clusters[0]!.informers;
  t.diagnostic(`after restart: ${informers.map((i) => `${i.kind} watches=${i.stats.watches} lists=${i.stats.lists} gone=${i.stats.relistsAfterGone}`).join('; ')}`);
  assert.ok(informers.every((i) => i.synced));
});
