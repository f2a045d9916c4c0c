/**
 * Proxyless gRPC through meshpilot: @grpc/grpc-js-xds (a real xDS client) resolves xds:///HOST:PORT via our LDS,
 * RDS, CDS and EDS and sends RPCs to real gRPC servers on loopback; YAML edits move the traffic.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startGrpcBackend, setXdsBootstrap, tally, eventually, type GrpcBackend } from '../helpers/grpc-backend.js';

const TARGET = 'xds:///reviews.default.svc.cluster.local:9080';
let mesh: TestMesh;
let a: GrpcBackend, b: GrpcBackend, c: GrpcBackend;
let client: grpc.Client;

before(async () => {
  [a, b, c] = await Promise.all([startGrpcBackend('a'), startGrpcBackend('b'), startGrpcBackend('c')]);
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, portName: 'grpc', endpoints: [{ port: a.port }, { port: b.port }] }),
  });
  setXdsBootstrap(mesh.xdsAddress);
  grpcXds.register();
  client = new grpc.Client(TARGET, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await mesh?.stop();
  await Promise.all([a, b, c].map((x) => x?.close()));
});

test('RPCs through xds:/// reach both endpoints from EDS', async () => {
  const counts = await tally(client, 40);
  assert.equal((counts.get('a') ?? 0) + (counts.get('b') ?? 0), 40, `all calls succeed: ${JSON.stringify([...counts])}`);
  assert.ok((counts.get('a') ?? 0) >= 10 && (counts.get('b') ?? 0) >= 10, `round robin spreads calls: ${JSON.stringify([...counts])}`);
});

test('removing an endpoint in YAML moves RPCs within about a second', async () => {
  const t0 = Date.now();
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, portName: 'grpc', endpoints: [{ port: b.port }] }));
  await eventually(async () => {
    const counts = await tally(client, 10);
    return counts.get('b') === 10;
  }, 3000);
  const took = Date.now() - t0;
  assert.ok(took < 1500, `traffic moved in ${took} ms`);
  const after = await tally(client, 20);
  assert.deepEqual([...after], [['b', 20]]);
});

test('adding an endpoint and changing the endpoint port move RPCs without a restart', async () => {
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, portName: 'grpc', endpoints: [{ port: b.port }, { port: c.port }] }));
  await eventually(async () => ((await tally(client, 10)).get('c') ?? 0) > 0, 3000);
  // Point the only endpoint at c's port: b must stop receiving calls.
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9080, portName: 'grpc', endpoints: [{ port: c.port }] }));
  await eventually(async () => (await tally(client, 10)).get('c') === 10, 3000);
  const counts = await tally(client, 20);
  assert.deepEqual([...counts], [['c', 20]]);
});

test('changing the service port: the old target stops resolving, the new one routes', async () => {
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9090, portName: 'grpc', endpoints: [{ port: a.port }] }));
  const client2 = new grpc.Client('xds:///reviews.default.svc.cluster.local:9090', grpc.credentials.createInsecure());
  try {
    await eventually(async () => (await tally(client2, 5)).get('a') === 5, 3000);
    await eventually(async () => ((await tally(client, 3)).get('a') ?? 0) === 0, 5000);
  } finally {
    client2.close();
  }
});
