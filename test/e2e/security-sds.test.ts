/**
 * ADS over mTLS on the secure port and SDS: `default` carries a key and a certificate for the identity in the
 * client certificate, `ROOTCA` the trust bundle; with a TTL of seconds, rotated certificates reach the connected
 * client on the same stream; a root rotation pushes the overlapping bundle; no private key is ever logged; proxies
 * without a verified client certificate get no workload secrets.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient, type Response } from '../helpers/ads-client.js';
import { caClient, createCertificate, generateCsr, ISTIOD_SAN } from '../../src/security/workload-agent.js';
import { CLUSTER_TYPE, SECRET_TYPE } from '../../src/proto/type-urls.js';

const IDENTITY = 'spiffe://cluster.local/ns/default/sa/reviews';
const NODE = 'sidecar~127.0.0.1~reviews-v1-1.default~default.svc.cluster.local';
const TTL_MS = 4000;

let mesh: TestMesh;
let tmp: string;
let logText = '';
let rootPem: string;
let clientCert: { certChainPem: string; keyPem: string };

function mtlsCredentials(cert?: { certChainPem: string; keyPem: string }): grpc.ChannelCredentials {
  // The current bundle: a test below rotates the root, and the serving certificate follows it.
  return grpc.credentials.createSsl(Buffer.from(mesh.server.secure!.ca.trustBundlePem()), cert ? Buffer.from(cert.keyPem) : null, cert ? Buffer.from(cert.certChainPem) : null);
}
const CHANNEL_OPTS = { 'grpc.ssl_target_name_override': ISTIOD_SAN, 'grpc.default_authority': ISTIOD_SAN };

function secrets(r: Response): Map<string, any> {
  return new Map(r.resources.map((s: any) => [s.name, s]));
}

function pemOf(bytes: string): string { return Buffer.from(bytes, 'base64').toString('utf8'); }

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The workload secret: its leaf verifies against the pushed ROOTCA, has our SAN, and matches its private key. */
function checkWorkload(def: any, rootca: any, label: string): X509Certificate {
  const chain = pemOf(def.tls_certificate.certificate_chain.inline_bytes);
  const key = pemOf(def.tls_certificate.private_key.inline_bytes);
  const bundle = pemOf(rootca.validation_context.trusted_ca.inline_bytes);
  const leaf = new X509Certificate(chain);
  assert.match(leaf.subjectAltName ?? '', new RegExp(`URI:${IDENTITY}`));
  const spki = (k: Parameters<typeof createPublicKey>[0]): Buffer => createPublicKey(k).export({ format: 'der', type: 'spki' });
  assert.deepEqual(spki(createPrivateKey(key)), leaf.publicKey.export({ format: 'der', type: 'spki' }), 'private key matches the certificate');
  const dir = fs.mkdtempSync(path.join(tmp, `${label}-`));
  fs.writeFileSync(path.join(dir, 'leaf.pem'), chain);
  fs.writeFileSync(path.join(dir, 'roots.pem'), bundle);
  const v = openssl(['verify', '-CAfile', path.join(dir, 'roots.pem'), path.join(dir, 'leaf.pem')]);
  assert.equal(v.status, 0, v.out);
  return leaf;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-sds-'));
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-reviews default reviews\n');
  const sink = new Writable({ write(chunk, _enc, cb) { logText += chunk.toString(); cb(); } });
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ port: 19080 }] }),
  }, {
    secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens'),
    workloadCertTtlMs: TTL_MS, logger: pino({ level: 'debug' }, sink),
  });
  rootPem = fs.readFileSync(path.join(tmp, 'ca', 'istio-ca-secret', 'root-cert.pem'), 'utf8');
  // What istio-agent does first: a CSR with a token, for the certificate it then presents on the xDS connection.
  const { csrPem, keyPem } = await generateCsr([IDENTITY]);
  const c = caClient({ address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem });
  const res = await createCertificate(c, { csr: csrPem, validityDuration: 3600, metadata: {} }, 'tok-reviews');
  c.close();
  clientCert = { certChainPem: res.certChain.slice(0, -1).join(''), keyPem };
});

