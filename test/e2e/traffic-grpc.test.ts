/**
 * Traffic management through a real proxyless gRPC client (@grpc/grpc-js-xds) and real gRPC backends on loopback.
 * Expectations follow Istio's traffic-management docs and route.go / retry.go / cluster_traffic_policy.go:
 * weighted destinations, header-matched subsets, fault abort/delay (HTTPFault per route), retries
 * (retryOn/attempts), consistent hash (RING_HASH + route hash policy on a header), and a config change moving
 * traffic within a second (locality load balancing: traffic-locality.test.ts). One file = one xDS client node (grpc-js-xds reads its bootstrap once per process).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { callWho, eventually, setXdsBootstrap, startGrpcBackend, tally, type GrpcBackend } from '../helpers/grpc-backend.js';

const HOST = 'echo.default.svc.cluster.local';
const PORT = 7070;
let mesh: TestMesh;
let v1: GrpcBackend, v2: GrpcBackend, v3: GrpcBackend, flaky: GrpcBackend;
let client: grpc.Client;

const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: flaky, labels: {version: flaky}}
`;

function vs(http: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
${http}`;
}

const weighted = (a: number, b: number): string => vs(`  - match:
    - headers: {x-canary: {exact: "yes"}}
    route:
    - destination: {host: echo, subset: v3}
  - route:
    - destination: {host: echo, subset: v1}
      weight: ${a}
    - destination: {host: echo, subset: v2}
      weight: ${b}
`);

function md(pairs: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) m.set(k, v);
  return m;
}

function pct(counts: Map<string, number>, k: string, n: number): number {
  return ((counts.get(k) ?? 0) * 100) / n;
}

before(async () => {
  let flakyCalls = 0;
  [v1, v2, v3] = await Promise.all([startGrpcBackend('v1'), startGrpcBackend('v2'), startGrpcBackend('v3')]);
  // Fails every other call with UNAVAILABLE.
  flaky = await startGrpcBackend('flaky', { failWith: () => (++flakyCalls % 2 === 0 ? grpc.status.UNAVAILABLE : undefined) });
  mesh = await startMeshpilot({
    'echo.yaml': serviceYaml({
      name: 'echo', port: PORT, portName: 'grpc',
      endpoints: [
        { port: v1.port, labels: { version: 'v1' } }, { port: v2.port, labels: { version: 'v2' } },
        { port: v3.port, labels: { version: 'v3' } }, { port: flaky.port, labels: { version: 'flaky' } },
      ],
    }),
    'dr.yaml': dr,
    'vs.yaml': weighted(80, 20),
  });
  setXdsBootstrap(mesh.xdsAddress);
  grpcXds.register();
  client = new grpc.Client(`xds:///${HOST}:${PORT}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await mesh?.stop();
  await Promise.all([v1, v2, v3, flaky].map((b) => b?.close()));
});

test('an 80/20 weighted split lands within ±3 points over 2,000 RPCs', async () => {
  await eventually(async () => ((await tally(client, 5)).get('v1') ?? 0) > 0, 10000);
  const n = 2000;
  const counts = await tally(client, n);
  assert.equal((counts.get('v1') ?? 0) + (counts.get('v2') ?? 0), n, `only v1 and v2 answer: ${JSON.stringify([...counts])}`);
  assert.ok(Math.abs(pct(counts, 'v1', n) - 80) <= 3, `v1 share ${pct(counts, 'v1', n)}%`);
  assert.ok(Math.abs(pct(counts, 'v2', n) - 20) <= 3, `v2 share ${pct(counts, 'v2', n)}%`);
});

test('a header match picks its subset', async () => {
  const counts = await tally(client, 50, md({ 'x-canary': 'yes' }));
  assert.deepEqual([...counts], [['v3', 50]]);
});

test('a weight change moves traffic within a second', async () => {
  const t0 = Date.now();
  mesh.write('vs.yaml', weighted(0, 100));
  await eventually(async () => (await tally(client, 10)).get('v2') === 10, 3000, 10);
  const took = Date.now() - t0;
  assert.ok(took < 1000, `moved in ${took} ms`);
  assert.deepEqual([...(await tally(client, 100))], [['v2', 100]]);
});

test('fault abort returns the configured gRPC status; fault delay adds the configured latency', async () => {
  mesh.write('vs.yaml', vs(`  - match:
    - headers: {x-fault: {exact: abort}}
    fault:
      abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}
    route:
    - destination: {host: echo, subset: v1}
  - match:
    - headers: {x-fault: {exact: delay}}
    fault:
      delay: {fixedDelay: 300ms, percentage: {value: 100}}
    route:
    - destination: {host: echo, subset: v1}
  - route:
    - destination: {host: echo, subset: v1}
`));
  await eventually(async () => (await tally(client, 3, md({ 'x-fault': 'abort' }))).get(`error:${grpc.status.RESOURCE_EXHAUSTED}`) === 3, 3000);
  const aborted = await tally(client, 20, md({ 'x-fault': 'abort' }));
  assert.deepEqual([...aborted], [[`error:${grpc.status.RESOURCE_EXHAUSTED}`, 20]]);
  assert.equal(v1.calls > 0, true);
  const before = v1.calls;
  await tally(client, 5, md({ 'x-fault': 'abort' }));
  assert.equal(v1.calls, before, 'aborted calls never reach the backend');

  const plain: number[] = [];
  const delayed: number[] = [];
  for (let i = 0; i < 5; i++) {
    let t = performance.now();
    assert.equal(await callWho(client), 'v1');
    plain.push(performance.now() - t);
    t = performance.now();
    assert.equal(await callWho(client, md({ 'x-fault': 'delay' })), 'v1');
    delayed.push(performance.now() - t);
  }
  const median = (l: number[]): number => [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;
  assert.ok(median(delayed) >= 290, `delayed calls take the fixed delay: ${delayed.map(Math.round)}`);
  assert.ok(median(plain) < 150, `other calls are not delayed: ${plain.map(Math.round)}`);
});

test('retries hide a backend that fails every other call', async () => {
  mesh.write('vs.yaml', vs(`  - route:
    - destination: {host: echo, subset: flaky}
`));
  await eventually(async () => ((await tally(client, 4)).get('flaky') ?? 0) > 0, 3000);
  const without = await tally(client, 40);
  assert.ok((without.get(`error:${grpc.status.UNAVAILABLE}`) ?? 0) >= 15, `without retries about half fail: ${JSON.stringify([...without])}`);

  mesh.write('vs.yaml', vs(`  - route:
    - destination: {host: echo, subset: flaky}
    retries: {attempts: 3, retryOn: unavailable}
`));
  await eventually(async () => (await tally(client, 20)).get('flaky') === 20, 3000);
  const withRetries = await tally(client, 100);
  assert.deepEqual([...withRetries], [['flaky', 100]]);
});

test('ring hash keeps one key on one backend and spreads keys over backends', async () => {
  mesh.write('dr.yaml', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
  subsets:
  - {name: ab, labels: {tier: ab}}
`);
  mesh.write('echo.yaml', serviceYaml({
    name: 'echo', port: PORT, portName: 'grpc',
    endpoints: [{ port: v1.port, labels: { tier: 'ab' } }, { port: v2.port, labels: { tier: 'ab' } }, { port: v3.port, labels: { tier: 'ab' } }],
  }));
  mesh.write('vs.yaml', vs(`  - route:
    - destination: {host: echo, subset: ab}
`));
  // Round robin would alternate; ring hash pins each key.
  await eventually(async () => {
    const c = await tally(client, 12, md({ 'x-user': 'alice' }));
    return c.size === 1 && !([...c.keys()][0]!.startsWith('error'));
  }, 5000);
  const seen = new Set<string>();
  for (let u = 0; u < 30; u++) {
    const counts = await tally(client, 10, md({ 'x-user': `user-${u}` }));
    assert.equal(counts.size, 1, `user-${u} stays on one backend: ${JSON.stringify([...counts])}`);
    seen.add([...counts.keys()][0]!);
  }
  assert.ok(seen.size >= 2, `keys spread over backends: ${[...seen]}`);
});
