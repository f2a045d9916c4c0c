/**
 * Traffic management through a real Envoy 1.40 sidecar (interception NONE: outbound listeners bind 127.0.0.1:PORT)
 * and real HTTP/TCP servers on loopback. Expectations follow Istio's VirtualService / DestinationRule / ServiceEntry /
 * Sidecar reference docs and istio pilot/pkg/networking/core (route/route.go, cluster_traffic_policy.go,
 * cluster_tls.go, httproute.go buildCatchAllVirtualHost, model/sidecar.go). Every config must be accepted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, rejectedUpdateStats, type EnvoyHandle } from '../helpers/envoy.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { eventually } from '../helpers/grpc-backend.js';
import { makeCerts, type TestCerts } from './traffic-tls-certs.js';
import { pino } from 'pino';

interface Res { status: number; body: string; headers: http.IncomingHttpHeaders }

function request(port: number, host: string, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host, ...(opts.headers ?? {}) }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function tcpRead(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (c) => (data += c));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

async function startTcpBackend(name: string): Promise<{ port: number; close(): Promise<void> }> {
  // A proxy may reset its upstream connection (listener drain, Envoy exit): that is no test failure.
  const server = net.createServer((s) => { s.on('error', () => {}); s.end(name); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Answers 503 to everything: an outlier. */
async function startFailingBackend(): Promise<{ port: number; hits: number; close(): Promise<void> }> {
  const b = { port: 0, hits: 0, close: async () => {} };
  const server = http.createServer((req, res) => { b.hits++; req.resume(); res.writeHead(503).end('bad'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  b.close = () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); });
  return b;
}

let mesh: TestMesh;
let envoy: EnvoyHandle;
let locked: EnvoyHandle | undefined;
let P: number, TCP_P: number;
let v1: HttpBackend, v2: HttpBackend, shadow: HttpBackend, good: HttpBackend, ext: HttpBackend, dnsExt: HttpBackend;
let bad: Awaited<ReturnType<typeof startFailingBackend>>;
let tcpA: Awaited<ReturnType<typeof startTcpBackend>>, tcpB: Awaited<ReturnType<typeof startTcpBackend>>;
let certs: TestCerts;
let tlsServer: https.Server, tlsPort: number;
let tlsB: https.Server, tlsBPort: number, TLS_P: number, TLS_P2: number;
let wsServer: http.Server;

const WEB = 'web.default.svc.cluster.local';
/** meshpilot's error log lines (validation errors name file, document, object and field). */
const errorLog: string[] = [];

