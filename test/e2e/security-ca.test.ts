/**
 * The CA over real gRPC/TLS on the secure port: issued chains verify with openssl, callers are authenticated by
 * token or client certificate, impersonation and bad requests are refused with clear statuses, the self-signed
 * root persists, a plugged-in cacerts CA (root → intermediate) is used as is, and a rotated root overlaps.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import crypto from 'node:crypto';
import { startMeshpilot, type TestMesh } from '../helpers/meshpilot.js';
import { caClient, createCertificate, generateCsr } from '../../src/security/workload-agent.js';
import { CertificateAuthority, CaError } from '../../src/security/ca.js';

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const OTHER = 'spiffe://cluster.local/ns/prod/sa/payments';

let mesh: TestMesh;
let caDir: string;
let tmp: string;
let address: string;
let rootPem: string;

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** openssl verify of leaf (chain[0]) against the given roots with the rest of the chain as untrusted intermediates. */
function verifyChain(chain: string[], rootsPem: string, name: string): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  fs.writeFileSync(path.join(dir, 'leaf.pem'), chain[0]!);
  fs.writeFileSync(path.join(dir, 'roots.pem'), rootsPem);
  const inter = chain.slice(1, -1);
  const args = ['verify', '-CAfile', path.join(dir, 'roots.pem')];
  if (inter.length > 0) {
    fs.writeFileSync(path.join(dir, 'inter.pem'), inter.join(''));
    args.push('-untrusted', path.join(dir, 'inter.pem'));
  }
  args.push(path.join(dir, 'leaf.pem'));
  const r = openssl(args);
  assert.equal(r.status, 0, `openssl verify failed: ${r.out}`);
  return r.out;
}

function certText(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' });
}