after(async () => {
  await mesh?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('ADS over mTLS serves config and SDS default/ROOTCA; rotation reaches the client on the same stream', async () => {
  const ads = new AdsTestClient(`127.0.0.1:${mesh.server.secureXdsPort}`, NODE, { NAMESPACE: 'default' }, mtlsCredentials(clientCert), CHANNEL_OPTS);
  try {
    ads.send({ type_url: CLUSTER_TYPE });
    const cds = await ads.next(CLUSTER_TYPE, 5000);
    assert.ok(cds.resources.some((c: any) => c.name === 'outbound|9080||reviews.default.svc.cluster.local'), 'CDS over the TLS port');
    ads.ack(cds);

    ads.send({ type_url: SECRET_TYPE, resource_names: ['default', 'ROOTCA'] });
    const first = await ads.next(SECRET_TYPE, 5000);
    const s1 = secrets(first);
    assert.deepEqual([...s1.keys()].sort(), ['ROOTCA', 'default']);
    const leaf1 = checkWorkload(s1.get('default'), s1.get('ROOTCA'), 'first');
    const life = Date.parse(leaf1.validTo) - Date.now();
    assert.ok(life > 0 && life <= TTL_MS, `TTL of seconds, got ${life}ms`);
    ads.ack(first, ['ROOTCA', 'default']);

    // Rotation at half life: the next SDS response comes unasked on the same stream, with a new certificate.
    const start = Date.now();
    const second = await ads.next(SECRET_TYPE, TTL_MS + 2000);
    const waited = Date.now() - start;
    const s2 = secrets(second);
    const leaf2 = checkWorkload(s2.get('default'), s2.get('ROOTCA'), 'rotated');
    assert.notEqual(leaf2.serialNumber, leaf1.serialNumber);
    assert.ok(Date.parse(leaf2.validTo) > Date.parse(leaf1.validTo));
    assert.notEqual(second.version_info, first.version_info);
    assert.ok(waited < TTL_MS, `rotated before the old certificate expired (after ${waited}ms)`);
    ads.ack(second, ['ROOTCA', 'default']);
    // And again: rotation keeps going while the stream stays up.
    const third = await ads.next(SECRET_TYPE, TTL_MS + 2000);
    checkWorkload(secrets(third).get('default'), secrets(third).get('ROOTCA'), 'third');
    ads.ack(third, ['ROOTCA', 'default']);
    assert.equal(ads.error, undefined, 'stream stayed up');
    assert.ok(mesh.server.sds!.stats.rotations >= 2);

    // Root rotation: ROOTCA now carries both roots, and the new leaf chains to the new root.
    const oldLeafPem = pemOf(secrets(third).get('default').tls_certificate.certificate_chain.inline_bytes);
    await mesh.server.secure!.ca.rotateRoot();
    const afterRoot = await ads.next(SECRET_TYPE, 5000);
    const s4 = secrets(afterRoot);
    const bundle = pemOf(s4.get('ROOTCA').validation_context.trusted_ca.inline_bytes);
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2, 'new and previous root');
    const leaf4 = checkWorkload(s4.get('default'), s4.get('ROOTCA'), 'newroot');
    assert.notEqual(leaf4.issuer, '');
    assert.ok(!leaf4.checkIssued(new X509Certificate(rootPem)), 'new leaf is not issued by the old root');
    // The previous leaf still verifies against the pushed bundle (overlap).
    const dir = fs.mkdtempSync(path.join(tmp, 'overlap-'));
    fs.writeFileSync(path.join(dir, 'old.pem'), oldLeafPem);
    fs.writeFileSync(path.join(dir, 'bundle.pem'), bundle);
    assert.equal(openssl(['verify', '-CAfile', path.join(dir, 'bundle.pem'), path.join(dir, 'old.pem')]).status, 0);
    ads.ack(afterRoot, ['ROOTCA', 'default']);
    assert.equal(ads.error, undefined, 'stream stayed up through root rotation');
  } finally {
    ads.close();
  }
  assert.doesNotMatch(logText, /PRIVATE KEY/, 'no private key in the logs');
  assert.match(logText, /SDS: push/, 'pushes are logged (without secrets)');
});

test('without a verified client certificate there are no workload secrets', async () => {
  const refusedBefore = mesh.server.sds!.stats.refused;
  // TLS, but no client certificate: ADS works, SDS default is withheld.
  const ads = new AdsTestClient(`127.0.0.1:${mesh.server.secureXdsPort}`, NODE, { NAMESPACE: 'default' }, mtlsCredentials(), CHANNEL_OPTS);
  // Plaintext port: same.
  const plain = new AdsTestClient(mesh.xdsAddress, NODE, { NAMESPACE: 'default' });
  try {
    for (const c of [ads, plain]) {
      c.send({ type_url: CLUSTER_TYPE });
      await c.next(CLUSTER_TYPE, 5000);
      c.send({ type_url: SECRET_TYPE, resource_names: ['default'] });
    }
    await assert.rejects(ads.next(SECRET_TYPE, 800));
    await assert.rejects(plain.next(SECRET_TYPE, 200));
    assert.equal(mesh.server.sds!.stats.refused, refusedBefore + 1, 'TLS without client cert refused (plaintext is never tapped)');
  } finally {
    ads.close();
    plain.close();
  }
});

test('--xds-port -1 turns the plaintext port off; the secure port alone serves', async () => {
  const only = await startMeshpilot({}, { xdsPort: -1, secureXdsPort: 0, caDir: path.join(tmp, 'ca') });
  try {
    assert.equal(only.server.xdsPort, 0);
    assert.ok(only.server.secureXdsPort > 0);
    const ads = new AdsTestClient(`127.0.0.1:${only.server.secureXdsPort}`, NODE, {}, mtlsCredentials(clientCert), CHANNEL_OPTS);
    ads.send({ type_url: SECRET_TYPE, resource_names: ['ROOTCA'] });
    const r = await ads.next(SECRET_TYPE, 5000);
    assert.equal(r.resources[0].name, 'ROOTCA');
    ads.close();
  } finally {
    await only.stop();
  }
});
