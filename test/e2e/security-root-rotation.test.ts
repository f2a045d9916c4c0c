/**
 * Automatic root rotation (src/security/root-rotator.ts, istiod's SelfSignedCARootCertRotator) end to end: a server
 * whose self-signed root lives seconds, checked every 250 ms with jitter, rotates it by itself before it expires; a
 * proxy connected over mTLS ADS with SDS ROOTCA receives, unasked and on the same stream, a bundle holding the old
 * and the new root; a leaf issued before and one issued after the rotation both verify against that bundle with
 * openssl; the stream keeps serving; the log names the old and new root serials, never a key; stop() ends the checks.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient, type Response } from '../helpers/ads-client.js';
import { caClient, createCertificate, generateCsr, ISTIOD_SAN } from '../../src/security/workload-agent.js';
import { splitPemCertificates } from '../../src/security/x509.js';
import { rootWaitMs } from '../../src/security/root-rotator.js';
import { CLUSTER_TYPE, SECRET_TYPE } from '../../src/proto/type-urls.js';

const IDENTITY = 'spiffe://cluster.local/ns/default/sa/reviews';
const NODE = 'sidecar~127.0.0.1~reviews-v1-1.default~default.svc.cluster.local';
/**
 * The root lives 10 s (plus the minute the CA backdates notBefore for clock skew, which istiod's grace period counts
 * as part of the life): with 10 % grace it is due 10 − 0.1 × 70 = 3 s after creation, and the old root stays valid
 * (and in the bundle) for 7 s more — the overlap this test checks within.
 */
const ROOT_TTL_MS = 10_000;
const GRACE_PERCENTILE = 10;
const CHECK_MS = 250;

let mesh: TestMesh;
let tmp: string;
let logText = '';
let clientCert: { certChainPem: string; keyPem: string };
let firstRootPem: string;
let stopped = false;

const CHANNEL_OPTS = { 'grpc.ssl_target_name_override': ISTIOD_SAN, 'grpc.default_authority': ISTIOD_SAN };

function secrets(r: Response): Map<string, any> { return new Map(r.resources.map((s: any) => [s.name, s])); }
function pemOf(bytes: string): string { return Buffer.from(bytes, 'base64').toString('utf8'); }
function bundleOf(r: Response): string { return pemOf(secrets(r).get('ROOTCA').validation_context.trusted_ca.inline_bytes); }
function leafOf(r: Response): string { return pemOf(secrets(r).get('default').tls_certificate.certificate_chain.inline_bytes); }

/** openssl verify (time checks included) of a leaf against a root bundle. */
function verify(leafPem: string, rootsPem: string, label: string): { ok: boolean; out: string } {
  const dir = fs.mkdtempSync(path.join(tmp, `${label}-`));
  fs.writeFileSync(path.join(dir, 'leaf.pem'), leafPem);
  fs.writeFileSync(path.join(dir, 'roots.pem'), rootsPem);
  const r = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'roots.pem'), path.join(dir, 'leaf.pem')], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-rootrot-'));
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-reviews default reviews\n');
  const sink = new Writable({ write(chunk, _enc, cb) { logText += chunk.toString(); cb(); } });
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ port: 19080 }] }),
  }, {
    secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens'), logger: pino({ level: 'debug' }, sink),
    selfSignedRootTtlMs: ROOT_TTL_MS, rootCertCheckIntervalMs: CHECK_MS, rootCertGracePeriodPercentile: GRACE_PERCENTILE, rootCertRotatorJitter: true,
  });
  firstRootPem = fs.readFileSync(path.join(tmp, 'ca', 'istio-ca-secret', 'root-cert.pem'), 'utf8');
  // istio-agent's first step: a CSR with a token, for the client certificate it presents on the xDS connection.
  const { csrPem, keyPem } = await generateCsr([IDENTITY]);
  const c = caClient({ address: `127.0.0.1:${mesh.server.secureXdsPort}`, rootPem: firstRootPem });
  const res = await createCertificate(c, { csr: csrPem, validityDuration: 3600, metadata: {} }, 'tok-reviews');
  c.close();
  clientCert = { certChainPem: res.certChain.slice(0, -1).join(''), keyPem };
});

