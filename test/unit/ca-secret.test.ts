/**
 * The CA's root in Kubernetes (src/security/ca-store-kube.ts) against test/helpers/fake-apiserver.ts through the real
 * client-node: the leader creates `istio-ca-secret` with istiod's type and keys, a non-leader waits for it and loads
 * the same root, a restart reuses it, a lost create race (409) adopts the winner's Secret, a rotation by the leader
 * reaches the others through their watch (and passes to the next leader), a deleted Secret is written back, a
 * plugged-in `cacerts` Secret wins, bad Secrets are named, and no private key reaches a log line.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority, CaError, CaNotWriterError } from '../../src/security/ca.js';
import { KubeSecretCaStore, CA_SECRET_NAME, CA_SECRET_TYPE, type Leadership } from '../../src/security/ca-store-kube.js';
import { KubeClient, loadKubeConfig } from '../../src/sources/kube/kube-client.js';
import { LeaderElector } from '../../src/sources/kube/leader-election.js';
import { splitPemCertificates } from '../../src/security/x509.js';
import { FakeApiServer, type Obj } from '../helpers/fake-apiserver.js';
import { eventually } from '../helpers/grpc-backend.js';

const NS = 'istio-system';
const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-ca-secret-'));

/** Every log line of every store and CA in this file, at debug level: checked for keys at the end. */
const lines: string[] = [];
const log = pino({ level: 'debug' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));
/** Every CA private key this file saw (PEM body and Secret base64): none may appear in a log line. */
const keysSeen = new Set<string>();

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const until = (check: () => boolean, ms = 5000): Promise<number> => eventually(async () => check(), ms, 10);

function client(api: FakeApiServer): KubeClient {
  return new KubeClient(loadKubeConfig({ yaml: api.kubeconfig() }));
}

/** A leadership switch the test flips (the real LeaderElector is exercised in its own test below). */
class Gate extends EventEmitter implements Leadership {
  constructor(private leading = false) { super(); }
  isLeader(): boolean { return this.leading; }
  lead(): void { this.leading = true; this.emit('leading'); }
}

function store(api: FakeApiServer, leader?: Leadership, c: KubeClient = client(api)): KubeSecretCaStore {
  return new KubeSecretCaStore({ client: c, namespace: NS, leader, log, retryMaxMs: 300, reflector: { backoffInitialMs: 20, backoffMaxMs: 200 } });
}

async function load(s: KubeSecretCaStore, name: string): Promise<CertificateAuthority> {
  return CertificateAuthority.load({ dir: path.join(tmp, name), trustDomain: 'cluster.local', store: s, log });
}

function secretData(api: FakeApiServer, name = CA_SECRET_NAME): Record<string, string> {
  const s = api.get('Secret', NS, name);
  assert.ok(s, `Secret ${NS}/${name} exists`);
  const out = Object.fromEntries(Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  if (out['ca-key.pem']) { keysSeen.add(out['ca-key.pem'].replace(/-----[^-]+-----|\s/g, '')); keysSeen.add((s.data as Record<string, string>)['ca-key.pem']!); }
  return out;
}

function secretObj(name: string, data: Record<string, string>, type = 'Opaque'): Obj {
  return {
    apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, type,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

/** openssl verify of a leaf against a root bundle. */
function verifies(leafPem: string, rootsPem: string): boolean {
  const dir = fs.mkdtempSync(path.join(tmp, 'verify-'));
  fs.writeFileSync(path.join(dir, 'leaf.pem'), leafPem);
  fs.writeFileSync(path.join(dir, 'roots.pem'), rootsPem);
  const r = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'roots.pem'), path.join(dir, 'leaf.pem')], { encoding: 'utf8' });
  return r.status === 0;
}

function posts(api: FakeApiServer): number { return api.requests.get('POST api/v1/secrets') ?? 0; }

