/**
 * Locality load balancing through a real proxyless gRPC client (@grpc/grpc-js-xds), as istio
 * pilot/pkg/networking/core/loadbalancer/loadbalancer.go: localityLbSetting.distribute sets locality weights;
 * outlierDetection turns on failover priorities by proximity to the client's own locality (its pod, IP 10.0.0.99,
 * region-a). Its own file: one xDS client per process, and no ring-hash history from other tests in the client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { eventually, setXdsBootstrap, startGrpcBackend, tally, type GrpcBackend } from '../helpers/grpc-backend.js';

const HOST = 'echo.default.svc.cluster.local';
const PORT = 7070;
let mesh: TestMesh;
let v1: GrpcBackend, v2: GrpcBackend, v3: GrpcBackend;
let client: grpc.Client;
let v1Closed = false;

function vs(http: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
${http}`;
}

function pct(counts: Map<string, number>, k: string, n: number): number {
  return ((counts.get(k) ?? 0) * 100) / n;
}

before(async () => {
  [v1, v2, v3] = await Promise.all([startGrpcBackend('v1'), startGrpcBackend('v2'), startGrpcBackend('v3')]);
  mesh = await startMeshpilot({});
  setXdsBootstrap(mesh.xdsAddress, { ip: '10.0.0.99' });
  grpcXds.register();
  client = new grpc.Client(`xds:///${HOST}:${PORT}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await mesh?.stop();
  await Promise.all([v2, v3, ...(v1Closed ? [] : [v1])].map((b) => b?.close()));
});

test('locality load balancing: distribute splits by weight; failover priorities keep traffic local until it is down', async () => {
  // Order matters for the client: grpc-js-xds 1.14.1's priority balancer arms a 15-minute timer that is never
  // unref'd or cleared when a priority disappears, which would keep this process alive. So priorities only grow
  // here (distribute: one priority → failover: two), and failover is shown by the local endpoint going down.
  const region = (r: string): Record<string, string> => ({ 'topology.kubernetes.io/region': r });
  mesh.write('client.yaml', `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client, topology.kubernetes.io/region: region-a}}
spec: {containers: [{name: c, image: c}]}
status: {phase: Running, podIP: 10.0.0.99}
`);
  mesh.write('echo.yaml', serviceYaml({
    name: 'echo', port: PORT, portName: 'grpc',
    endpoints: [{ port: v1.port, labels: region('region-a') }, { port: v2.port, labels: region('region-b') }, { port: v3.port, labels: region('region-b') }],
  }));
  mesh.write('vs.yaml', vs(`  - route:
    - destination: {host: echo}
`));
  const drWith = (tp: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  trafficPolicy:
${tp}`;
  // distribute: 25% to region-a, 75% to region-b.
  mesh.write('dr.yaml', drWith(`    loadBalancer:
      localityLbSetting:
        distribute:
        - from: "region-a/*"
          to: {"region-a/*": 25, "region-b/*": 75}
`));
  await eventually(async () => ((await tally(client, 40)).get('v2') ?? 0) > 0, 5000);
  const n = 1000;
  const counts = await tally(client, n);
  assert.ok(Math.abs(pct(counts, 'v1', n) - 25) <= 5, `region-a share ${pct(counts, 'v1', n)}% (want 25±5): ${JSON.stringify([...counts])}`);

  // Outlier detection turns on locality failover (mesh localityLbSetting is enabled by default): region-a first.
  mesh.write('dr.yaml', drWith('    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}\n'));
  await eventually(async () => (await tally(client, 30)).get('v1') === 30, 5000);
  assert.deepEqual([...(await tally(client, 100))], [['v1', 100]], 'all traffic stays in the local region');

  // The local endpoint goes down: the client fails over to the next priority (region-b).
  await Promise.race([v1.close(), new Promise((r) => setTimeout(r, 2000))]);
  v1Closed = true;
  await eventually(async () => ((await tally(client, 20)).get('v1') ?? 0) === 0, 10000);
  const failed = await tally(client, 60);
  assert.equal((failed.get('v2') ?? 0) + (failed.get('v3') ?? 0), 60, `failover to region-b: ${JSON.stringify([...failed])}`);
});
