/**
 * The root rotator's decisions (src/security/root-rotator.ts), with a chosen clock: a self-signed root rotates once
 * its remaining life falls below the grace percentile of its whole life (istiod's GetWaitTime), never before; a
 * plugged-in CA is never rotated, even when due; in Kubernetes only the Lease leader rotates and a non-leader, though
 * due, writes nothing and follows the leader's rotation; the timer honours the jitter, never keeps the process alive
 * and stops; no key in any log line.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority } from '../../src/security/ca.js';
import { KubeSecretCaStore, CA_SECRET_NAME, type Leadership } from '../../src/security/ca-store-kube.js';
import { KubeClient, loadKubeConfig } from '../../src/sources/kube/kube-client.js';
import { RootRotator, rootWaitMs, DEFAULT_ROOT_CHECK_INTERVAL_MS, DEFAULT_ROOT_GRACE_PERIOD_PERCENTILE } from '../../src/security/root-rotator.js';
import { splitPemCertificates } from '../../src/security/x509.js';
import { FakeApiServer } from '../helpers/fake-apiserver.js';
import { eventually } from '../helpers/grpc-backend.js';

const NS = 'istio-system';
const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const HOUR = 3600_000;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-root-rotator-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const lines: string[] = [];
const log = pino({ level: 'debug' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));

/** The instant at which `percentile` of the CA's signing root's life remains. */
function whenRemaining(ca: CertificateAuthority, percentile: number): number {
  const r = ca.signingRootInfo();
  return r.notAfter.getTime() - ((r.notAfter.getTime() - r.notBefore.getTime()) * percentile) / 100;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
}

class Gate extends EventEmitter implements Leadership {
  constructor(private leading: boolean) { super(); }
  isLeader(): boolean { return this.leading; }
}

test('defaults are istiod\'s; the wait is the remaining life minus the grace percentile of the whole life', () => {
  assert.equal(DEFAULT_ROOT_CHECK_INTERVAL_MS, HOUR);
  assert.equal(DEFAULT_ROOT_GRACE_PERIOD_PERCENTILE, 20);
  const nb = new Date(0), na = new Date(100_000);
  assert.equal(rootWaitMs(nb, na, 20, 0), 80_000);
  assert.equal(rootWaitMs(nb, na, 20, 80_000), 0);
  assert.ok(rootWaitMs(nb, na, 20, 90_000) < 0);
  assert.ok(rootWaitMs(nb, na, 0, 200_000) < 0, 'an expired root is due whatever the percentile');
  assert.throws(() => new RootRotator({ ca: {} as CertificateAuthority, gracePeriodPercentile: 101 }), /0\.\.100/);
});

test('a self-signed root is rotated once within its grace period, not before; the old root stays in the bundle', async () => {
  const ca = await CertificateAuthority.load({ dir: path.join(tmp, 'self'), trustDomain: 'cluster.local', rootTtlMs: 10 * HOUR, log });
  const rot = new RootRotator({ ca, log, jitter: false });
  const old = ca.signingRootInfo();
  const leafBefore = await ca.issueKeyPair({ uris: [SLEEP] }, HOUR);

  assert.equal(await rot.check(Date.now()), 'not-due');
  assert.equal(await rot.check(whenRemaining(ca, 21)), 'not-due', 'just outside the 20 % grace period');
  assert.equal(ca.rootFingerprint(), old.fingerprint);

  const changed = new Promise<void>((r) => ca.once('rootsChanged', () => r()));
  assert.equal(await rot.check(whenRemaining(ca, 19)), 'rotated');
  await changed;
  const now = ca.signingRootInfo();
  assert.notEqual(now.fingerprint, old.fingerprint);
  assert.notEqual(now.serialNumber, old.serialNumber);
  assert.ok(now.notAfter.getTime() - Date.now() > 9 * HOUR, 'the new root gets the configured TTL');
  assert.equal(ca.rootCount(), 2, 'new and previous root');
  assert.equal(rot.stats.rotations, 1);
  // The new root is far from its grace period: a check right away does nothing.
  assert.equal(await rot.check(Date.now()), 'not-due');
  // Both leaves chain to a root of the bundle.
  const leafAfter = await ca.issueKeyPair({ uris: [SLEEP] }, HOUR);
  const bundle = splitPemCertificates(ca.trustBundlePem()).map((p) => new X509Certificate(p));
  assert.ok(bundle.some((r) => new X509Certificate(leafBefore.leafPem).verify(r.publicKey)), 'old leaf verifies against the bundle');
  assert.ok(new X509Certificate(leafAfter.leafPem).verify(bundle[0]!.publicKey), 'new leaf is signed by the new root');

  const line = lines.find((l) => l.includes('self-signed root rotated before expiry'));
  assert.ok(line);
  const rec = JSON.parse(line);
  assert.equal(rec.oldRootSerial, old.serialNumber);
  assert.equal(rec.newRootSerial, now.serialNumber);
  assert.equal(rec.oldRootNotAfter, old.notAfter.toISOString());
});

