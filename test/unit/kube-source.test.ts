/**
 * The Kubernetes source against an HTTP server that speaks the API server's list/watch protocol
 * (test/helpers/fake-apiserver.ts), through the real @kubernetes/client-node: paging, watch resume, dropped
 * connections, 410 Gone, bookmarks, validation, health/locality projections, remote secrets, dead clusters and
 * Lease leader election.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigStore, type ConfigEvent } from '../../src/config/store.js';
import { KubeSource, MULTICLUSTER_SECRET_LABEL } from '../../src/sources/kube/multicluster.js';
import { REGISTRY_TYPES } from '../../src/sources/kube/resources.js';
import { KubeClient, loadKubeConfig } from '../../src/sources/kube/kube-client.js';
import { LeaderElector } from '../../src/sources/kube/leader-election.js';
import { buildAggregateRegistry } from '../../src/model/registry/aggregate.js';
import { FakeApiServer, svc, pod, slice, node, namespace, type Obj } from '../helpers/fake-apiserver.js';
import { eventually } from '../helpers/grpc-backend.js';

const log = pino({ level: process.env.MESHPILOT_TEST_LOG ?? 'silent' });
const FAST = { backoffInitialMs: 20, backoffMaxMs: 200, pageSize: 3 };

function source(servers: FakeApiServer[], extra: Partial<ConstructorParameters<typeof KubeSource>[0]> = {}) {
  const store = new ConfigStore();
  const ks = new KubeSource({
    kubeconfigs: servers.map((s, i) => ({ path: s.kubeconfigFile(`c${i}`) })),
    clusterId: 'c0', store, systemNamespace: 'istio-system', log, reflector: FAST, remoteClusterTimeoutMs: 400, ...extra,
  });
  const events: ConfigEvent[] = [];
  ks.on('change', (e: ConfigEvent) => events.push(e));
  store.on('change', (e: ConfigEvent) => events.push(e));
  return { ks, store, events };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  await eventually(async () => check(), ms, 10);
}

/** The store must hold exactly the projection of every object the server holds, for the registry kinds. */
function assertMirrors(server: FakeApiServer, clusterStore: ConfigStore): void {
  for (const t of REGISTRY_TYPES) {
    const want = new Map(server.objects(t.kind).map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
    const have = clusterStore.list(t.kind);
    assert.equal(have.length, want.size, `${t.kind}: ${have.length} in store, ${want.size} on the server`);
    for (const c of have) {
      const o = want.get(`${t.namespaced ? c.key.namespace : ''}/${c.key.name}`);
      assert.ok(o, `${t.kind} ${c.key.namespace}/${c.key.name} is not on the server`);
      const projected = t.project(o as any);
      assert.deepEqual(JSON.parse(JSON.stringify(c.resource.metadata.labels ?? {})), projected.metadata.labels ?? {}, `${t.kind} ${c.key.name} labels`);
      if (t.kind === 'Service') assert.deepEqual(c.resource.spec.ports.map((p: any) => p.port), projected.spec.ports.map((p: any) => p.port));
      if (t.kind === 'Pod') assert.equal((c.resource as any).status.podIP, (projected as any).status.podIP);
    }
  }
}

test('initial sync lists in pages, projects objects and becomes ready; a bearer token is sent', async () => {
  const api = await new FakeApiServer({ token: 's3cret' }).start();
  for (let i = 0; i < 10; i++) api.apply(svc(`s${i}`, 'default', [{ name: 'http', port: 80 }]));
  api.apply(pod('p0', 'default', '10.0.0.1', { app: 's0' }));
  const { ks } = source([api]);
  try {
    ks.start();
    await until(() => ks.ready());
    const c = ks.cluster('c0')!;
    assert.equal(c.store.list('Service').length, 10);
    assert.ok((api.requests.get('list api/v1/services') ?? 0) >= 4, '10 services in pages of 3 take 4 list calls');
    const p = c.store.list('Pod')[0]!.resource as any;
    assert.equal(p.spec.containers[0].env, undefined, 'env is not kept');
    assert.equal(p.metadata.annotations, undefined, 'non-Istio annotations are not kept');
    assert.equal(p.status.containerStatuses, undefined);
    assert.equal(ks.status().clusters[0]!.state, 'synced');
  } finally { ks.stop(); await api.stop(); }
});

test('a watch dropped mid-stream, again and again, loses no update and duplicates none', async () => {
  const api = await new FakeApiServer().start();
  api.apply(namespace('default'));
  const { ks } = source([api]);
  try {
    ks.start();
    await until(() => ks.ready());
    const c = ks.cluster('c0')!;
    let changes = 0;
    c.store.on('change', () => changes++);
    let writes = 0;
    const write = (round: number, i: number): void => {
      const n = round * 10 + i;
      api.apply(pod(`p${n % 37}`, 'default', `10.1.${round}.${i}`, { app: 'x', round: String(round) }));
      writes++;
      if (n % 7 === 3 && api.remove('Pod', 'default', `p${(n * 5) % 37}`)) writes++;
    };
    for (let round = 0; round < 15; round++) {
      // Half the round's writes stream to the open watch, then the connection drops mid-stream, and the other
      // half happen while no watch is open: the reflector must resume from the last resourceVersion it saw.
      for (let i = 0; i < 5; i++) write(round, i);
      await new Promise((r) => setTimeout(r, round % 2 ? 0 : 3));
      api.dropWatches();
      for (let i = 5; i < 10; i++) write(round, i);
      await until(() => api.watcherCount('api/v1/pods') > 0);
    }
    await until(() => c.store.list('Pod').length === api.objects('Pod').length &&
      c.store.list('Pod').every((p) => (p.resource as any).status.podIP === api.get('Pod', 'default', p.key.name)?.status.podIP));
    assertMirrors(api, c.store);
    const podStats = ks.status().clusters[0]!.informers.find((i) => i.kind === 'Pod')!;
    assert.ok(podStats.stats.watches > 10, `re-watched after each drop (${podStats.stats.watches} watches)`);
    assert.equal(podStats.stats.lists, 1, 'resumed from resourceVersion: never re-listed');
    assert.ok(changes <= writes, `no duplicated update: ${changes} store changes for ${writes} writes`);
  } finally { ks.stop(); await api.stop(); }
});

for (const variant of ['ERROR event', 'HTTP 410'] as const) {
  test(`410 Gone (${variant}): re-list and emit only the real differences`, async () => {
    const api = await new FakeApiServer({ gone410AsHttp: variant === 'HTTP 410' }).start();
    for (let i = 0; i < 8; i++) api.apply(pod(`p${i}`, 'default', `10.0.0.${i}`, { app: 'x' }));
    const { ks } = source([api]);
    try {
      ks.start();
      await until(() => ks.ready());
      const c = ks.cluster('c0')!;
      const seen: ConfigEvent[] = [];
      c.store.on('change', (e: ConfigEvent) => seen.push(e));
      // While no watch is open: one real change, one delete, one add, and status noise that the projection drops.
      api.unavailable = true;
      api.dropWatches();
      api.apply(pod('p1', 'default', '10.0.9.1', { app: 'x' }));
      api.remove('Pod', 'default', 'p2');
      api.apply(pod('p9', 'default', '10.0.0.9', { app: 'x' }));
      const noisy = pod('p3', 'default', '10.0.0.3', { app: 'x' });
      noisy.status.containerStatuses[0].restartCount = 5;
      api.apply(noisy);
      api.compact();
      api.unavailable = false;
      await until(() => seen.length >= 3);
      await new Promise((r) => setTimeout(r, 150));
      const summary = seen.map((e) => `${e.op} ${e.key.name}`).sort();
      assert.deepEqual(summary, ['add p9', 'delete p2', 'update p1']);
      const st = ks.status().clusters[0]!.informers.find((i) => i.kind === 'Pod')!;
      assert.ok(st.stats.relistsAfterGone >= 1, 'the informer re-listed after 410');
      assertMirrors(api, c.store);
    } finally { ks.stop(); await api.stop(); }
  });
}

test('bookmarks advance the resourceVersion without events; an expired continue token restarts the list', async () => {
  const api = await new FakeApiServer().start();
  for (let i = 0; i < 7; i++) api.apply(svc(`s${i}`, 'default', [{ name: 'http', port: 80 }]));
  const { ks } = source([api]);
  try {
    ks.start();
    await until(() => ks.ready());
    const c = ks.cluster('c0')!;
    api.apply(namespace('other'));
    await until(() => c.store.list('Namespace').length === 1);
    api.bookmark();
    const rv = api.resourceVersion;
    await until(() => ks.status().clusters[0]!.informers.find((i) => i.kind === 'Service')!.resourceVersion === rv);
    assert.ok(ks.status().clusters[0]!.informers.find((i) => i.kind === 'Service')!.stats.bookmarks >= 1);
  } finally { ks.stop(); await api.stop(); }

  // A list whose continue token expires between pages: the reflector starts over and still gets everything.
  const api2 = await new FakeApiServer().start();
  for (let i = 0; i < 7; i++) api2.apply(svc(`s${i}`, 'default', [{ name: 'http', port: 80 }]));
  const client = new KubeClient(loadKubeConfig({ yaml: api2.kubeconfig() }));
  const first = await client.listPage('/api/v1/services', { limit: 3 });
  assert.ok(first.continue);
  api2.expireContinueTokens();
  await assert.rejects(client.listPage('/api/v1/services', { limit: 3, continue: first.continue }), (e: any) => e.statusCode === 410);
  await api2.stop();
});

test('a server that closes every watch at once is retried with backoff, not in a hot loop', async () => {
  const api = await new FakeApiServer().start();
  const { ks } = source([api]);
  try {
    ks.start();
    await until(() => ks.ready());
    api.closeWatchesAtOnce = true;
    api.dropWatches();
    const before = api.requests.get('watch api/v1/pods') ?? 0;
    await new Promise((r) => setTimeout(r, 1000));
    const n = (api.requests.get('watch api/v1/pods') ?? 0) - before;
    assert.ok(n >= 2 && n <= 15, `${n} watch attempts in 1 s (backoff 20 ms → 200 ms)`);
    api.closeWatchesAtOnce = false;
    api.apply(pod('late', 'default', '10.0.0.9', { app: 'x' }));
    await until(() => ks.cluster('c0')!.store.list('Pod').length === 1);
  } finally { ks.stop(); await api.stop(); }
});

test('an invalid Istio object is reported by cluster, kind, name and field; its last good state stays', async () => {
  const api = await new FakeApiServer().start();
  const vs: Obj = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'default' }, spec: { hosts: ['r'], http: [{ route: [{ destination: { host: 'r' } }] }] } };
  api.apply(vs);
  const errors: string[] = [];
  const { ks, store } = source([api], { onInvalid: (e) => errors.push(`${e.code} ${e.message}`) });
  try {
    ks.start();
    await until(() => ks.ready());
    assert.equal(store.list('VirtualService').length, 1);
    api.apply({ ...vs, spec: { hosts: ['r'], http: [{ route: [{ destination: { host: 'r' }, weight: 'heavy' }] }] } });
    await until(() => errors.length > 0);
    assert.match(errors[0]!, /ERR_KUBE_OBJECT_INVALID cluster c0: VirtualService default\/r: spec\.http\[0\]\.route\[0\]\.weight/);
    assert.deepEqual(store.list('VirtualService')[0]!.resource.spec.http[0].route[0].weight, undefined, 'last good state kept');
  } finally { ks.stop(); await api.stop(); }
});