test('the leader creates istio-ca-secret with istiod\'s type and keys; a non-leader waits for it and loads the same root', async () => {
  const api = await new FakeApiServer().start();
  const follower = new Gate(false), leader = new Gate(false);
  const sf = store(api, follower), sl = store(api, leader);
  try {
    let followerDone = false;
    const pf = load(sf, 'f1').then((ca) => { followerDone = true; return ca; });
    // Nobody leads yet: nothing is written, nobody has a CA.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(followerDone, false, 'a non-leader waits for the Secret');
    assert.equal(api.get('Secret', NS, CA_SECRET_NAME), undefined, 'a non-leader never creates it');
    const pl = load(sl, 'l1');
    leader.lead();
    const [caL, caF] = await Promise.all([pl, pf]);
    assert.equal(posts(api), 1, 'exactly one create');
    assert.equal(caF.rootFingerprint(), caL.rootFingerprint(), 'one root across replicas');
    assert.equal(caL.mode, 'self-signed');

    const secret = api.get('Secret', NS, CA_SECRET_NAME)!;
    assert.equal(secret.type, CA_SECRET_TYPE);
    assert.equal(CA_SECRET_TYPE, 'istio.io/ca-root');
    assert.deepEqual(Object.keys(secret.data).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'key.pem', 'root-cert.pem']);
    const data = secretData(api);
    assert.equal(data['ca-cert.pem']!.trim(), caL.trustBundlePem().trim());
    assert.equal(data['root-cert.pem']!.trim(), caL.trustBundlePem().trim());
    assert.match(data['ca-key.pem']!, /BEGIN PRIVATE KEY/);
    assert.equal(data['cert-chain.pem'], '');
    assert.equal(fs.existsSync(path.join(tmp, 'l1', 'istio-ca-secret')), false, 'Kubernetes mode keeps no root on disk');
    // A leaf the follower signs verifies against the root the leader created.
    const leaf = await caF.issueKeyPair({ uris: [SLEEP] }, 3600_000);
    assert.ok(verifies(leaf.certChain[0]!, data['root-cert.pem']!));
  } finally { sf.close(); sl.close(); await api.stop(); }
});

test('a restart reuses the stored root (no new root, no write)', async () => {
  const api = await new FakeApiServer().start();
  const s1 = store(api), s2 = store(api, new Gate(true)), s3 = store(api, new Gate(false));
  try {
    const first = await load(s1, 'r1');
    s1.close();
    const writes = posts(api);
    const again = await load(s2, 'r2');
    const follower = await load(s3, 'r3');
    assert.equal(again.rootFingerprint(), first.rootFingerprint(), 'the leader reuses the stored root');
    assert.equal(follower.rootFingerprint(), first.rootFingerprint(), 'so does a non-leader');
    assert.equal(posts(api), writes, 'nothing created');
    assert.equal(api.requests.get('PUT api/v1/secrets') ?? 0, 0, 'nothing rewritten');
    secretData(api);
  } finally { s1.close(); s2.close(); s3.close(); await api.stop(); }
});

/** A client whose Secret creates wait for `gate`: its replica reads "absent", then loses the race. */
class SlowCreateClient extends KubeClient {
  constructor(kc: ConstructorParameters<typeof KubeClient>[0], private readonly gate: Promise<void>, readonly waiting: { n: number }) { super(kc); }
  override async request(method: string, p: string, ...rest: any[]): Promise<any> {
    if (method === 'POST' && p.endsWith('/secrets')) { this.waiting.n++; await this.gate; }
    return (super.request as (...a: any[]) => Promise<any>)(method, p, ...rest);
  }
}

test('two writers race to create (a leader hand-over): the loser\'s 409 is resolved by reading the winner\'s Secret', async () => {
  const api = await new FakeApiServer().start();
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const waiting = { n: 0 };
  const slow = new SlowCreateClient(loadKubeConfig({ yaml: api.kubeconfig() }), gate, waiting);
  const sSlow = store(api, new Gate(true), slow), sFast = store(api, new Gate(true));
  try {
    const pSlow = load(sSlow, 'race-slow');
    // The slow one has read "no Secret", minted its own root, and is about to create it.
    await until(() => waiting.n === 1);
    const fast = await load(sFast, 'race-fast');
    release();
    const loser = await pSlow;
    assert.equal(posts(api), 2, 'both tried to create');
    assert.equal(loser.rootFingerprint(), fast.rootFingerprint(), 'the loser adopted the winner\'s root');
    assert.equal(secretData(api)['ca-cert.pem']!.trim(), fast.trustBundlePem().trim());
    assert.ok(lines.some((l) => l.includes('created by another replica')), 'the conflict is logged');
  } finally { release(); sSlow.close(); sFast.close(); await api.stop(); }
});