before(async () => {
  const logger = pino({ level: 'error' }, { write: (line: string) => { errorLog.push(line); } });
  certs = makeCerts(['secure.example.test']);
  [v1, v2, shadow, good, ext, dnsExt] = await Promise.all(['v1', 'v2', 'shadow', 'good', 'ext', 'dns-ext'].map((n) => startHttpBackend(n)));
  bad = await startFailingBackend();
  // A WebSocket-style upgrade: 101, then an echo of whatever follows on the connection.
  wsServer = http.createServer((req, res) => res.writeHead(426).end());
  wsServer.on('upgrade', (_req, socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(`echo:${d}`));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => wsServer.listen(0, '127.0.0.1', r));
  [tcpA, tcpB] = await Promise.all([startTcpBackend('tcp-a'), startTcpBackend('tcp-b')]);
  tlsServer = https.createServer({ cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) }, (req, res) => {
    req.resume();
    res.end(`tls:${req.headers.host}`);
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsPort = (tlsServer.address() as AddressInfo).port;
  tlsB = https.createServer({ cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) }, (req, res) => {
    req.resume();
    res.end('tls-b');
  });
  await new Promise<void>((r) => tlsB.listen(0, '127.0.0.1', r));
  tlsBPort = (tlsB.address() as AddressInfo).port;
  P = await freePort();
  TCP_P = await freePort();
  TLS_P = await freePort();
  TLS_P2 = await freePort();
  mesh = await startMeshpilot({
    'web.yaml': serviceYaml({ name: 'web', port: P, endpoints: [{ port: v1.port, labels: { version: 'v1' } }, { port: v2.port, labels: { version: 'v2' } }] }),
    'shadow.yaml': serviceYaml({ name: 'shadow', port: P, endpoints: [{ port: shadow.port }] }),
    'od.yaml': serviceYaml({ name: 'od', port: P, endpoints: [{ port: good.port }, { port: bad.port }] }),
    'ws.yaml': serviceYaml({ name: 'ws', port: P, endpoints: [{ port: (wsServer.address() as AddressInfo).port }] }),
    'tls.yaml': [
      serviceYaml({ name: 'tlssvc', port: TLS_P, portName: 'tls', endpoints: [{ port: tlsPort }] }),
      serviceYaml({ name: 'tlsb', port: TLS_P2, portName: 'tls', endpoints: [{ port: tlsBPort }] }),
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tlssvc, namespace: default}
spec:
  hosts: [tlssvc]
  tls:
  - match: [{sniHosts: [b.example.test]}]
    route: [{destination: {host: tlsb, port: {number: ${TLS_P2}}}}]
`].join('---\n'),
    'tcp.yaml': serviceYaml({ name: 'tcpsvc', port: TCP_P, portName: 'tcp', endpoints: [{ port: tcpA.port, labels: { v: 'a' } }, { port: tcpB.port, labels: { v: 'b' } }] }),
    'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od, namespace: default}
spec:
  host: od
  trafficPolicy:
    connectionPool:
      http: {http1MaxPendingRequests: 64, maxRequestsPerConnection: 10}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcpsvc, namespace: default}
spec:
  host: tcpsvc
  subsets:
  - {name: a, labels: {v: a}}
  - {name: b, labels: {v: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: default}
spec:
  host: secure.example.test
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: ${certs.caCert}, sni: secure.example.test}
`,
    'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 302}
  - match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: teapot}}
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v2/}
    headers:
      request: {set: {x-added: "yes"}, remove: [x-secret]}
      response: {add: {x-resp: r}}
    route:
    - destination: {host: web, subset: v2}
  - match: [{uri: {prefix: /mirror}}]
    route:
    - destination: {host: web, subset: v1}
    mirror: {host: shadow}
    mirrorPercentage: {value: 100}
  - match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      maxAge: 60s
    route:
    - destination: {host: web, subset: v1}
  - match: [{uri: {prefix: /fault}}]
    fault:
      abort: {httpStatus: 429, percentage: {value: 100}}
    route:
    - destination: {host: web, subset: v1}
  - route:
    - destination: {host: web, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: od, namespace: default}
spec:
  hosts: [od]
  http:
  - route:
    - destination: {host: od}
    retries: {attempts: 0}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcpsvc, namespace: default}
spec:
  hosts: [tcpsvc]
  tcp:
  - match: [{port: ${TCP_P}}]
    route:
    - destination: {host: tcpsvc, subset: b}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shadow-alias, namespace: default}
spec:
  hosts: [shadow, shadow.alias.example, only.alias.example]
  http:
  - route:
    - destination: {host: web, subset: v2}
`,
    'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [ext.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${P}, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${ext.port}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns-ext, namespace: default}
spec:
  hosts: [dns.example.test]
  resolution: DNS
  ports: [{number: ${P}, name: http, protocol: HTTP}]
  endpoints: [{address: localhost, ports: {http: ${dnsExt.port}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.example.test]
  resolution: STATIC
  ports: [{number: ${P}, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${tlsPort}}}]
`,
  }, { logger });
  envoy = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'sidecar~127.0.0.1~client-0.default~default.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'default', ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  await eventually(async () => (await request(P, WEB, '/').catch(() => ({ body: '' }))).body === 'v1', 20000, 100);
});

after(async () => {
  await locked?.stop();
  await envoy?.stop();
  await mesh?.stop();
  await Promise.all([v1, v2, shadow, good, ext, dnsExt, bad, tcpA, tcpB].map((b) => b?.close()));
  await new Promise<void>((r) => (tlsServer ? tlsServer.close(() => r()) : r()));
  await new Promise<void>((r) => (tlsB ? tlsB.close(() => r()) : r()));
  wsServer?.closeAllConnections();
  await new Promise<void>((r) => (wsServer ? wsServer.close(() => r()) : r()));
  certs?.cleanup();
});