test('EndpointSlice conditions give health; node labels give locality; headless, ExternalName, zero endpoints', async () => {
  const api = await new FakeApiServer().start();
  api.apply(node('n1', { 'topology.kubernetes.io/region': 'eu', 'topology.kubernetes.io/zone': 'eu-1', 'kubernetes.io/hostname': 'n1' }));
  api.apply(namespace('istio-system', { 'topology.istio.io/network': 'net-a' }));
  api.apply(svc('web', 'default', [{ name: 'http', port: 80 }], { clusterIP: 'None' }));
  api.apply(pod('web-0', 'default', '10.0.0.1', { app: 'web' }, { node: 'n1' }));
  api.apply(slice('web-a', 'default', 'web', 'http', 8080, [
    { ip: '10.0.0.1', pod: 'web-0' }, { ip: '10.0.0.2', ready: false, serving: true, terminating: true },
    { ip: '10.0.0.3', ready: false, serving: false }, { ip: '10.0.0.4', zone: 'z9' },
  ]));
  api.apply(svc('ext', 'default', [{ name: 'https', port: 443 }], { type: 'ExternalName', externalName: 'example.com', clusterIP: undefined, selector: undefined }));
  const { ks, store } = source([api]);
  try {
    ks.start();
    await until(() => ks.ready());
    const reg = () => buildAggregateRegistry(store, 'cluster.local', 'files', ks);
    const eps = reg().endpoints['web.default.svc.cluster.local']!;
    const by = new Map(eps.map((e) => [e.address, e]));
    assert.equal(by.get('10.0.0.1')!.healthy, true);
    assert.equal(by.get('10.0.0.2')!.healthy, false, 'terminating (draining) is not healthy');
    assert.equal(by.get('10.0.0.3')!.healthy, false);
    assert.deepEqual(by.get('10.0.0.1')!.locality, { region: 'eu', zone: 'eu-1', subzone: '' }, 'locality from the node');
    assert.equal(by.get('10.0.0.4')!.locality.zone, 'z9', 'slice zone when there is no pod');
    assert.equal(by.get('10.0.0.1')!.clusterId, 'c0');
    assert.equal(by.get('10.0.0.1')!.labels['topology.istio.io/cluster'], 'c0');
    assert.equal(by.get('10.0.0.1')!.labels['topology.istio.io/network'], 'net-a');
    const web = reg().services.find((s) => s.name === 'web')!;
    assert.equal(web.address, undefined, 'headless: no VIP');
    const ext = reg().services.find((s) => s.name === 'ext')!;
    assert.equal(ext.resolution, 'DNS');
    assert.deepEqual(reg().endpoints['ext.default.svc.cluster.local']!.map((e) => `${e.address}:${e.port}`), ['example.com:443']);
    // Every endpoint goes: the service stays, with no endpoints.
    api.apply(slice('web-a', 'default', 'web', 'http', 8080, []));
    await until(() => (reg().endpoints['web.default.svc.cluster.local'] ?? []).length === 0);
    assert.ok(reg().services.some((s) => s.name === 'web'), 'service kept with zero endpoints');
  } finally { ks.stop(); await api.stop(); }
});

