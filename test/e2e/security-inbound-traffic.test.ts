/**
 * STRICT / PERMISSIVE mTLS and AuthorizationPolicy proven with real traffic through a real Envoy sidecar, without
 * iptables: the server's Envoy runs with interception NONE and a Sidecar ingress listener (istiod's answer for
 * proxies without traffic capture), so its inbound listener `0.0.0.0_PORT` is bound for real and fronts a local
 * app (the listener's defaultEndpoint 127.0.0.1:APP). Its chains are virtualInbound's (securedInboundChains).
 *
 * Clients: a second Envoy sidecar whose Sidecar has port-specific egress listeners for the server only, calling it
 * over Istio mTLS (auto mTLS: the server's endpoint is labelled tlsMode=istio), with certificates from meshpilot's
 * CA over SDS on the secure port; plain Node HTTP/TCP clients; and a Node mTLS client holding a certificate for
 * another identity. Expectations follow Istio's docs (PeerAuthentication, AuthorizationPolicy) and istiod's
 * listener_inbound.go: STRICT refuses plaintext at the handshake, PERMISSIVE serves both, RBAC denies with 403
 * (HTTP) or by closing the connection (TCP).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import net from 'node:net';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats, type EnvoyHandle, xdsTlsFrom } from '../helpers/envoy.js';
import { freePort } from '../helpers/ports.js';
import { httpGet, until, type Reply } from '../helpers/http-probe.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { WorkloadCertFiles } from '../../src/security/workload-agent.js';

const HOST = 'server.default.svc.cluster.local';
const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/server';

let mesh: TestMesh;
let tmp: string;
let app: HttpBackend;
let echo: net.Server;
let echoPort = 0;
const agents: WorkloadCertFiles[] = [];
let server: EnvoyHandle;
let client: EnvoyHandle;
/** The server sidecar's ingress ports (bound by its Envoy) and the service ports the client's egress listeners bind. */
let inHttp = 0;
let inTcp = 0;
let svcHttp = 0;
let svcTcp = 0;