test('Envoy accepts every resource (no rejected listeners, no update_rejected stats)', async () => {
  const dump = await envoy.configDump();
  assert.deepEqual(rejectedResources(dump), []);
  assert.deepEqual(rejectedUpdateStats(await envoy.stats()), {}, envoy.logs().slice(-3000));
});

test('redirect, direct response, rewrite with header operations', async () => {
  const r = await request(P, WEB, '/old/page');
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, 'http://example.com/new');

  const d = await request(P, WEB, '/direct');
  assert.equal(d.status, 418);
  assert.equal(d.body, 'teapot');

  const n = v2.requests.length;
  const a = await request(P, WEB, '/api/items?x=1', { headers: { 'x-secret': 's' } });
  assert.equal(a.body, 'v2');
  assert.equal(a.headers['x-resp'], 'r');
  const seen = v2.requests[n]!;
  assert.equal(seen.url, '/v2/items?x=1');
  assert.equal(seen.headers['x-added'], 'yes');
  assert.equal(seen.headers['x-secret'], undefined);
});

test('mirroring: the mirror backend sees a copy of each request', async () => {
  const before = shadow.requests.length;
  for (let i = 0; i < 5; i++) assert.equal((await request(P, WEB, `/mirror/${i}`)).body, 'v1');
  await eventually(async () => shadow.requests.length - before === 5, 3000);
  const copies = shadow.requests.slice(before);
  assert.deepEqual(copies.map((c) => c.url), ['/mirror/0', '/mirror/1', '/mirror/2', '/mirror/3', '/mirror/4']);
  // istiod 1.29 sets disable_shadow_host_suffix_append: the copy keeps its Host (Envoy's default appends -shadow).
  assert.ok(copies.every((c) => String(c.headers.host) === WEB), `mirrored Host kept: ${copies[0]!.headers.host}`);
});

test('CORS: preflight answered from the policy, disallowed origins get no CORS headers', async () => {
  const pre = await request(P, WEB, '/cors', {
    method: 'OPTIONS', headers: { origin: 'https://a.example', 'access-control-request-method': 'POST' },
  });
  assert.equal(pre.headers['access-control-allow-origin'], 'https://a.example');
  assert.equal(pre.headers['access-control-allow-methods'], 'GET,POST');
  assert.equal(pre.headers['access-control-allow-headers'], 'x-token');
  assert.equal(pre.headers['access-control-max-age'], '60');
  const simple = await request(P, WEB, '/cors', { headers: { origin: 'https://a.example' } });
  assert.equal(simple.headers['access-control-allow-origin'], 'https://a.example');
  const other = await request(P, WEB, '/cors', { headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers['access-control-allow-origin'], undefined);
});

test('fault abort returns the configured HTTP status', async () => {
  const r = await request(P, WEB, '/fault');
  assert.equal(r.status, 429);
  assert.equal((await request(P, WEB, '/other')).status, 200);
});

test('a VirtualService host that is no service is routed on the port of the service it routes (istiod BuildSidecarVirtualHostWrapper)', async () => {
  // shadow-alias routes `shadow` (a service on P) and two hosts that are no service: they get virtual hosts of
  // their own in route configuration P, with the VirtualService's routes; `shadow` itself follows it too.
  assert.equal((await request(P, 'shadow.alias.example', '/x')).body, 'v2');
  assert.equal((await request(P, 'only.alias.example:' + P, '/x')).body, 'v2', 'ignore_port_in_host_matching: a Host with a port matches too');
  assert.equal((await request(P, 'shadow.default.svc.cluster.local', '/x')).body, 'v2');
  // A host no VirtualService and no service names falls to the catch-all (PassthroughCluster: nothing there).
  assert.notEqual((await request(P, 'nothing.alias.example', '/x').catch(() => ({ body: '' }))).body, 'v2');
});

test('a WebSocket upgrade passes through the sidecar (upgrade_configs websocket, as istiod sets on every HCM)', async () => {
  const got = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(P, '127.0.0.1');
    let data = '';
    sock.on('data', (c) => {
      data += c;
      if (data.includes('\r\n\r\n') && !data.includes('echo:')) sock.write('ping');
      if (data.includes('echo:ping')) { sock.end(); resolve(data); }
    });
    sock.on('error', reject);
    sock.setTimeout(5000, () => { sock.destroy(); resolve(data); });
    sock.write('GET /chat HTTP/1.1\r\nHost: ws.default.svc.cluster.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  assert.match(got, /^HTTP\/1\.1 101/, got.split('\r\n')[0]);
  assert.match(got, /echo:ping/);
});

test('outlier detection ejects the failing endpoint', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await request(P, 'od.default.svc.cluster.local', '/')).status);
  const after: Res[] = [];
  for (let i = 0; i < 30; i++) after.push(await request(P, 'od.default.svc.cluster.local', '/'));
  assert.deepEqual([...new Set(after.map((r) => `${r.status} ${r.body}`))], ['200 good'], `after ejection only the good endpoint answers (first: ${statuses})`);
  assert.ok(bad.hits >= 1 && bad.hits <= 3, `the bad endpoint was tried, then ejected (hits ${bad.hits})`);
  assert.match(await envoy.stats(), new RegExp(`cluster\\.outbound\\|${P}\\|\\|od\\.default\\.svc\\.cluster\\.local\\.outlier_detection\\.ejections_enforced_total: [1-9]`));
});

