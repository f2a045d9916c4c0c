/**
 * The CA root in a REAL Kubernetes API server (kube-apiserver + etcd from test/helpers/kube-apiserver.ts): two
 * meshpilots in Kubernetes mode start together; the Lease leader creates `istio-ca-secret` (kubectl shows istiod's
 * type and keys), the other loads the same root; a CSR over the secure port (15012), authenticated by a real
 * service-account token through TokenReview, is signed by that root (openssl verify); a root rotation by the leader
 * reaches the other replica through the Secret; a restart reuses the stored root; no CA key in logs or debug output.
 * Skips, saying why, where the API server, etcd or kubectl is missing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import tls from 'node:tls';
import { pino } from 'pino';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { eventually } from '../helpers/grpc-backend.js';
import { startRealApiServer, realApiServerMissing, type RealApiServer } from '../helpers/kube-apiserver.js';
import { ISTIOD_SAN, caClient, createCertificate, generateCsr } from '../../src/security/workload-agent.js';
import { splitPemCertificates } from '../../src/security/x509.js';

const missing = realApiServerMissing();
const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
let kube: RealApiServer;
let tmp: string;
const meshes: TestMesh[] = [];
const lines: string[] = [];
const log = pino({ level: 'debug' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));
/** Key material seen in the Secret (base64 and PEM body): none may appear in logs or debug output. */
const keys = new Set<string>();

async function start(name: string): Promise<TestMesh> {
  const m = await startMeshpilot({}, {
    secureXdsPort: 0, caDir: path.join(tmp, name), logger: log,
    kube: { kubeconfigs: [{ path: kube.kubeconfigPath }], reflector: { backoffInitialMs: 50, backoffMaxMs: 1000 } },
  });
  meshes.push(m);
  return m;
}

async function stop(m: TestMesh): Promise<void> {
  meshes.splice(meshes.indexOf(m), 1);
  await m.stop();
}

interface CaSecret { type: string; keys: string[]; data: Record<string, string> }

async function caSecret(): Promise<CaSecret> {
  const s = JSON.parse(await kube.kubectl(['get', 'secret', 'istio-ca-secret', '-n', 'istio-system', '-o', 'json']));
  const data = Object.fromEntries(Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  keys.add((s.data as Record<string, string>)['ca-key.pem']!.slice(0, 48));
  keys.add(data['ca-key.pem']!.replace(/-----[^-]+-----|\s/g, '').slice(0, 48));
  return { type: s.type, keys: Object.keys(s.data).sort(), data };
}

function verify(leafPem: string, rootsPem: string): { status: number | null; out: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'verify-'));
  fs.writeFileSync(path.join(dir, 'leaf.pem'), leafPem);
  fs.writeFileSync(path.join(dir, 'roots.pem'), rootsPem);
  const r = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'roots.pem'), path.join(dir, 'leaf.pem')], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A CSR for `sleep` over the secure port of `m`, authenticated by a real service-account token (TokenReview). */
async function signOver15012(m: TestMesh, rootPem: string): Promise<string[]> {
  const token = (await kube.kubectl(['create', 'token', 'sleep', '-n', 'default', '--audience', 'istio-ca'])).trim();
  const { csrPem } = await generateCsr([SLEEP]);
  const client = caClient({ address: `127.0.0.1:${m.server.secureXdsPort}`, rootPem });
  try {
    return (await createCertificate(client, { csr: csrPem, validityDuration: 3600, metadata: {} }, token)).certChain;
  } finally { client.close(); }
}

/** Does the certificate the secure port of `m` serves verify against `caPem` alone? */
function servedCertVerifies(m: TestMesh, caPem: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: m.server.secureXdsPort, ca: caPem, servername: ISTIOD_SAN, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      resolve(s.authorized);
      s.destroy();
    });
    s.on('error', reject);
  });
}

before(async () => {
  if (missing) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-ca-kube-'));
  kube = await startRealApiServer();
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
  await kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sleep', namespace: 'default' } });
});

