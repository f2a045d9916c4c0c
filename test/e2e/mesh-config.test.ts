/**
 * MeshConfig from a watched file (istiod's --meshConfig), over real ADS: editing the file to REGISTRY_ONLY moves a
 * connected sidecar's virtualOutbound catch-all to BlackHoleCluster; a mesh localityLbSetting reshapes the pushed
 * EDS locality weights; a bad mesh config (or a deleted file) is reported naming the field and the last good one
 * stays in force, with nothing pushed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { MeshpilotServer, defaultServerOptions } from '../../src/server.js';
import { AdsTestClient, type Response } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from '../../src/proto/type-urls.js';

const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
let mesh: TestMesh;
let meshDir: string;
let meshFile: string;
let client: AdsTestClient;
const logs: any[] = [];

function writeMesh(text: string): void {
  const tmp = path.join(meshDir, '.mesh.tmp');
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, meshFile);
}

async function debugMesh(): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${mesh.server.monitoringPort}/debug/mesh`);
  return r.json();
}

function catchAllCluster(lds: Response): string {
  const vo = lds.resources.find((l) => l.name === 'virtualOutbound');
  assert.ok(vo, 'virtualOutbound is pushed');
  // The catch-all chain (the first one, virtualOutbound-blackhole, guards port 15001 itself).
  const m = /"cluster":"([^"]+)"/.exec(JSON.stringify(vo.filter_chains.find((c: any) => c.name === 'virtualOutbound-catchall-tcp')));
  assert.ok(m, 'virtualOutbound has a tcp_proxy catch-all');
  return m![1]!;
}

function weights(eds: Response): Record<string, number> {
  const cla = eds.resources.find((r) => r.cluster_name === REVIEWS);
  return Object.fromEntries(cla.endpoints.map((e: any) => [e.locality?.region ?? '', e.load_balancing_weight?.value]));
}

before(async () => {
  meshDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-meshcfg-'));
  meshFile = path.join(meshDir, 'mesh.yaml');
  fs.writeFileSync(meshFile, 'connectTimeout: 5s\n');
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) logs.push(JSON.parse(l)); cb(); } });
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, clusterIP: '10.96.0.9', endpoints: [
      { ip: '10.1.0.1', port: 9080, labels: { 'topology.kubernetes.io/region': 'r1' } },
      { ip: '10.1.0.2', port: 9080, labels: { 'topology.kubernetes.io/region': 'r2' } },
    ] }),
    'client.yaml': `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client, topology.kubernetes.io/region: r1}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.1.0.7}
`,
  }, { meshConfigFile: meshFile, logger: pino({ level: 'info' }, sink) });
  client = new AdsTestClient(mesh.xdsAddress, 'sidecar~10.1.0.7~client.default~default.svc.cluster.local', { NAMESPACE: 'default' });
  client.send({ type_url: CLUSTER_TYPE });
  const cds = await client.next(CLUSTER_TYPE);
  client.ack(cds);
  assert.equal(cds.resources.find((c) => c.name === REVIEWS).connect_timeout.seconds, '5', 'connectTimeout from the mesh config at start');
  client.send({ type_url: ENDPOINT_TYPE, resource_names: [REVIEWS] });
  client.ack(await client.next(ENDPOINT_TYPE), [REVIEWS]);
  client.send({ type_url: LISTENER_TYPE });
  const lds = await client.next(LISTENER_TYPE);
  client.ack(lds);
  acked = client.received.length;
  assert.equal(catchAllCluster(lds), 'PassthroughCluster', 'ALLOW_ANY by default');
});

after(async () => {
  client?.close();
  await mesh?.stop();
  fs.rmSync(meshDir, { recursive: true, force: true });
});

let acked = 0;

/** ACK every response as an Envoy would (so the push's lanes never wait), until one of `type` matches `want`. */
async function pushed(type: string, want: (r: Response) => boolean = () => true, timeoutMs = 5000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    while (acked < client.received.length) {
      const r = client.received[acked++]!;
      client.ack(r, r.type_url === ENDPOINT_TYPE ? [REVIEWS] : undefined);
      if (r.type_url === type && want(r)) return r;
    }
    if (Date.now() > deadline) throw new Error(`no ${type} push matching in ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

test('editing the mesh file to REGISTRY_ONLY moves the connected sidecar\'s virtualOutbound catch-all to BlackHoleCluster', async () => {
  const fullBefore = mesh.server.engine.stats.fullPushes;
  writeMesh('connectTimeout: 5s\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n');
  // (Responses still in flight from the initial pushes are ACKed and passed over.)
  const lds = await pushed(LISTENER_TYPE, (r) => catchAllCluster(r) === 'BlackHoleCluster');
  assert.equal(catchAllCluster(lds), 'BlackHoleCluster');
  await mesh.settle();
  assert.ok(mesh.server.engine.stats.fullPushes > fullBefore, 'a mesh change is a full push');
  const dbg = await debugMesh();
  assert.equal(dbg.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
  assert.equal(dbg.source, meshFile);
});

test('a mesh localityLbSetting (no DestinationRule sets one) reshapes the pushed EDS locality weights', async () => {
  writeMesh(`connectTimeout: 5s
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
localityLbSetting:
  enabled: true
  distribute:
  - from: "r1/*"
    to: {"r1/*": 80, "r2/*": 20}
`);
  // CDS comes first: locality weights need locality_weighted_lb_config on the cluster.
  const cds = await pushed(CLUSTER_TYPE, (r) => r.resources.find((c) => c.name === REVIEWS)?.common_lb_config?.locality_weighted_lb_config !== undefined);
  assert.ok(cds);
  const eds = await pushed(ENDPOINT_TYPE, (r) => r.resources.some((c) => c.cluster_name === REVIEWS));
  assert.deepEqual(weights(eds), { r1: 80, r2: 20 }, 'the EDS that follows the mesh change');
  await pushed(LISTENER_TYPE);
  await mesh.settle();
});

test('a bad mesh config is reported naming the field; the last good one stays and nothing is pushed', async () => {
  await mesh.settle();
  await pushed(LISTENER_TYPE, () => false, 300).catch(() => undefined); // ACK whatever is still in flight
  const n = client.received.length;
  const rejectedBefore = mesh.server.meshConfigRejected;
  writeMesh('connectTimeout: 5s\noutboundTrafficPolicy:\n  mode: DENY_EVERYTHING\n');
  const deadline = Date.now() + 3000;
  while (mesh.server.meshConfigRejected === rejectedBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(mesh.server.meshConfigRejected, rejectedBefore + 1);
  const line = logs.find((l) => l.source === meshFile && l.field === 'outboundTrafficPolicy.mode');
  assert.ok(line, 'an error log line names the file and the field');
  assert.match(line.msg, /outboundTrafficPolicy\.mode: invalid value "DENY_EVERYTHING"; expected one of ALLOW_ANY, REGISTRY_ONLY/);
  const dbg = await debugMesh();
  assert.match(dbg.lastError, /outboundTrafficPolicy\.mode/);
  assert.equal(dbg.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY', 'the last good mesh config is in force');
  assert.ok(await client.quiet(LISTENER_TYPE, 400), 'no push for a rejected mesh config');
  assert.equal(client.received.length, n);

  // A deleted file is reported the same way; fixing the file clears the error.
  fs.rmSync(meshFile);
  const d2 = Date.now() + 3000;
  while (mesh.server.meshConfigRejected === rejectedBefore + 1 && Date.now() < d2) await new Promise((r) => setTimeout(r, 20));
  assert.equal(mesh.server.meshConfigRejected, rejectedBefore + 2);
  assert.equal((await debugMesh()).mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
  writeMesh('connectTimeout: 5s\n');
  const lds = await pushed(LISTENER_TYPE, (r) => catchAllCluster(r) === 'PassthroughCluster');
  assert.equal(catchAllCluster(lds), 'PassthroughCluster', 'back to the default ALLOW_ANY');
  assert.equal((await debugMesh()).lastError, undefined);
});

test('an invalid mesh config file at start is a start error naming the field (as istiod refuses to start)', async () => {
  const f = path.join(meshDir, 'bad.yaml');
  fs.writeFileSync(f, 'extensionProviders:\n- name: authz\n  envoyExtAuthzHttp: {service: authz.default.svc.cluster.local, port: 0}\n');
  const server = new MeshpilotServer({
    ...defaultServerOptions(), configDirs: [], xdsPort: 0, monitoringPort: 0, workers: 0, secureXdsPort: -1,
    meshConfigFile: f, logger: pino({ level: 'silent' }),
  });
  await assert.rejects(server.start(), /extensionProviders\[0\]\.envoyExtAuthzHttp\.port: port must be in the range \[1, 65535\]/);
  await server.stop();
});

/** `meshpilot serve --mesh-config FILE [flags]` as a user runs it; resolves with /debug/mesh once ready. */
async function serveDebugMesh(file: string, flags: string[]): Promise<any> {
  const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-empty-'));
  const child = spawn(process.execPath, [main, 'serve', '--config-dir', empty, '--mesh-config', file, '--xds-port', '0', '--secure-xds-port', '-1', '--monitoring-port', '0', '--workers', '0', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const ready = await new Promise<any>((resolve, reject) => {
      const rl = readline.createInterface({ input: child.stdout! });
      rl.on('line', (l) => { try { const j = JSON.parse(l); if (j.msg === 'meshpilot ready') resolve(j); } catch { /* not JSON */ } });
      child.once('exit', (c) => reject(new Error(`exited ${c}`)));
      setTimeout(() => reject(new Error('no ready line in 10 s')), 10_000);
    });
    return await (await fetch(`http://127.0.0.1:${ready.monitoringPort}/debug/mesh`)).json();
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(empty, { recursive: true, force: true });
  }
}

test('meshpilot serve --mesh-config: the file\'s trustDomain unless --trust-domain is given explicitly', async () => {
  const f = path.join(meshDir, 'cli-mesh.yaml');
  fs.writeFileSync(f, 'trustDomain: mesh.example\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
  const fromFile = await serveDebugMesh(f, []);
  assert.equal(fromFile.source, f);
  assert.equal(fromFile.mesh.trustDomain, 'mesh.example');
  assert.equal(fromFile.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
  const flagWins = await serveDebugMesh(f, ['--trust-domain', 'flag.example']);
  assert.equal(flagWins.mesh.trustDomain, 'flag.example');
  assert.equal(flagWins.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
});
