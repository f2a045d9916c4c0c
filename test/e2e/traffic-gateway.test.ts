/**
 * Gateways through a real Envoy 1.40 router proxy (node type `router`, labels istio=ingressgateway): Gateway servers
 * become listeners that bind for real, VirtualServices bind through `gateways`. Expectations follow Istio's Gateway
 * reference and istio pilot/pkg/networking/core/gateway.go: HTTP (route `http.PORT`, several VirtualServices for one
 * host merged), HTTPS terminated with the server certificate (route `https.PORT.NAME.GATEWAY.NS`), TCP (tcp route), TLS PASSTHROUGH (SNI filter chains from tls routes),
 * and istiod's 404 `blackhole:PORT` virtual host for an HTTP server with nothing bound. (credentialName → SDS
 * `kubernetes://NAME` is checked in the golden test: without an SDS answer Envoy holds the listener warming.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats, type EnvoyHandle } from '../helpers/envoy.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { eventually } from '../helpers/grpc-backend.js';
import { makeCerts, type TestCerts } from './traffic-tls-certs.js';

let mesh: TestMesh;
let gw: EnvoyHandle;
let v1: HttpBackend, v2: HttpBackend;
let certs: TestCerts;
let tlsServer: https.Server, tlsPort: number;
let tcpServer: net.Server, tcpPort: number;
let HTTP_P: number, HTTPS_P: number, TCP_P: number, PASS_P: number, EMPTY_P: number;

function get(port: number, host: string, path: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function getTls(port: number, servername: string, path: string): Promise<{ status: number; body: string; peerCN: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path, servername, headers: { host: servername }, ca: fs.readFileSync(certs.caCert), agent: false,
    }, (res) => {
      let body = '';
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate();
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerCN: peer.subject?.CN as string }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  certs = makeCerts(['secure.example.test', 'pass.example.test']);
  [v1, v2] = await Promise.all([startHttpBackend('v1'), startHttpBackend('v2')]);
  tlsServer = https.createServer({ cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) }, (req, res) => {
    req.resume();
    res.end(`backend-tls:${req.headers.host}`);
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsPort = (tlsServer.address() as AddressInfo).port;
  // A reset from Envoy after the test is done must not end the process as an uncaught error.
  tcpServer = net.createServer((s) => { s.on('error', () => undefined); s.end('tcp-backend'); });
  await new Promise<void>((r) => tcpServer.listen(0, '127.0.0.1', r));
  tcpPort = (tcpServer.address() as AddressInfo).port;
  [HTTP_P, HTTPS_P, TCP_P, PASS_P, EMPTY_P] = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const SVC_P = await freePort();
  mesh = await startMeshpilot({
    'web.yaml': serviceYaml({ name: 'web', port: SVC_P, endpoints: [{ port: v1.port, labels: { version: 'v1' } }, { port: v2.port, labels: { version: 'v2' } }] }),
    'tcp.yaml': serviceYaml({ name: 'tcpsvc', port: 9000, portName: 'tcp', endpoints: [{ port: tcpPort }] }),
    'secure.yaml': serviceYaml({ name: 'secure', port: 8443, portName: 'tls', endpoints: [{ port: tlsPort }] }),
    'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
    'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${HTTP_P}, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: ${HTTPS_P}, name: https, protocol: HTTPS}
    hosts: ["secure.example.test"]
    tls: {mode: SIMPLE, serverCertificate: ${certs.serverCert}, privateKey: ${certs.serverKey}}
  - port: {number: ${TCP_P}, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: ${PASS_P}, name: tls, protocol: TLS}
    hosts: ["pass.example.test"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: empty, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${EMPTY_P}, name: http-empty, protocol: HTTP}
    hosts: ["nothing.example.test"]
`,
    'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-main, namespace: default}
spec:
  hosts: [web.example.test, secure.example.test]
  gateways: [istio-system/ingress]
  http:
  - route:
    - destination: {host: web, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-v2, namespace: default}
spec:
  hosts: [web.example.test]
  gateways: [istio-system/ingress]
  http:
  - match: [{uri: {prefix: /v2}}]
    route:
    - destination: {host: web, subset: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: default}
spec:
  hosts: [web.example.test]
  http:
  - match: [{uri: {prefix: /mesh}}]
    directResponse: {status: 500}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/ingress]
  tcp:
  - match: [{port: ${TCP_P}}]
    route:
    - destination: {host: tcpsvc, port: {number: 9000}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: default}
spec:
  hosts: [pass.example.test]
  gateways: [istio-system/ingress]
  tls:
  - match: [{port: ${PASS_P}, sniHosts: [pass.example.test]}]
    route:
    - destination: {host: secure, port: {number: 8443}}
`,
  });
  gw = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'router~127.0.0.1~ingress-0.istio-system~istio-system.svc.cluster.local',
    metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  await eventually(async () => (await get(HTTP_P, 'web.example.test', '/').catch(() => ({ body: '' }))).body === 'v1', 20000, 100);
});

after(async () => {
  await gw?.stop();
  await mesh?.stop();
  await Promise.all([v1?.close(), v2?.close()]);
  await new Promise<void>((r) => (tlsServer ? tlsServer.close(() => r()) : r()));
  await new Promise<void>((r) => (tcpServer ? tcpServer.close(() => r()) : r()));
  certs?.cleanup();
});

function section(dump: any, kind: string): any {
  return dump.configs.find((c: any) => c['@type'].endsWith(`.${kind}`));
}

test('the router accepts every resource; listeners and routes are named as istiod names them', async () => {
  const dump = await gw.configDump();
  assert.deepEqual(rejectedResources(dump), []);
  assert.deepEqual(rejectedUpdateStats(await gw.stats()), {});
  const listeners = section(dump, 'ListenersConfigDump').dynamic_listeners.map((l: any) => l.name).sort();
  assert.deepEqual(listeners, [HTTP_P, HTTPS_P, TCP_P, PASS_P, EMPTY_P].map((p) => `0.0.0.0_${p}`).sort());
  const routes = section(dump, 'RoutesConfigDump').dynamic_route_configs.map((r: any) => r.route_config.name).sort();
  assert.deepEqual(routes, [`http.${HTTP_P}`, `http.${EMPTY_P}`, `https.${HTTPS_P}.https.ingress.istio-system`].sort());
});

test('HTTP server: VirtualServices bound to the gateway are merged for one host; mesh-only ones are not', async () => {
  assert.equal((await get(HTTP_P, 'web.example.test', '/')).body, 'v1');
  assert.equal((await get(HTTP_P, 'web.example.test', '/v2/x')).body, 'v2', 'the second VirtualService for the host adds its route');
  assert.equal((await get(HTTP_P, 'web.example.test', '/mesh')).body, 'v1', 'a VirtualService without gateways binds only to mesh');
  assert.equal((await get(HTTP_P, 'other.example.test', '/')).status, 404);
  assert.equal((await get(EMPTY_P, 'nothing.example.test', '/')).status, 404, 'blackhole virtual host');
});

test('HTTPS server terminates TLS with the server certificate', async () => {
  const r = await getTls(HTTPS_P, 'secure.example.test', '/');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'v1');
  assert.equal(r.peerCN, 'secure.example.test');
});

test('TCP server proxies to the tcp route destination', async () => {
  const read = (): Promise<string> => new Promise((resolve, reject) => {
    const s = net.connect(TCP_P, '127.0.0.1');
    let d = '';
    s.on('data', (c) => (d += c));
    s.on('end', () => resolve(d));
    s.on('error', reject);
  });
  await eventually(async () => (await read().catch(() => '')) === 'tcp-backend', 5000);
});

test('TLS PASSTHROUGH routes by SNI without terminating', async () => {
  const r = await getTls(PASS_P, 'pass.example.test', '/');
  assert.equal(r.body, 'backend-tls:pass.example.test', 'the backend, not Envoy, terminated TLS');
  const refused = await getTls(PASS_P, 'unknown.example.test', '/').then(() => 'connected', () => 'refused');
  assert.equal(refused, 'refused', 'an SNI without a route has no filter chain');
});