test('root rotation: the leader writes the new root and the overlapping bundle; non-leaders pick it up; leadership moves with the Lease', async () => {
  const api = await new FakeApiServer().start();
  const opts = { namespace: NS, name: 'meshpilot-leader', leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100, log };
  const e1 = new LeaderElector({ ...opts, client: client(api), identity: 'one' });
  const e2 = new LeaderElector({ ...opts, client: client(api), identity: 'two' });
  const s1 = store(api, e1), s2 = store(api, e2);
  try {
    e1.start();
    await until(() => e1.isLeader());
    e2.start();
    const [ca1, ca2] = await Promise.all([load(s1, 'rot1'), load(s2, 'rot2')]);
    assert.equal(e2.isLeader(), false);
    assert.equal(ca1.rootFingerprint(), ca2.rootFingerprint());
    const oldRoot = ca1.trustBundlePem();
    const oldLeaf = await ca2.issueKeyPair({ uris: [SLEEP] }, 3600_000);

    await assert.rejects(ca2.rotateRoot(), (e: Error) => e instanceof CaNotWriterError && e.code === 'ERR_CA_NOT_WRITER' && /only the leader writes Secret istio-system\/istio-ca-secret/.test(e.message));
    assert.equal(api.requests.get('PUT api/v1/secrets') ?? 0, 0, 'a non-leader writes nothing');

    const picked = new Promise<void>((r) => ca2.once('rootsChanged', () => r()));
    await ca1.rotateRoot();
    const data = secretData(api);
    assert.equal(data['ca-cert.pem']!.trim(), splitPemCertificates(ca1.trustBundlePem())[0]!.trim(), 'the new root is in ca-cert.pem');
    assert.equal(splitPemCertificates(data['root-cert.pem']!).length, 2, 'root-cert.pem holds the new and the previous root');
    await picked;
    assert.equal(ca2.rootFingerprint(), ca1.rootFingerprint(), 'the non-leader signs with the new root');
    assert.equal(ca2.rootCount(), 2);
    assert.notEqual(ca2.trustBundlePem(), oldRoot);
    const newLeaf = await ca2.issueKeyPair({ uris: [SLEEP] }, 3600_000);
    assert.ok(verifies(oldLeaf.certChain[0]!, ca2.trustBundlePem()), 'a leaf of the old root verifies during the overlap');
    assert.ok(verifies(newLeaf.certChain[0]!, ca2.trustBundlePem()), 'a leaf of the new root verifies');
    assert.ok(!verifies(newLeaf.certChain[0]!, oldRoot), 'the new leaf is signed by the new root');

    // The leader steps down: the other replica takes the Lease and rotates; the former leader follows.
    await e1.stop();
    await until(() => e2.isLeader(), 4000);
    const followed = new Promise<void>((r) => ca1.once('rootsChanged', () => r()));
    await ca2.rotateRoot();
    await followed;
    assert.equal(ca1.rootFingerprint(), ca2.rootFingerprint());
    assert.equal(splitPemCertificates(secretData(api)['root-cert.pem']!).length, 3, 'every unexpired root stays in the bundle');
    await assert.rejects(ca1.rotateRoot(), CaNotWriterError);
  } finally { s1.close(); s2.close(); await e1.stop(); await e2.stop(); await api.stop(); }
});

test('a deleted istio-ca-secret is written back by the leader with the root in use', async () => {
  const api = await new FakeApiServer().start();
  const sl = store(api, new Gate(true)), sf = store(api, new Gate(false));
  try {
    const ca = await load(sl, 'del1');
    const follower = await load(sf, 'del2');
    const before = secretData(api)['ca-cert.pem'];
    api.remove('Secret', NS, CA_SECRET_NAME);
    await until(() => api.get('Secret', NS, CA_SECRET_NAME) !== undefined);
    assert.equal(secretData(api)['ca-cert.pem'], before, 'the same root, not a new one');
    assert.equal(follower.rootFingerprint(), ca.rootFingerprint());
  } finally { sl.close(); sf.close(); await api.stop(); }
});