function meshYaml(): string {
  return `apiVersion: v1
kind: Service
metadata: {name: server, namespace: default}
spec:
  clusterIP: None
  selector: {app: server}
  ports:
  - {name: http, port: ${svcHttp}, targetPort: ${inHttp}}
  - {name: tcp, port: ${svcTcp}, targetPort: ${inTcp}}
---
apiVersion: v1
kind: Pod
metadata: {name: server-0, namespace: default, labels: {app: server, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: server, containers: [{name: app, image: app}]}
status: {phase: Running, podIP: 127.0.0.1}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: server-0, namespace: default, labels: {kubernetes.io/service-name: server}}
addressType: IPv4
ports: [{name: http, port: ${inHttp}}, {name: tcp, port: ${inTcp}}]
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: server-0, namespace: default}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server, namespace: default}
spec:
  workloadSelector: {labels: {app: server}}
  ingress:
  - port: {number: ${inHttp}, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:${app.port}
  - port: {number: ${inTcp}, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:${echoPort}
  egress:
  - hosts: ["~/*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: ${svcHttp}, protocol: HTTP, name: http}
    hosts: ["./${HOST}"]
  - port: {number: ${svcTcp}, protocol: TCP, name: tcp}
    hosts: ["./${HOST}"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;
}

/** istio-agent's job, then an Envoy on the secure port with interception NONE (no iptables needed). */
async function sidecar(name: string, sa: string, token: string): Promise<EnvoyHandle> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const agent = new WorkloadCertFiles(dir, { address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem: mesh.server.secure!.ca.trustBundlePem(), token },
    `spiffe://cluster.local/ns/default/sa/${sa}`);
  agents.push(agent);
  await agent.start();
  return startEnvoy({
    xdsPort: mesh.server.secureXdsPort,
    xdsTls: xdsTlsFrom(agent.files),
    nodeId: `sidecar~127.0.0.1~${name}-0.default~default.svc.cluster.local`,
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default', LABELS: { app: name }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
}


const get = (port: number, urlPath = '/'): Promise<Reply> => httpGet(port, HOST, urlPath);

/** A Node mTLS client with a certificate from our CA for `identity`, straight to the server sidecar's ingress port. */
async function mtlsGet(identity: string, port: number, urlPath = '/'): Promise<Reply> {
  const ca = mesh.server.secure!.ca;
  const cert = await ca.issueKeyPair({ uris: [identity] }, 3600_000);
  return new Promise((resolve, reject) => {
    const req = https.get({
      host: '127.0.0.1', port, path: urlPath, headers: { host: HOST }, agent: false, timeout: 3000,
      key: cert.privateKeyPem, cert: cert.certChain.join(''), ca: ca.trustBundlePem(),
      // The sidecar presents a SPIFFE identity, not a DNS name: check that instead of the hostname.
      checkServerIdentity: (_h, c) => (c.subjectaltname === `URI:${SERVER_ID}` ? undefined : new Error(`unexpected server identity ${c.subjectaltname}`)),
    }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/** Sends `ping` over TCP; resolves with what came back before the connection closed (or after 1.5 s). */
function tcpPing(port: number): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let data = '';
    let closed = false;
    const done = () => { clearTimeout(t); sock.destroy(); resolve({ data, closed }); };
    const t = setTimeout(done, 1500);
    sock.on('connect', () => sock.write('ping'));
    sock.on('data', (c) => { data += c; if (data === 'ping') done(); });
    sock.on('close', () => { closed = true; done(); });
    sock.on('error', () => { closed = true; });
  });
}


const refused = (e: unknown): boolean => e instanceof Error && /ECONNRESET|socket hang up|EPIPE/.test(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`);

async function plaintextOutcome(): Promise<'ok' | 'refused' | string> {
  try {
    const r = await get(inHttp);
    return r.status === 200 ? 'ok' : `status ${r.status}`;
  } catch (e) {
    return refused(e) ? 'refused' : (e as Error).message;
  }
}

function policy(yaml: string): Promise<void> {
  mesh.write('policy.yaml', yaml);
  return mesh.settle();
}

const PEER = (mode: string): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: server, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: ${mode}}
`;

/** PeerAuthentication STRICT plus one AuthorizationPolicy for the server workload. */
function strictWith(name: string, action: 'ALLOW' | 'DENY', rule: string): string {
  return `${PEER('STRICT')}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ${action}
  rules:
  - ${rule}
`;
}

const fromPrincipal = (sa: string): string => `from: [{source: {principals: ["cluster.local/ns/default/sa/${sa}"]}}]`;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-inbound-'));
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-client default client\ntok-server default server\n');
  app = await startHttpBackend('server-app');
  // Proxies may reset their upstream connections (RBAC closing the downstream one, Envoy exit): no test failure.
  echo = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as net.AddressInfo).port;
  [inHttp, inTcp, svcHttp, svcTcp] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  mesh = await startMeshpilot({ 'mesh.yaml': meshYaml() }, { secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens') });
  [server, client] = await Promise.all([sidecar('server', 'server', 'tok-server'), sidecar('client', 'client', 'tok-client')]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  for (const a of agents) a.stop();
  await app?.close();
  echo?.close();
  await mesh?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('the sidecars get what their Sidecars say: ingress listeners bound for real, port-specific egress only', async () => {
  const listenersOf = (d: any): string[] => (d.configs.find((c: any) => c['@type'].endsWith('.ListenersConfigDump'))?.dynamic_listeners ?? [])
    .filter((l: any) => l.active_state).map((l: any) => l.name).sort();
  const sd = await server.waitFor((d) => listenersOf(d).length === 2, 15_000);
  assert.deepEqual(listenersOf(sd), [`0.0.0.0_${inHttp}`, `0.0.0.0_${inTcp}`].sort(), 'only the ingress listeners (egress ~/*)');
  const cd = await client.waitFor((d) => listenersOf(d).length === 2 && JSON.stringify(d).includes('"name":"default"'), 15_000);
  assert.deepEqual(listenersOf(cd), [`127.0.0.1_${svcHttp}`, `127.0.0.1_${svcTcp}`].sort());
  const clusters = sd.configs.find((c: any) => c['@type'].endsWith('.ClustersConfigDump')).dynamic_active_clusters.map((c: any) => c.cluster);
  const inbound = clusters.find((c: any) => c.name === `inbound|${inHttp}||`);
  assert.equal(inbound.type, 'STATIC');
  assert.equal(inbound.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, app.port);
  for (const e of [server, client]) {
    assert.deepEqual(rejectedResources(await e.configDump()), []);
    assert.deepEqual(rejectedUpdateStats(await e.stats()), {});
  }
});

test('PERMISSIVE (no PeerAuthentication): plaintext and the mTLS sidecar client both reach the app', async () => {
  const handshakesNow = async (): Promise<number> =>
    Number(new RegExp(`^listener\\.0\\.0\\.0\\.0_${inHttp}\\.ssl\\.handshake: (\\d+)$`, 'm').exec(await server.stats())?.[1] ?? 0);
  const before = await handshakesNow();
  const viaClient = await until('mTLS via the client sidecar', () => get(svcHttp), (r) => r.status === 200);
  assert.equal(viaClient.body, 'server-app');
  const plain = await get(inHttp);
  assert.equal(plain.status, 200);
  assert.equal(plain.body, 'server-app');
  const handshakes = await handshakesNow();
  assert.ok(handshakes > before, `the sidecar client came in over TLS (ssl.handshake ${before} → ${handshakes})`);
  const dump = await server.configDump();
  const l = dump.configs.find((c: any) => c['@type'].endsWith('.ListenersConfigDump')).dynamic_listeners.find((x: any) => x.name === `0.0.0.0_${inHttp}`).active_state.listener;
  assert.deepEqual(l.filter_chains.map((c: any) => c.filter_chain_match.transport_protocol), ['tls', 'raw_buffer']);
  assert.ok(l.listener_filters.some((f: any) => f.name === 'envoy.filters.listener.tls_inspector'));
});

test('STRICT: plaintext is refused at the handshake and never reaches the app; the mTLS client gets through', async () => {
  await policy(PEER('STRICT'));
  await until('plaintext refused', plaintextOutcome, (o) => o === 'refused');
  const hits = app.hits;
  assert.equal(await plaintextOutcome(), 'refused');
  assert.equal(app.hits, hits, 'the app saw nothing of the plaintext attempt');
  const viaClient = await until('mTLS via the client sidecar', () => get(svcHttp), (r) => r.status === 200);
  assert.equal(viaClient.body, 'server-app');
  assert.equal(app.hits, hits + 1);
  // A raw Node client with a mesh certificate also gets in: the chain wants any identity from our CA.
  const other = await mtlsGet('spiffe://cluster.local/ns/default/sa/other', inHttp);
  assert.equal(other.status, 200);
});

test('PERMISSIVE again: plaintext is accepted once more', async () => {
  await policy(PEER('PERMISSIVE'));
  await until('plaintext accepted', plaintextOutcome, (o) => o === 'ok');
  assert.equal((await get(svcHttp)).status, 200);
});

test('AuthorizationPolicy ALLOW for another principal: the sidecar client gets 403, that principal 200', async () => {
  await policy(strictWith('server', 'ALLOW', fromPrincipal('other')));
  const denied = await until('403 for sa/client', () => get(svcHttp), (r) => r.status === 403);
  assert.match(denied.body, /RBAC: access denied/);
  const allowed = await mtlsGet('spiffe://cluster.local/ns/default/sa/other', inHttp);
  assert.equal(allowed.status, 200);
  assert.equal(allowed.body, 'server-app');
  // The same principal rule, now naming the client: the client is allowed.
  await policy(strictWith('server', 'ALLOW', fromPrincipal('client')));
  await until('200 for sa/client', () => get(svcHttp), (r) => r.status === 200);
});

test('AuthorizationPolicy DENY on a path: 403 on that path only', async () => {
  await policy(strictWith('server-deny', 'DENY', 'to: [{operation: {paths: ["/admin"]}}]'));
  const denied = await until('403 on /admin', () => get(svcHttp, '/admin'), (r) => r.status === 403);
  assert.match(denied.body, /RBAC: access denied/);
  assert.equal((await get(svcHttp, '/')).status, 200);
  assert.equal((await get(svcHttp, '/admin/other')).status, 200, 'an exact path rule matches that path only');
  assert.equal((await mtlsGet('spiffe://cluster.local/ns/default/sa/other', inHttp, '/admin')).status, 403);
});

test('network RBAC on a TCP port: an allowed principal gets the echo, a denied one a closed connection', async () => {
  await policy(strictWith('server', 'ALLOW', fromPrincipal('client')));
  const ok = await until('TCP echo for sa/client', () => tcpPing(svcTcp), (r) => r.data === 'ping');
  assert.equal(ok.data, 'ping');
  await policy(strictWith('server', 'ALLOW', fromPrincipal('other')));
  const denied = await until('TCP closed for sa/client', () => tcpPing(svcTcp), (r) => r.closed && r.data === '');
  assert.deepEqual(denied, { data: '', closed: true });
  const stats = await server.stats();
  assert.match(stats, /\.rbac\.denied: [1-9]/m, "the server sidecar's network RBAC filter counted the denial");
  assert.deepEqual(rejectedUpdateStats(stats), {});
  assert.deepEqual(rejectedResources(await server.configDump()), []);
});