after(async () => {
  if (!stopped) await mesh?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the self-signed root rotates by itself before expiry; a connected proxy gets the overlapping bundle over SDS on the same stream', async () => {
  const first = new X509Certificate(firstRootPem);
  const rotator = mesh.server.rootRotator!;
  assert.ok(rotator, 'the server runs a root rotator');
  assert.ok(rotator.jitterMs >= 0 && rotator.jitterMs < CHECK_MS, `jitter within [0, interval): ${rotator.jitterMs}`);
  const life = Date.parse(first.validTo) - Date.parse(first.validFrom);
  assert.ok(life >= ROOT_TTL_MS && life <= ROOT_TTL_MS + 61_000, `root TTL from CITADEL_SELF_SIGNED_CA_CERT_TTL (got ${life} ms)`);
  assert.ok(rootWaitMs(new Date(first.validFrom), new Date(first.validTo), GRACE_PERCENTILE, Date.now()) > 0, 'not yet due when the test starts');

  const creds = grpc.credentials.createSsl(Buffer.from(firstRootPem), Buffer.from(clientCert.keyPem), Buffer.from(clientCert.certChainPem));
  const ads = new AdsTestClient(`127.0.0.1:${mesh.server.secureXdsPort}`, NODE, { NAMESPACE: 'default' }, creds, CHANNEL_OPTS);
  try {
    ads.send({ type_url: SECRET_TYPE, resource_names: ['default', 'ROOTCA'] });
    let r = await ads.next(SECRET_TYPE, 5000);
    assert.equal(splitPemCertificates(bundleOf(r)).length, 1, 'one root before the rotation');
    const leafBefore = leafOf(r);
    assert.ok(new X509Certificate(leafBefore).verify(first.publicKey), 'the first leaf is signed by the first root');
    assert.equal(rotator.stats.rotations, 0);
    ads.ack(r, ['ROOTCA', 'default']);

    // Nobody calls rotateRoot(): the rotator does, about 3 s after the root was created. Pushes come unasked.
    const deadline = Date.now() + ROOT_TTL_MS;
    while (splitPemCertificates(bundleOf(r)).length < 2) {
      r = await ads.next(SECRET_TYPE, Math.max(1, deadline - Date.now()));
      ads.ack(r, ['ROOTCA', 'default']);
    }
    const rotatedAt = Date.now();
    assert.ok(rotatedAt < Date.parse(first.validTo), 'rotated before the old root expired');
    assert.ok(rotator.stats.rotations >= 1, 'the rotator rotated');
    const bundle = bundleOf(r);
    const roots = splitPemCertificates(bundle).map((p) => new X509Certificate(p));
    assert.ok(roots.some((x) => x.fingerprint256 === first.fingerprint256), 'the bundle keeps the old root');
    const newest = roots[0]!;
    assert.notEqual(newest.fingerprint256, first.fingerprint256, 'and leads with a new root');
    assert.ok(newest.verify(newest.publicKey) && newest.ca, 'the new root is a self-signed CA');
    const newLife = Date.parse(newest.validTo) - Date.parse(newest.validFrom);
    assert.ok(newLife >= ROOT_TTL_MS && newLife <= ROOT_TTL_MS + 61_000, 'the new root has the configured TTL too');

    const leafAfter = leafOf(r);
    assert.ok(new X509Certificate(leafAfter).verify(newest.publicKey), 'the pushed leaf is signed by the new root');
    const vb = verify(leafBefore, bundle, 'before');
    assert.ok(vb.ok, `leaf issued before the rotation verifies against the bundle: ${vb.out}`);
    const va = verify(leafAfter, bundle, 'after');
    assert.ok(va.ok, `leaf issued after the rotation verifies against the bundle: ${va.out}`);
    assert.ok(!verify(leafAfter, firstRootPem, 'after-old').ok, 'the new leaf does not verify against the old root alone');

    // The stream stays up and keeps serving.
    assert.equal(ads.error, undefined, 'stream stayed up through the rotation');
    ads.send({ type_url: CLUSTER_TYPE });
    const cds = await ads.next(CLUSTER_TYPE, 5000);
    assert.ok(cds.resources.some((c: any) => c.name === 'outbound|9080||reviews.default.svc.cluster.local'), 'CDS on the same stream after the rotation');
    assert.equal(ads.error, undefined);
  } finally {
    ads.close();
  }

  // The log names the old and new root by serial and expiry; no key material anywhere.
  const line = logText.split('\n').find((l) => l.includes('self-signed root rotated before expiry'));
  assert.ok(line, 'the rotation is logged');
  const rec = JSON.parse(line);
  assert.equal(rec.oldRootSerial, first.serialNumber);
  assert.notEqual(rec.newRootSerial, first.serialNumber);
  assert.equal(rec.oldRootNotAfter, new Date(first.validTo).toISOString());
  assert.ok(Date.parse(rec.newRootNotAfter) > Date.parse(rec.oldRootNotAfter));
  assert.doesNotMatch(logText, /PRIVATE KEY/);
  const key = fs.readFileSync(path.join(tmp, 'ca', 'istio-ca-secret', 'ca-key.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
  assert.ok(!logText.includes(key.slice(0, 40)), 'the CA key is not logged');

  // stop() ends the checks.
  await mesh.stop();
  stopped = true;
  const checks = rotator.stats.checks;
  await new Promise((res) => setTimeout(res, CHECK_MS * 3));
  assert.equal(rotator.stats.checks, checks, 'no check after stop');
});