test('a Secret missing a key is named and left alone (no new root) until it is fixed', async () => {
  const api = await new FakeApiServer().start();
  const good = await CertificateAuthority.load({ dir: path.join(tmp, 'source-ca'), trustDomain: 'cluster.local' });
  const files = (f: string): string => fs.readFileSync(path.join(tmp, 'source-ca', 'istio-ca-secret', f), 'utf8');
  api.apply(secretObj(CA_SECRET_NAME, { 'ca-cert.pem': files('ca-cert.pem') }, CA_SECRET_TYPE));
  const s = store(api, new Gate(true));
  try {
    const p = load(s, 'broken');
    await until(() => lines.some((l) => l.includes('Secret istio-system/istio-ca-secret: missing data.ca-key.pem')));
    assert.equal(posts(api) + (api.requests.get('PUT api/v1/secrets') ?? 0), 0, 'the leader does not overwrite it');
    api.apply(secretObj(CA_SECRET_NAME, { 'ca-cert.pem': files('ca-cert.pem'), 'ca-key.pem': files('ca-key.pem'), 'root-cert.pem': files('root-cert.pem') }, CA_SECRET_TYPE));
    const ca = await p;
    assert.equal(ca.rootFingerprint(), good.rootFingerprint(), 'the fixed Secret\'s root is used (also one istiod wrote)');
    secretData(api);
  } finally { s.close(); await api.stop(); }
});

test('a plugged-in cacerts Secret takes precedence; a partial one names the missing keys; an istio-generated one is not plugged-in', async () => {
  const api = await new FakeApiServer().start();
  const plug = await CertificateAuthority.load({ dir: path.join(tmp, 'plug-src'), trustDomain: 'cluster.local' });
  const f = (n: string): string => fs.readFileSync(path.join(tmp, 'plug-src', 'istio-ca-secret', n), 'utf8');
  keysSeen.add(f('ca-key.pem').replace(/-----[^-]+-----|\s/g, ''));
  const stores: KubeSecretCaStore[] = [];
  const mk = (): KubeSecretCaStore => { const s = store(api, new Gate(true)); stores.push(s); return s; };
  try {
    api.apply(secretObj('cacerts', { 'ca-cert.pem': f('ca-cert.pem') }));
    await assert.rejects(load(mk(), 'partial'), (e: Error) => e instanceof CaError
      && /Secret istio-system\/cacerts: plugged-in CA \(cacerts\) is missing data.ca-key.pem, data.root-cert.pem, data.cert-chain.pem/.test(e.message));

    api.apply(secretObj('cacerts', { 'ca-cert.pem': f('ca-cert.pem'), 'ca-key.pem': f('ca-key.pem'), 'root-cert.pem': f('root-cert.pem'), 'cert-chain.pem': f('ca-cert.pem') }));
    const ca = await load(mk(), 'plugged');
    assert.equal(ca.mode, 'plugged-in');
    assert.equal(ca.rootFingerprint(), plug.rootFingerprint());
    assert.equal(api.get('Secret', NS, CA_SECRET_NAME), undefined, 'no self-signed root is created');
    const leaf = await ca.issueKeyPair({ uris: [SLEEP] }, 3600_000);
    assert.ok(verifies(leaf.certChain[0]!, f('root-cert.pem')));

    // istiod's own generated cacerts (useCacertsSecretName) is its self-signed store, not a plugged-in CA.
    api.apply(secretObj('cacerts', { 'ca-cert.pem': f('ca-cert.pem'), 'ca-key.pem': f('ca-key.pem'), 'root-cert.pem': f('root-cert.pem'), 'cert-chain.pem': '', 'istio-generated': '' }));
    const self = await load(mk(), 'generated');
    assert.equal(self.mode, 'self-signed');
    assert.ok(api.get('Secret', NS, CA_SECRET_NAME));
    secretData(api);
  } finally { for (const s of stores) s.close(); await api.stop(); }
});

test('closing the store ends a wait for the leader with an error instead of hanging', async () => {
  const api = await new FakeApiServer().start();
  const s = store(api, new Gate(false));
  try {
    const p = load(s, 'closed');
    await new Promise((r) => setTimeout(r, 100));
    s.close();
    await assert.rejects(p, (e: Error) => e instanceof CaError && /store closed before the CA root was loaded/.test(e.message));
  } finally { s.close(); await api.stop(); }
});

test('no CA private key appears in any log line (debug level, every test above)', () => {
  assert.ok(lines.length > 20, `logs were captured (${lines.length} lines)`);
  assert.ok(keysSeen.size >= 4, 'keys were collected from the Secrets');
  for (const l of lines) {
    assert.ok(!l.includes('PRIVATE KEY'), `a log line holds a PEM key: ${l.slice(0, 200)}`);
    for (const k of keysSeen) assert.ok(!l.includes(k.slice(0, 40)), `a log line holds key material: ${l.slice(0, 200)}`);
  }
});