test('remote clusters from istio/multiCluster secrets come and go; a dead cluster does not block readiness', async () => {
  const a = await new FakeApiServer().start();
  const b = await new FakeApiServer().start();
  a.apply(svc('r', 'default', [{ name: 'http', port: 80 }]));
  a.apply(slice('r-a', 'default', 'r', 'http', 80, [{ ip: '10.0.0.1' }]));
  b.apply(svc('r', 'default', [{ name: 'http', port: 80 }]));
  b.apply(slice('r-b', 'default', 'r', 'http', 80, [{ ip: '10.9.0.1' }]));
  const dead = await new FakeApiServer().start();
  const deadConfig = dead.kubeconfig('dead');
  await dead.stop();
  const { ks, store } = source([a]);
  try {
    ks.start();
    await until(() => ks.ready());
    const hosts = () => (buildAggregateRegistry(store, 'cluster.local', 'files', ks).endpoints['r.default.svc.cluster.local'] ?? []).map((e) => `${e.clusterId}:${e.address}`).sort();
    assert.deepEqual(hosts(), ['c0:10.0.0.1']);
    a.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'istio-remote-secret-b', namespace: 'istio-system', labels: { [MULTICLUSTER_SECRET_LABEL]: 'true' } },
      data: { 'cluster-b': Buffer.from(b.kubeconfig('b')).toString('base64'), 'cluster-dead': Buffer.from(deadConfig).toString('base64') } });
    // An unlabelled secret is not a remote secret.
    a.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other', namespace: 'istio-system' }, data: { x: Buffer.from(b.kubeconfig()).toString('base64') } });
    await until(() => hosts().length === 2);
    assert.deepEqual(hosts(), ['c0:10.0.0.1', 'cluster-b:10.9.0.1']);
    await until(() => ks.ready(), 3000);
    const st = ks.status();
    const deadSt = st.clusters.find((c) => c.id === 'cluster-dead')!;
    assert.equal(deadSt.state, 'error');
    assert.equal(deadSt.timedOut, true);
    assert.match(deadSt.informers[0]!.lastError ?? '', /ECONNREFUSED|connect/);
    assert.equal(st.clusters.find((c) => c.id === 'cluster-b')!.state, 'synced');
    assert.equal(st.clusters.find((c) => c.id === 'other'), undefined);
    // The secret goes: cluster-b's endpoints go, c0's stay.
    a.remove('Secret', 'istio-system', 'istio-remote-secret-b');
    await until(() => hosts().length === 1);
    assert.deepEqual(hosts(), ['c0:10.0.0.1']);
    assert.equal(ks.status().clusters.length, 1);
  } finally { ks.stop(); await a.stop(); await b.stop(); }
});