test('TCP routing follows the VirtualService tcp route, and a change moves it', async () => {
  await eventually(async () => (await tcpRead(TCP_P).catch(() => '')) === 'tcp-b', 5000);
  for (let i = 0; i < 10; i++) assert.equal(await tcpRead(TCP_P), 'tcp-b');
  const vsText = fs.readFileSync(`${mesh.dir}/vs.yaml`, 'utf8').replace('subset: b}', 'subset: a}');
  mesh.write('vs.yaml', vsText);
  await eventually(async () => (await tcpRead(TCP_P).catch(() => '')) === 'tcp-a', 5000);
});

test('TLS routes: the SNI picks the destination without terminating TLS (tls_inspector + server_names chains)', async () => {
  const getSni = (servername: string): Promise<string> => new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: TLS_P, path: '/', servername, headers: { host: servername }, agent: false,
      ca: fs.readFileSync(certs.caCert), checkServerIdentity: () => undefined,
    }, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => resolve(b)); });
    req.on('error', reject);
    req.end();
  });
  await eventually(async () => (await getSni('b.example.test').catch(() => '')) === 'tls-b', 5000);
  assert.equal(await getSni('secure.example.test'), 'tls:secure.example.test', 'other SNIs take the service default chain');
});

test('ServiceEntry: STATIC endpoints, DNS resolution, and TLS origination (DestinationRule tls SIMPLE)', async () => {
  assert.equal((await request(P, 'ext.example.test', '/')).body, 'ext');
  await eventually(async () => (await request(P, 'dns.example.test', '/')).body === 'dns-ext', 5000);
  const secure = await request(P, 'secure.example.test', '/');
  assert.equal(secure.status, 200);
  assert.equal(secure.body, 'tls:secure.example.test');
  const dump = await envoy.configDump();
  const clusters = dump.configs.find((c: any) => c['@type'].endsWith('.ClustersConfigDump')).dynamic_active_clusters.map((c: any) => c.cluster);
  assert.equal(clusters.find((c: any) => c.name === `outbound|${P}||dns.example.test`).type, 'STRICT_DNS');
  assert.deepEqual(rejectedUpdateStats(await envoy.stats()), {});
});

