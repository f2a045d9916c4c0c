/**
 * A real Envoy gateway terminates TLS with a `credentialName` certificate served over SDS: the Secret lives in
 * `--secret-dir` in the gateway's namespace; the gateway connects to the secure port with a client certificate
 * (its verified identity decides the namespace); a Secret of another namespace is refused; replacing the Secret
 * rotates the served certificate without restarting anything.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { startEnvoy, rejectedResources, type EnvoyHandle, xdsTlsFrom } from '../helpers/envoy.js';
import { startHttpBackend, type HttpBackend } from '../helpers/http-backend.js';
import { freePort } from '../helpers/ports.js';
import { WorkloadCertFiles } from '../../src/security/workload-agent.js';
import type { CertificateAuthority } from '../../src/security/ca.js';

const HOST = 'secure.example.test';
let mesh: TestMesh;
let gw: EnvoyHandle;
let backend: HttpBackend;
let agent: WorkloadCertFiles;
let tmp: string;
let secretDir: string;
let ca: CertificateAuthority;
let HTTPS_P: number;
let FOREIGN_P: number;

function secretYaml(name: string, namespace: string, certPem: string, keyPem: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: ${namespace}}
type: kubernetes.io/tls
data:
  tls.crt: ${b64(certPem)}
  tls.key: ${b64(keyPem)}
`;
}

function getTls(port: number, urlPath = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path: urlPath, servername: HOST, headers: { host: HOST, ...headers }, ca: ca.trustBundlePem(), agent: false, timeout: 3000,
    }, (res) => {
      let body = '';
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serial }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
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

async function serverCert(): Promise<{ certPem: string; keyPem: string; serial: string }> {
  const c = await ca.issueKeyPair({ dns: [HOST] }, 3600_000);
  return { certPem: c.certChain.join(''), keyPem: c.privateKeyPem, serial: new (await import('node:crypto')).X509Certificate(c.leafPem).serialNumber };
}

let first: { serial: string };

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-gw-'));
  secretDir = path.join(tmp, 'secrets');
  fs.mkdirSync(secretDir);
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-gw istio-system istio-ingressgateway-service-account\n');
  [HTTPS_P, FOREIGN_P] = await Promise.all([freePort(), freePort()]);
  backend = await startHttpBackend('web');
  mesh = await startMeshpilot({
    'web.yaml': serviceYaml({ name: 'web', port: 8000, endpoints: [{ port: backend.port }] }),
    'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${HTTPS_P}, name: https, protocol: HTTPS}
    hosts: ["${HOST}"]
    tls: {mode: SIMPLE, credentialName: gw-cert}
  - port: {number: ${FOREIGN_P}, name: https-foreign, protocol: HTTPS}
    hosts: ["${HOST}"]
    tls: {mode: SIMPLE, credentialName: foreign-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ["${HOST}"]
  gateways: [istio-system/ingress]
  http:
  - route:
    - destination: {host: web.default.svc.cluster.local, port: {number: 8000}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-deny, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
`,
  }, { secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens'), secretDirs: [secretDir] });
  ca = mesh.server.secure!.ca;
  const c = await serverCert();
  first = c;
  fs.writeFileSync(path.join(secretDir, 'gw.yaml'), secretYaml('gw-cert', 'istio-system', c.certPem, c.keyPem));
  // Same name pattern, but in another namespace: the gateway must not get it.
  const f = await serverCert();
  fs.writeFileSync(path.join(secretDir, 'foreign.yaml'), secretYaml('foreign-cert', 'default', f.certPem, f.keyPem));

  const dir = path.join(tmp, 'gw');
  fs.mkdirSync(dir);
  agent = new WorkloadCertFiles(dir, { address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem: ca.trustBundlePem(), token: 'tok-gw' },
    'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account');
  await agent.start();
  gw = await startEnvoy({
    xdsPort: mesh.server.secureXdsPort,
    xdsTls: xdsTlsFrom(agent.files),
    nodeId: 'router~127.0.0.1~ingress-0.istio-system~istio-system.svc.cluster.local',
    metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' },
  });
});

after(async () => {
  await gw?.stop();
  agent?.stop();
  await mesh?.stop();
  await backend?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('the gateway terminates TLS with the credentialName certificate from SDS', async () => {
  const r = await until(() => getTls(HTTPS_P), (x) => x.status === 200, 20_000);
  assert.equal(r.serial, first.serial, 'served certificate is the Secret\'s');
  assert.equal(r.body, 'web');
  const dump = await gw.configDump();
  assert.deepEqual(rejectedResources(dump), []);
  assert.doesNotMatch(JSON.stringify(dump), /BEGIN (EC |RSA )?PRIVATE KEY/, 'no private key in the config dump');
});

test('a Secret from another namespace is refused; the listener that needs it never serves', async () => {
  assert.ok(mesh.server.sds!.stats.refused >= 1, 'SDS refused foreign-cert');
  await assert.rejects(getTls(FOREIGN_P));
});

test('replacing the Secret rotates the served certificate on the running gateway', async () => {
  const next = await serverCert();
  const tmpFile = path.join(secretDir, '.gw.yaml.tmp');
  fs.writeFileSync(tmpFile, secretYaml('gw-cert', 'istio-system', next.certPem, next.keyPem));
  fs.renameSync(tmpFile, path.join(secretDir, 'gw.yaml'));
  const r = await until(() => getTls(HTTPS_P), (x) => x.serial === next.serial, 10_000);
  assert.equal(r.status, 200);
});

test('AuthorizationPolicy on the gateway: RBAC answers 403 for denied paths and headers, allows the rest', async () => {
  const denied = await until(() => getTls(HTTPS_P, '/admin/users'), (x) => x.status === 403, 10_000);
  assert.match(denied.body, /RBAC: access denied/);
  assert.equal((await getTls(HTTPS_P, '/', { 'x-block': 'yes' })).status, 403);
  assert.equal((await getTls(HTTPS_P, '/', { 'x-block': 'no' })).status, 200);
  assert.equal((await getTls(HTTPS_P, '/public')).status, 200);
});

test('RequestAuthentication on the gateway: valid JWT passes, a bad one gets 401, RBAC reads request principals and claims', async () => {
  const { generateKeyPairSync, sign } = await import('node:crypto');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' };
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = (claims: Record<string, unknown>, key = privateKey): string => {
    const head = `${b64({ alg: 'ES256', kid: 'k1', typ: 'JWT' })}.${b64({ iss: 'https://issuer.example', sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600, ...claims })}`;
    return `${head}.${sign('sha256', Buffer.from(head), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  mesh.write('jwt.yaml', `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gw-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: https://issuer.example
    jwks: '${JSON.stringify({ keys: [jwk] })}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-jwt-required, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/secure*"]}}]
  - when: [{key: "request.auth.claims[groups]", values: ["banned"]}]
`);
  await mesh.settle();
  const auth = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
  await until(() => getTls(HTTPS_P, '/secure'), (x) => x.status === 403, 10_000);
  assert.equal((await getTls(HTTPS_P, '/secure', auth(token({})))).status, 200, 'a valid token is a request principal');
  const forged = token({}, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
  const bad = await getTls(HTTPS_P, '/', auth(forged));
  assert.equal(bad.status, 401, 'a token that does not verify is refused by jwt_authn');
  assert.equal((await getTls(HTTPS_P, '/')).status, 200, 'no token is allowed where no policy requires one');
  assert.equal((await getTls(HTTPS_P, '/', auth(token({ groups: ['dev', 'banned'] })))).status, 403, 'claims reach RBAC');
  assert.equal((await getTls(HTTPS_P, '/', auth(token({ groups: ['dev'] })))).status, 200);
});