async function expectStatus(p: Promise<unknown>, code: grpc.status, detail: RegExp): Promise<void> {
  await assert.rejects(p, (e: grpc.ServiceError) => {
    assert.equal(e.code, code, `expected ${grpc.status[code]}, got ${grpc.status[e.code]}: ${e.details}`);
    assert.match(e.details, detail);
    return true;
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-ca-'));
  caDir = path.join(tmp, 'ca');
  fs.writeFileSync(path.join(tmp, 'tokens'), '# token namespace serviceaccount\ntok-sleep default sleep\n');
  mesh = await startMeshpilot({}, { secureXdsPort: 0, caDir, caTokenFile: path.join(tmp, 'tokens') });
  address = `127.0.0.1:${mesh.server.secureXdsPort}`;
  rootPem = fs.readFileSync(path.join(caDir, 'istio-ca-secret', 'root-cert.pem'), 'utf8');
});

after(async () => {
  await mesh?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('token caller gets leaf + root; chain verifies with openssl; SAN, usages and default 24h TTL are istiod\'s', async () => {
  const { csrPem } = await generateCsr([SLEEP]);
  const client = caClient({ address, rootPem });
  try {
    const res = await createCertificate(client, { csr: csrPem, validityDuration: 0, metadata: {} }, 'tok-sleep');
    assert.equal(res.certChain.length, 2, 'self-signed CA: leaf then root');
    assert.equal(res.certChain[1]!.trim(), rootPem.trim());
    verifyChain(res.certChain, rootPem, 'default');
    const text = certText(res.certChain[0]!);
    assert.match(text, new RegExp(`URI:${SLEEP}`));
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text, /CA:FALSE/);
    const leaf = new crypto.X509Certificate(res.certChain[0]!);
    const ttlH = (Date.parse(leaf.validTo) - Date.now()) / 3600_000;
    assert.ok(ttlH > 23.9 && ttlH <= 24, `default TTL 24h, got ${ttlH}h`);
    // A requested TTL below the maximum is honoured.
    const res1h = await createCertificate(client, { csr: csrPem, validityDuration: 3600, metadata: {} }, 'tok-sleep');
    const ttl1 = (Date.parse(new crypto.X509Certificate(res1h.certChain[0]!).validTo) - Date.now()) / 3600_000;
    assert.ok(ttl1 > 0.95 && ttl1 <= 1, `1h TTL, got ${ttl1}h`);
  } finally {
    client.close();
  }
});

test('unauthenticated, wrong-identity, over-long and malformed requests are refused with clear statuses', async () => {
  const client = caClient({ address, rootPem });
  try {
    const mine = await generateCsr([SLEEP]);
    await expectStatus(createCertificate(client, { csr: mine.csrPem, validityDuration: 0, metadata: {} }),
      grpc.status.UNAUTHENTICATED, /no credential/);
    await expectStatus(createCertificate(client, { csr: mine.csrPem, validityDuration: 0, metadata: {} }, 'not-a-token'),
      grpc.status.UNAUTHENTICATED, /not in the token list/);
    const theirs = await generateCsr([OTHER]);
    await expectStatus(createCertificate(client, { csr: theirs.csrPem, validityDuration: 0, metadata: {} }, 'tok-sleep'),
      grpc.status.PERMISSION_DENIED, /CSR asks for identity spiffe:\/\/cluster.local\/ns\/prod\/sa\/payments, but the caller is spiffe:\/\/cluster.local\/ns\/default\/sa\/sleep/);
    await expectStatus(createCertificate(client, { csr: mine.csrPem, validityDuration: 0, metadata: { ImpersonatedIdentity: OTHER } }, 'tok-sleep'),
      grpc.status.PERMISSION_DENIED, /may not request a certificate for/);
    await expectStatus(createCertificate(client, { csr: mine.csrPem, validityDuration: 91 * 86400, metadata: {} }, 'tok-sleep'),
      grpc.status.INVALID_ARGUMENT, /greater than the max allowed TTL 7776000s/);
    await expectStatus(createCertificate(client, { csr: 'not a csr', validityDuration: 0, metadata: {} }, 'tok-sleep'),
      grpc.status.INVALID_ARGUMENT, /CSR is not a valid PKCS#10/);
    assert.ok(mesh.server.secure!.certService.refused >= 6);
  } finally {
    client.close();
  }
});

test('a client certificate from our CA authenticates; one from another CA does not', async () => {
  const first = await generateCsr([SLEEP]);
  const tokenClient = caClient({ address, rootPem });
  const issued = await createCertificate(tokenClient, { csr: first.csrPem, validityDuration: 0, metadata: {} }, 'tok-sleep');
  tokenClient.close();

  const mtls = caClient({ address, rootPem, clientCert: { certChainPem: issued.certChain[0]!, keyPem: first.keyPem } });
  try {
    const again = await generateCsr([SLEEP]);
    const res = await createCertificate(mtls, { csr: again.csrPem, validityDuration: 600, metadata: {} });
    verifyChain(res.certChain, rootPem, 'mtls');
    assert.match(certText(res.certChain[0]!), new RegExp(`URI:${SLEEP}`));
    const theirs = await generateCsr([OTHER]);
    await expectStatus(createCertificate(mtls, { csr: theirs.csrPem, validityDuration: 0, metadata: {} }),
      grpc.status.PERMISSION_DENIED, /caller is spiffe:\/\/cluster.local\/ns\/default\/sa\/sleep/);
  } finally {
    mtls.close();
  }

  // A certificate for the same identity, but from a CA of its own: grpc-js reports no verified peer, so no identity.
  const foreignDir = path.join(tmp, 'foreign');
  const foreign = await CertificateAuthority.load({ dir: foreignDir, trustDomain: 'cluster.local' });
  const forged = await foreign.issueKeyPair({ uris: [SLEEP] }, 3600_000);
  const forgedClient = caClient({ address, rootPem, clientCert: { certChainPem: forged.certChain.join(''), keyPem: forged.privateKeyPem } });
  try {
    const csr = await generateCsr([SLEEP]);
    await expectStatus(createCertificate(forgedClient, { csr: csr.csrPem, validityDuration: 0, metadata: {} }),
      grpc.status.UNAUTHENTICATED, /request authenticate failure/);
  } finally {
    forgedClient.close();
  }
});

test('self-signed root persists across restarts; root rotation keeps the old root trusted during the overlap', async () => {
  const dir = path.join(tmp, 'persist');
  const a = await CertificateAuthority.load({ dir, trustDomain: 'cluster.local' });
  const b = await CertificateAuthority.load({ dir, trustDomain: 'cluster.local' });
  assert.equal(a.rootFingerprint(), b.rootFingerprint(), 'second start reuses the persisted root');
  assert.equal((fs.statSync(path.join(dir, 'istio-ca-secret', 'ca-key.pem')).mode & 0o777), 0o600, 'CA key is private');

  const before = await b.issueKeyPair({ uris: [SLEEP] }, 3600_000);
  const oldRoot = b.trustBundlePem();
  await b.rotateRoot();
  assert.notEqual(b.rootFingerprint(), a.rootFingerprint());
  assert.equal(b.rootCount(), 2, 'bundle holds new and previous root');
  const afterLeaf = await b.issueKeyPair({ uris: [SLEEP] }, 3600_000);
  const bundle = b.trustBundlePem();
  verifyChain([before.certChain[0]!, 'root'], bundle, 'old-leaf-new-bundle');
  verifyChain([afterLeaf.certChain[0]!, 'root'], bundle, 'new-leaf-new-bundle');
  // The new leaf is really signed by the new root: the old root alone does not verify it.
  const dirOld = fs.mkdtempSync(path.join(tmp, 'oldroot-'));
  fs.writeFileSync(path.join(dirOld, 'r.pem'), oldRoot);
  fs.writeFileSync(path.join(dirOld, 'l.pem'), afterLeaf.certChain[0]!);
  assert.notEqual(openssl(['verify', '-CAfile', path.join(dirOld, 'r.pem'), path.join(dirOld, 'l.pem')]).status, 0);
  // The bundle (with the previous root) is what a restart loads.
  const c = await CertificateAuthority.load({ dir, trustDomain: 'cluster.local' });
  assert.equal(c.rootFingerprint(), b.rootFingerprint());
  assert.equal(c.rootCount(), 2);
});

test('plugged-in cacerts (root → intermediate) signs leaves that chain through the intermediate', async () => {
  const dir = path.join(tmp, 'cacerts');
  fs.mkdirSync(dir);
  const run = (args: string[]): void => { const r = openssl(args); assert.equal(r.status, 0, r.out); };
  const p = (f: string): string => path.join(dir, f);
  fs.writeFileSync(p('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n');
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('root-key.pem'), '-out', p('root-cert.pem'), '-days', '30', '-subj', '/O=Istio/CN=Root CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca-key.pem'), '-out', p('ca.csr'), '-subj', '/O=Istio/CN=Intermediate CA']);
  run(['x509', '-req', '-in', p('ca.csr'), '-CA', p('root-cert.pem'), '-CAkey', p('root-key.pem'), '-CAcreateserial', '-out', p('ca-cert.pem'), '-days', '20', '-extfile', p('ca.ext')]);
  fs.writeFileSync(p('cert-chain.pem'), fs.readFileSync(p('ca-cert.pem'), 'utf8') + fs.readFileSync(p('root-cert.pem'), 'utf8'));
  fs.rmSync(p('root-key.pem'));

  const ca = await CertificateAuthority.load({ dir, trustDomain: 'cluster.local' });
  assert.equal(ca.mode, 'plugged-in');
  const { csrPem } = await generateCsr([SLEEP]);
  const issued = await ca.signCsr(csrPem, { uris: [SLEEP] }, 3600_000);
  assert.equal(issued.certChain.length, 3, 'leaf, intermediate, root');
  const out = verifyChain(issued.certChain, fs.readFileSync(p('root-cert.pem'), 'utf8'), 'plugged');
  assert.match(out, /OK/);
  // The intermediate alone is not a trust anchor for openssl: the leaf really chains through it to the root.
  assert.match(certText(issued.certChain[0]!), /Issuer: O = Istio, CN = Intermediate CA/);

  // A partial cacerts directory is an error that names what is missing.
  const partial = path.join(tmp, 'partial');
  fs.mkdirSync(partial);
  fs.copyFileSync(p('ca-cert.pem'), path.join(partial, 'ca-cert.pem'));
  await assert.rejects(CertificateAuthority.load({ dir: partial, trustDomain: 'cluster.local' }),
    (e: CaError) => e instanceof CaError && /missing ca-key.pem, root-cert.pem, cert-chain.pem/.test(e.message));
  // A key that does not belong to the certificate is refused.
  const mismatched = path.join(tmp, 'mismatched');
  fs.cpSync(dir, mismatched, { recursive: true });
  run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', path.join(mismatched, 'ca-key.pem')]);
  await assert.rejects(CertificateAuthority.load({ dir: mismatched, trustDomain: 'cluster.local' }), /does not match its private key/);
});