after(async () => {
  for (const m of [...meshes]) await m.stop();
  await kube?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

let first: TestMesh, second: TestMesh;

test('two replicas: the leader creates istio-ca-secret (istiod\'s type and keys), both sign with its root; a CSR over 15012 verifies with openssl', { skip: missing }, async () => {
  [first, second] = await Promise.all([start('a'), start('b')]);
  await eventually(async () => [first, second].filter((m) => m.server.leader?.isLeader()).length === 1, 20_000);
  const secret = await caSecret();
  assert.equal(secret.type, 'istio.io/ca-root');
  assert.deepEqual(secret.keys, ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'key.pem', 'root-cert.pem']);
  assert.match(secret.data['ca-key.pem']!, /BEGIN PRIVATE KEY/);
  for (const m of [first, second]) {
    assert.equal(m.server.secure!.ca.trustBundlePem().trim(), secret.data['root-cert.pem']!.trim(), 'each replica trusts the Secret\'s root');
    assert.equal(fs.existsSync(path.join(tmp, m === first ? 'a' : 'b', 'istio-ca-secret')), false, 'no root on disk in Kubernetes mode');
  }
  const follower = first.server.leader!.isLeader() ? second : first;
  const chain = await signOver15012(follower, secret.data['root-cert.pem']!);
  assert.equal(chain[chain.length - 1]!.trim(), secret.data['root-cert.pem']!.trim(), 'the response ends with the Secret\'s root bundle');
  const v = verify(chain[0]!, secret.data['root-cert.pem']!);
  assert.equal(v.status, 0, `openssl verify: ${v.out}`);
  const text = spawnSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: chain[0]!, encoding: 'utf8' }).stdout;
  assert.match(text, new RegExp(`URI:${SLEEP}`), 'identity from the TokenReview of the service-account token');
});

test('root rotation by the leader is written to the Secret and picked up by the other replica', { skip: missing }, async () => {
  const leader = first.server.leader!.isLeader() ? first : second;
  const follower = leader === first ? second : first;
  const before = await caSecret();
  const oldLeaf = await signOver15012(follower, before.data['root-cert.pem']!);
  await leader.server.secure!.ca.rotateRoot();
  const after = await caSecret();
  assert.notEqual(after.data['ca-cert.pem'], before.data['ca-cert.pem']);
  assert.equal(splitPemCertificates(after.data['root-cert.pem']!).length, 2, 'new root + previous root');
  await eventually(async () => follower.server.secure!.ca.rootFingerprint() === leader.server.secure!.ca.rootFingerprint(), 10_000);
  // The follower's secure port re-issues its serving certificate from the new root: trusting the new root alone works.
  let chain: string[] = [];
  await eventually(async () => {
    try { chain = await signOver15012(follower, after.data['ca-cert.pem']!); return true; } catch { return false; }
  }, 10_000);
  assert.equal(await servedCertVerifies(follower, after.data['ca-cert.pem']!), true);
  assert.equal(await servedCertVerifies(follower, before.data['ca-cert.pem']!), false, 'the old root alone no longer verifies the port');
  assert.equal(chain[chain.length - 1]!.trim(), after.data['root-cert.pem']!.trim(), 'the response ends with the rotated bundle');
  assert.equal(verify(chain[0]!, after.data['root-cert.pem']!).status, 0, 'new leaf verifies with the bundle');
  assert.equal(verify(oldLeaf[0]!, after.data['root-cert.pem']!).status, 0, 'old leaf still verifies during the overlap');
  assert.notEqual(verify(chain[0]!, before.data['root-cert.pem']!).status, 0, 'the new leaf is signed by the new root');
});

test('a restart reuses the root stored in the Secret; no CA key in logs or debug output', { skip: missing }, async () => {
  const stored = await caSecret();
  await Promise.all([stop(first), stop(second)]);
  const again = await start('c');
  assert.equal(again.server.secure!.ca.trustBundlePem().trim(), stored.data['root-cert.pem']!.trim());
  assert.deepEqual((await caSecret()).data, stored.data, 'the Secret is unchanged');
  for (const p of ['/debug/clusterz', '/debug/configz', '/debug/registryz', '/debug/syncz', '/debug/ui/state']) {
    const body = await (await fetch(`http://127.0.0.1:${again.server.monitoringPort}${p}`)).text();
    assert.ok(!body.includes('PRIVATE KEY'), `${p} shows a private key`);
    for (const k of keys) assert.ok(!body.includes(k), `${p} shows CA key material`);
  }
  assert.ok(lines.some((l) => l.includes('istio-ca-secret')), 'the CA logged about its Secret');
  for (const l of lines) {
    assert.ok(!l.includes('PRIVATE KEY'), `log line with a PEM key: ${l.slice(0, 200)}`);
    for (const k of keys) assert.ok(!l.includes(k), `log line with CA key material: ${l.slice(0, 200)}`);
  }
});
