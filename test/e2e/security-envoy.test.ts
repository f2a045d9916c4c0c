/**
 * A real Envoy as a sidecar of meshpilot's secure port: ADS over TLS with a client certificate from our CA, SDS
 * `default`/`ROOTCA` delivered on that stream, and DestinationRule ISTIO_MUTUAL turning into an upstream mTLS
 * connection that presents Envoy's SDS certificate and checks the server's SPIFFE SAN. The server is a Node TLS
 * server that requires a client certificate from our CA and answers with the identity it saw.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, type EnvoyHandle, xdsTlsFrom } from '../helpers/envoy.js';
import { freePort } from '../helpers/ports.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { WorkloadCertFiles } from '../../src/security/workload-agent.js';

const SLEEP_ID = 'spiffe://cluster.local/ns/default/sa/sleep';
let mesh: TestMesh;
let envoy: EnvoyHandle;
let tmp: string;
let echo: https.Server;
let echoPort: number;
let agent: WorkloadCertFiles;
let plainBackend: HttpBackend;
let plainPort = 0;

function meshYaml(port: number, sa: string): string {
  return `${serviceYaml({ name: 'echo', port: 8080, portName: 'http', serviceAccount: sa, endpoints: [{ port }] })}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: billing-0, namespace: default, labels: {kubernetes.io/service-name: billing}}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: true}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing, namespace: default}
spec:
  host: billing.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/billing"]}}
---
${serviceYaml({ name: 'auto', port: 8082, portName: 'http', serviceAccount: 'echo', endpoints: [{ port, labels: { 'security.istio.io/tlsMode': 'istio' } }] })}
---
${serviceYaml({ name: 'plain', port: 8083, portName: 'http', serviceAccount: 'plain', endpoints: [{ port: plainPort }] })}
`;
}

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  let err: unknown;
  while (Date.now() < deadline) {
    try { last = await f(); if (ok(last)) return last; } catch (e) { err = e; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not reached within ${ms} ms: last=${JSON.stringify(last)} err=${String(err)}`);
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-envoy-mtls-'));
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-sleep default sleep\ntok-echo default echo\n');
  echoPort = await freePort();
  plainBackend = await startHttpBackend('plain');
  plainPort = plainBackend.port;
  mesh = await startMeshpilot({ 'echo.yaml': meshYaml(echoPort, 'echo') }, {
    secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens'),
  });
  const ca = mesh.server.secure!.ca;
  // The upstream "sidecar": a TLS server with a certificate for sa/echo that requires a client certificate from our CA.
  const serverCert = await ca.issueKeyPair({ uris: ['spiffe://cluster.local/ns/default/sa/echo'] }, 3600_000);
  echo = https.createServer({
    key: serverCert.privateKeyPem, cert: serverCert.certChain.join(''), ca: ca.trustBundlePem(), requestCert: true, rejectUnauthorized: true,
    // What a peer sidecar's inbound accepts: Istio's mTLS ALPN (Node refuses a handshake with no common protocol).
    ALPNProtocols: ['istio-peer-exchange', 'istio', 'http/1.1'],
  }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    res.end(`echo saw ${peer.subjectaltname}`);
  });
  await new Promise<void>((r) => echo.listen(echoPort, '127.0.0.1', () => r()));
  // istio-agent's job: a certificate for the sidecar to connect to the secure xDS port with.
  const dir = path.join(tmp, 'sleep');
  fs.mkdirSync(dir);
  agent = new WorkloadCertFiles(dir, { address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem: ca.trustBundlePem(), token: 'tok-sleep' }, SLEEP_ID);
  await agent.start();
  envoy = await startEnvoy({
    xdsPort: mesh.server.secureXdsPort,
    xdsTls: xdsTlsFrom(agent.files),
    nodeId: 'sidecar~127.0.0.1~sleep-0.default~default.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default', ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
});

after(async () => {
  await envoy?.stop();
  agent?.stop();
  echo?.close();
  await plainBackend?.close();
  await mesh?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('Envoy gets SDS secrets over the TLS ADS stream and calls upstream over Istio mTLS', async () => {
  const dump = await envoy.waitFor((d) => JSON.stringify(d).includes('"name":"default"') && JSON.stringify(d).includes('"name":"ROOTCA"')
    && JSON.stringify(d).includes('outbound|8080||echo.default.svc.cluster.local'), 15_000);
  assert.deepEqual(rejectedResources(dump), [], 'Envoy accepted every resource');
  const text = JSON.stringify(dump);
  assert.doesNotMatch(text, /BEGIN (EC |RSA )?PRIVATE KEY/, 'Envoy shows no private key in its config dump');
  assert.match(text, /"san_type":"URI","matcher":{"exact":"spiffe:\/\/cluster.local\/ns\/default\/sa\/echo"}/, "cluster matches the server SAN");

  const res = await until(() => get(8080, 'echo.default.svc.cluster.local'), (r) => r.status === 200, 10_000);
  assert.equal(res.body, `echo saw URI:${SLEEP_ID}`, 'Envoy presented its SDS certificate (sa/sleep) from our CA');
  assert.ok(mesh.server.sds!.stats.pushes >= 1);
});

test('a server whose identity does not match the expected SAN is refused by Envoy', async () => {
  // billing's DestinationRule expects sa/billing; the server behind it presents sa/echo.
  const res = await until(() => get(8081, 'billing.default.svc.cluster.local'), (r) => r.status >= 500, 10_000);
  assert.equal(res.status, 503);
  assert.match(res.body, /upstream connect error|TLS|certificate/i);
  // The same server through echo (expected SAN sa/echo) still answers.
  const ok = await get(8080, 'echo.default.svc.cluster.local');
  assert.equal(ok.status, 200);
});

test('auto mTLS: endpoints labelled tlsMode=istio get Istio mTLS without a DestinationRule, others plaintext', async () => {
  const auto = await until(() => get(8082, 'auto.default.svc.cluster.local'), (r) => r.status === 200, 10_000);
  assert.equal(auto.body, `echo saw URI:${SLEEP_ID}`, 'the mTLS-only server saw the sidecar certificate');
  const plain = await until(() => get(8083, 'plain.default.svc.cluster.local'), (r) => r.status === 200, 10_000);
  assert.equal(plain.body, 'plain');
});

test('a REDIRECT-mode sidecar gets STRICT mTLS and RBAC on its virtualInbound chains, and Envoy accepts them', async () => {
  mesh.write('policy.yaml', `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: echo, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls: {8080: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
`);
  await mesh.settle();
  const dir = path.join(tmp, 'echo');
  fs.mkdirSync(dir);
  const echoAgent = new WorkloadCertFiles(dir, { address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem: mesh.server.secure!.ca.trustBundlePem(), token: 'tok-echo' },
    'spiffe://cluster.local/ns/default/sa/echo');
  await echoAgent.start();
  const sidecar = await startEnvoy({
    xdsPort: mesh.server.secureXdsPort,
    xdsTls: xdsTlsFrom(echoAgent.files),
    nodeId: 'sidecar~127.0.0.1~echo-0.default~default.svc.cluster.local',
    metadata: { NAMESPACE: 'default', LABELS: { app: 'echo' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  try {
    const dump = await sidecar.waitFor((d) => (d.configs ?? []).some((c: any) => (c.dynamic_listeners ?? [])
      .some((l: any) => l.name === 'virtualInbound' && l.active_state)), 15_000);
    assert.deepEqual(rejectedResources(dump), [], 'Envoy accepted every resource');
    const vi = dump.configs.flatMap((c: any) => c.dynamic_listeners ?? []).find((l: any) => l.name === 'virtualInbound').active_state.listener;
    // The config dump renders wrapper types as plain values.
    const chains = (vi.filter_chains as any[]).filter((c) => c.filter_chain_match?.destination_port === 8080);
    assert.equal(chains.length, 1, 'STRICT: one chain for the port');
    assert.equal(chains[0].transport_socket.typed_config.require_client_certificate, true);
    const httpFilters = chains[0].filters[0].typed_config.http_filters.map((f: any) => f.name);
    assert.deepEqual(httpFilters.slice(0, 1), ['envoy.filters.http.rbac']);
    assert.ok(vi.listener_filters.some((f: any) => f.name === 'envoy.filters.listener.tls_inspector'));
    assert.doesNotMatch(JSON.stringify(dump), /BEGIN (EC |RSA )?PRIVATE KEY/);
  } finally {
    await sidecar.stop();
    echoAgent.stop();
    mesh.remove('policy.yaml');
  }
});

test('SDS on a delta xDS stream: an Envoy with DELTA_GRPC gets its secrets and calls upstream over Istio mTLS', async () => {
  await envoy.stop(); // its outbound listeners hold the same local ports
  const deltaEnvoy = await startEnvoy({
    xdsPort: mesh.server.secureXdsPort,
    adsApiType: 'DELTA_GRPC',
    xdsTls: xdsTlsFrom(agent.files),
    nodeId: 'sidecar~127.0.0.1~sleep-1.default~default.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default', ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  try {
    const res = await until(() => get(8080, 'echo.default.svc.cluster.local'), (r) => r.status === 200, 15_000);
    assert.equal(res.body, `echo saw URI:${SLEEP_ID}`);
    assert.deepEqual(rejectedResources(await deltaEnvoy.configDump()), []);
  } finally {
    await deltaEnvoy.stop();
  }
});