test('invalid policies are refused with a clear error; the last good routing and other config stay', async () => {
  const good = fs.readFileSync(`${mesh.dir}/vs.yaml`, 'utf8');
  const cases: Array<[string, string, RegExp]> = [
    ['weights not summing to 100', good.replace(`  - route:
    - destination: {host: web, subset: v1}
---`, `  - route:
    - destination: {host: web, subset: v1}
      weight: 60
    - destination: {host: web, subset: v2}
      weight: 30
---`), /\(VirtualService web\): spec\.http\[6\]\.route: total destination weight 90 != 100/],
    ['a bad regex', good.replace('uri: {exact: /direct}', 'uri: {regex: "(["}'), /\(VirtualService web\): spec\.http\[1\]\.match\[0\]\.uri\.regex: invalid regex/],
  ];
  for (const [what, text, expected] of cases) {
    const n = errorLog.length;
    mesh.write('vs.yaml', text);
    await mesh.settle();
    await eventually(async () => errorLog.length > n, 3000);
    const msg = errorLog.slice(n).map((l) => JSON.parse(l).msg as string).join('\n');
    assert.match(msg, expected, `${what}: error names the object and field: ${msg}`);
    // The last good VirtualService stays in force, and everything else still routes.
    assert.equal((await request(P, WEB, '/direct')).status, 418, what);
    assert.equal((await request(P, WEB, '/api/x')).body, 'v2', what);
    assert.equal((await request(P, 'ext.example.test', '/')).body, 'ext', what);
  }
  // An unknown subset is not a schema error (istiod accepts it; istioctl analyze warns): that route gets no
  // upstream (503) while the other routes and hosts keep working.
  mesh.write('vs.yaml', good.replace(`match: [{uri: {prefix: /fault}}]`, `match: [{uri: {prefix: /nosubset}}]
    route:
    - destination: {host: web, subset: v9}
  - match: [{uri: {prefix: /fault}}]`));
  await eventually(async () => (await request(P, WEB, '/nosubset')).status === 503, 5000);
  assert.equal((await request(P, WEB, '/direct')).status, 418);
  assert.equal((await request(P, WEB, '/')).body, 'v1');
  assert.deepEqual(rejectedUpdateStats(await envoy.stats()), {});
  mesh.write('vs.yaml', good);
  await mesh.settle();
});

test('a Sidecar with egress hosts and REGISTRY_ONLY shrinks what a proxy receives and blocks the rest', async () => {
  mesh.write('sidecar.yaml', `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: locked}
spec:
  egress:
  - hosts: ["default/web.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`);
  await mesh.settle();
  // The locked proxy binds the same 127.0.0.1 ports: retire the first one.
  await envoy.stop();
  locked = await startEnvoy({
    xdsPort: mesh.server.xdsPort,
    nodeId: 'sidecar~127.0.0.2~client-0.locked~locked.svc.cluster.local',
    metadata: { INTERCEPTION_MODE: 'NONE', NAMESPACE: 'locked', ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
  const dump = await locked.waitFor((d) => (d.configs.find((c: any) => c['@type'].endsWith('.ClustersConfigDump'))?.dynamic_active_clusters ?? [])
    .some((c: any) => c.cluster.name === `outbound|${P}|v1|${WEB}`) &&
    (d.configs.find((c: any) => c['@type'].endsWith('.RoutesConfigDump'))?.dynamic_route_configs ?? []).length > 0, 15000);
  const clusters = dump.configs.find((c: any) => c['@type'].endsWith('.ClustersConfigDump')).dynamic_active_clusters.map((c: any) => c.cluster.name).sort();
  // web is admitted by the egress host; shadow comes along as the mirror destination of web's VirtualService
  // (istiod adds VirtualService destinations to the SidecarScope); od, tcpsvc and the ServiceEntries stay out.
  assert.deepEqual(clusters, [
    'BlackHoleCluster', 'PassthroughCluster', `outbound|${P}||${WEB}`, `outbound|${P}|v1|${WEB}`, `outbound|${P}|v2|${WEB}`,
    `outbound|${P}||shadow.default.svc.cluster.local`,
  ].sort());
  const listeners = dump.configs.find((c: any) => c['@type'].endsWith('.ListenersConfigDump')).dynamic_listeners.map((l: any) => l.name);
  assert.deepEqual(listeners, [`127.0.0.1_${P}`], 'no TCP listener for tcpsvc: it is outside the egress hosts');
  await eventually(async () => (await request(P, WEB, '/').catch(() => ({ body: '' }))).body === 'v1', 10000, 100);
  // Everything not in the registry view — a ServiceEntry host outside the egress hosts, an unknown host — gets 502.
  assert.equal((await request(P, 'ext.example.test', '/')).status, 502);
  assert.equal((await request(P, 'unknown.example.org', '/')).status, 502);
  assert.equal((await request(P, WEB, '/direct')).status, 418, 'the VirtualService still applies');
  assert.deepEqual(rejectedResources(await locked.configDump()), []);
  assert.deepEqual(rejectedUpdateStats(await locked.stats()), {});
});