test('a plugged-in CA is never rotated, even past its grace period', async () => {
  const dir = path.join(tmp, 'cacerts');
  fs.mkdirSync(dir);
  const p = (f: string): string => path.join(dir, f);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('ca-key.pem'), '-out', p('ca-cert.pem'),
    '-days', '2', '-subj', '/O=Istio/CN=Plugged Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  fs.copyFileSync(p('ca-cert.pem'), p('root-cert.pem'));
  fs.copyFileSync(p('ca-cert.pem'), p('cert-chain.pem'));
  const files = () => Object.fromEntries(['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'].map((f) => [f, fs.readFileSync(p(f), 'utf8')]));
  const before = files();
  const ca = await CertificateAuthority.load({ dir, trustDomain: 'cluster.local', rootTtlMs: HOUR, log });
  assert.equal(ca.mode, 'plugged-in');
  assert.equal(ca.canRotateRoot(), false);
  const fp = ca.rootFingerprint();
  let changed = false;
  ca.on('rootsChanged', () => { changed = true; });

  const rot = new RootRotator({ ca, log, checkIntervalMs: 20, jitter: false });
  assert.equal(await rot.check(whenRemaining(ca, 1)), 'plugged-in', 'due by the clock, but plugged in');
  assert.equal(await rot.check(ca.signingRootInfo().notAfter.getTime() + 1000), 'plugged-in');
  rot.start();
  await new Promise((r) => setTimeout(r, 100));
  rot.stop();
  assert.equal(rot.stats.checks, 2, 'start() arms no timer for a plugged-in CA');
  assert.ok(lines.some((l) => l.includes('root rotator not started')), 'and says so');
  assert.equal(ca.rootFingerprint(), fp);
  assert.equal(ca.rootCount(), 1);
  assert.equal(changed, false);
  assert.deepEqual(files(), before, 'cacerts untouched');
  assert.equal(fs.existsSync(path.join(dir, 'istio-ca-secret')), false, 'no self-signed root written beside it');
});

test('Kubernetes: a non-leader never rotates, even when due; the leader does and the non-leader follows', async () => {
  const api = await new FakeApiServer().start();
  const mk = (leader: Leadership): KubeSecretCaStore => new KubeSecretCaStore({
    client: new KubeClient(loadKubeConfig({ yaml: api.kubeconfig() })), namespace: NS, leader, log, retryMaxMs: 300,
    reflector: { backoffInitialMs: 20, backoffMaxMs: 200 },
  });
  const sLeader = mk(new Gate(true)), sFollower = mk(new Gate(false));
  try {
    const caL = await CertificateAuthority.load({ dir: path.join(tmp, 'kl'), store: sLeader, trustDomain: 'cluster.local', rootTtlMs: 10 * HOUR, log });
    const caF = await CertificateAuthority.load({ dir: path.join(tmp, 'kf'), store: sFollower, trustDomain: 'cluster.local', rootTtlMs: 10 * HOUR, log });
    assert.equal(caF.rootFingerprint(), caL.rootFingerprint());
    const old = caF.rootFingerprint();
    const due = whenRemaining(caF, 5);
    const puts = (): number => api.requests.get('PUT api/v1/secrets') ?? 0;

    const rotF = new RootRotator({ ca: caF, log, jitter: false });
    assert.equal(caF.canRotateRoot(), false);
    assert.equal(await rotF.check(due), 'not-leader');
    assert.equal(rotF.stats.rotations, 0);
    assert.equal(rotF.stats.failures, 0);
    assert.equal(puts(), 0, 'the non-leader wrote nothing');
    assert.equal(caF.rootFingerprint(), old, 'and kept its root');
    assert.ok(lines.some((l) => l.includes('not the leader, the leader rotates it')));

    const followed = new Promise<void>((r) => caF.once('rootsChanged', () => r()));
    const rotL = new RootRotator({ ca: caL, log, jitter: false });
    assert.equal(await rotL.check(due), 'rotated');
    assert.equal(puts(), 1, 'the leader wrote the new root');
    await followed;
    assert.equal(caF.rootFingerprint(), caL.rootFingerprint(), 'the non-leader follows the Secret');
    assert.notEqual(caF.rootFingerprint(), old);
    assert.equal(caF.rootCount(), 2);
    // Once followed, the non-leader's root is the fresh one: not due any more.
    assert.equal(await rotF.check(Date.now()), 'not-due');
    assert.ok(api.get('Secret', NS, CA_SECRET_NAME));
  } finally { sLeader.close(); sFollower.close(); await api.stop(); }
});

test('the timer: first check after jitter + interval, then every interval; never keeps the process alive; stop() ends it', async () => {
  const ca = await CertificateAuthority.load({ dir: path.join(tmp, 'timer'), trustDomain: 'cluster.local', log });
  const rot = new RootRotator({ ca, log, checkIntervalMs: 40, random: () => 0.5 });
  assert.equal(rot.jitterMs, 20, 'jitter drawn from [0, interval)');
  assert.equal(new RootRotator({ ca, checkIntervalMs: 40, jitter: false, random: () => 0.5 }).jitterMs, 0);
  const started = Date.now();
  rot.start();
  const timer = (rot as unknown as { timer: NodeJS.Timeout }).timer;
  assert.equal(timer.hasRef(), false, 'unref\'d');
  await eventually(async () => rot.stats.checks >= 1, 3000, 5);
  assert.ok(Date.now() - started >= 55, `first check waited jitter + interval (${Date.now() - started} ms)`);
  await eventually(async () => rot.stats.checks >= 3, 3000, 5);
  assert.equal(rot.stats.rotations, 0, 'a fresh 10-year root is not rotated');
  rot.stop();
  const n = rot.stats.checks;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(rot.stats.checks, n, 'no check after stop()');

  const off = new RootRotator({ ca, log, checkIntervalMs: 0 });
  off.start();
  assert.equal((off as unknown as { timer?: NodeJS.Timeout }).timer, undefined, 'interval 0 turns the rotator off');
});

test('no private key in any log line', () => {
  const text = lines.join('');
  assert.ok(text.length > 0);
  assert.doesNotMatch(text, /PRIVATE KEY/);
  for (const d of ['self', 'timer']) {
    const key = fs.readFileSync(path.join(tmp, d, 'istio-ca-secret', 'ca-key.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
    assert.ok(!text.includes(key.slice(0, 40)), `the ${d} CA key is not logged`);
  }
});