test('leader election over a Lease: one leader; it releases on stop and another takes over', async () => {
  const api = await new FakeApiServer().start();
  const client = () => new KubeClient(loadKubeConfig({ yaml: api.kubeconfig() }));
  const opts = { namespace: 'istio-system', name: 'meshpilot-leader', leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100 };
  const e1 = new LeaderElector({ ...opts, client: client(), identity: 'one' });
  const e2 = new LeaderElector({ ...opts, client: client(), identity: 'two' });
  try {
    e1.start();
    await until(() => e1.isLeader());
    e2.start();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(e2.isLeader(), false, 'the lease is held');
    assert.equal(e2.leader(), 'one');
    const lease = api.get('Lease', 'istio-system', 'meshpilot-leader')!;
    assert.equal(lease.spec.holderIdentity, 'one');
    assert.match(lease.spec.renewTime, /\.\d{6}Z$/, 'MicroTime has six fractional digits');
    const took = Date.now();
    const stopped = new Promise((r) => e1.once('stopped-leading', r));
    await e1.stop();
    await stopped;
    await until(() => e2.isLeader(), 3000);
    assert.ok(Date.now() - took < 1500, 'released lease is taken without waiting out its duration');
    assert.equal(api.get('Lease', 'istio-system', 'meshpilot-leader')!.spec.leaseTransitions, 1);
    // A holder that stops renewing (crash) loses the lease after leaseDuration.
    const e3 = new LeaderElector({ ...opts, client: client(), identity: 'three' });
    e3.start();
    api.unavailable = true; // e2 cannot renew; e3 cannot read either
    await until(() => !e2.isLeader(), 3000);
    api.unavailable = false;
    await e2.stop();
    await until(() => e3.isLeader(), 4000);
    await e3.stop();
  } finally { await e1.stop(); await e2.stop(); await api.stop(); }
});
