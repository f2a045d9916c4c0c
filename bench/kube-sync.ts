/**
 * Kubernetes source at scale: initial sync of 1,000 Services and 10,000 Pods (plus their EndpointSlices, 50
 * Namespaces, 100 Nodes) through the real @kubernetes/client-node, from the wire-protocol API server of
 * test/helpers/fake-apiserver.ts running in its own process; then watch-event latency under pod churn.
 * Each client runs in its own process so RSS and heap are its own. Side by side in one run:
 *   projected   — meshpilot's informers (paged list, projection, validation, per-cluster store), page size 500;
 *   projected-100 — the same with pages of 100 (more round trips);
 *   raw         — the same paged lists, keeping whole objects as an unprojected informer cache would.
 * Prints hdr-histogram percentiles and ratios; appends to bench/RESULTS.md.
 *
 *   node dist/bench/kube-sync.js [--services 1000] [--pods 10000] [--churn 2000] [--real] [--no-record]
 * --real: against a real kube-apiserver + etcd (scripts/install-kube-apiserver.sh) instead, loaded over REST.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import crypto from 'node:crypto';
import { FakeApiServer, svc, pod, slice, node, namespace, type Obj } from '../test/helpers/fake-apiserver.js';
import { ConfigStore, type ConfigEvent } from '../src/config/store.js';
import { KubeSource } from '../src/sources/kube/multicluster.js';
import { KubeClient, loadKubeConfig } from '../src/sources/kube/kube-client.js';
import { REGISTRY_TYPES, collectionPath } from '../src/sources/kube/resources.js';
import { buildAggregateRegistry } from '../src/model/registry/aggregate.js';
import { LatencyHistogram } from '../src/load/histogram.js';
import { startRealApiServer, realApiServerMissing, type RealApiServer } from '../test/helpers/kube-apiserver.js';

const self = fileURLToPath(import.meta.url);
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SERVICES = arg('services', 1000), PODS = arg('pods', 10_000), CHURN = arg('churn', 2000);
const NAMESPACES = 50, NODES = 100;
const mode = process.argv[2];
const REAL = process.argv.includes('--real');

const mb = (b: number): number => Math.round(b / 2 ** 20 * 10) / 10;
const gc = (): void => { (globalThis as { gc?: () => void }).gc?.(); };

/** What a real Pod carries besides what the model reads: managedFields, owner, volumes, tolerations, statuses. */
function realistic(o: Obj): Obj {
  const t = '2026-11-25T10:00:00Z';
  o.metadata.uid = crypto.randomUUID();
  o.metadata.creationTimestamp = t;
  o.metadata.generateName = `${o.metadata.name}-`;
  o.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${o.metadata.labels.app}-6d4cf56db6`, uid: crypto.randomUUID(), controller: true, blockOwnerDeletion: true }];
  o.metadata.annotations['kubectl.kubernetes.io/default-container'] = 'app';
  o.metadata.managedFields = ['kube-controller-manager', 'kubelet'].map((manager) => ({
    manager, operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1',
    fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:version': {} }, 'f:ownerReferences': {} },
      'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {}, 'f:ports': {}, 'f:resources': {} } }, 'f:dnsPolicy': {}, 'f:restartPolicy': {} },
      'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': {}, 'f:startTime': {} } },
  }));
  Object.assign(o.spec, {
    volumes: [{ name: 'kube-api-access-x7k2p', projected: { defaultMode: 420, sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] } }],
    dnsPolicy: 'ClusterFirst', restartPolicy: 'Always', schedulerName: 'default-scheduler', terminationGracePeriodSeconds: 30,
    tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }, { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
  });
  o.spec.containers[0].resources = { requests: { cpu: '100m', memory: '128Mi' } };
  o.spec.containers[0].volumeMounts = [{ name: 'kube-api-access-x7k2p', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }];
  o.status.startTime = t;
  o.status.podIPs = [{ ip: o.status.podIP }];
  o.status.qosClass = 'Burstable';
  o.status.conditions.push({ type: 'Initialized', status: 'True', lastTransitionTime: t }, { type: 'ContainersReady', status: 'True', lastTransitionTime: t });
  o.status.containerStatuses[0] = { ...o.status.containerStatuses[0], started: true, imageID: 'docker.io/library/app@sha256:' + 'a'.repeat(64), containerID: 'containerd://' + 'b'.repeat(64), state: { running: { startedAt: t } }, lastState: {} };
  return o;
}

/** The mesh: namespaces and nodes first, then per service its Service, Pods and one EndpointSlice. */
function* meshObjects(): Generator<Obj> {
  for (let n = 0; n < NAMESPACES; n++) yield namespace(`ns-${n}`);
  for (let n = 0; n < NODES; n++) yield node(`node-${n}`, { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': `z${n % 3}`, 'kubernetes.io/hostname': `node-${n}` });
  const perSvc = Math.ceil(PODS / SERVICES);
  let p = 0;
  for (let s = 0; s < SERVICES; s++) {
    const ns = `ns-${s % NAMESPACES}`;
    yield svc(`svc-${s}`, ns, [{ name: 'http', port: 80, targetPort: 8080 }], { clusterIP: undefined });
    const eps: Array<{ ip: string; pod: string; node: string }> = [];
    for (let i = 0; i < perSvc && p < PODS; i++, p++) {
      const ip = `10.${(p >> 16) & 255}.${(p >> 8) & 255}.${p & 255}`;
      yield realistic(pod(`svc-${s}-${i}`, ns, ip, { app: `svc-${s}`, version: 'v1' }, { node: `node-${p % NODES}` }));
      eps.push({ ip, pod: `svc-${s}-${i}`, node: `node-${p % NODES}` });
    }
    yield slice(`svc-${s}-abc`, ns, `svc-${s}`, 'http', 8080, eps);
  }
}

/** Load the mesh into a real API server over REST, 16 writes in flight (status and server-set fields dropped). */
async function loadReal(c: KubeClient): Promise<void> {
  const it = meshObjects();
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done; n = it.next()) {
      const o = n.value;
      delete o.metadata.uid; delete o.metadata.ownerReferences; delete o.metadata.managedFields; delete o.metadata.resourceVersion;
      const t = REGISTRY_TYPES.find((x) => x.kind === o.kind)!;
      await c.request('POST', collectionPath(t, o.metadata.namespace), {}, o);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function serve(): Promise<void> {
  const api = await new FakeApiServer().start();
  for (const o of meshObjects()) api.apply(o);
  process.send!({ kubeconfig: api.kubeconfig() });
  process.on('message', async (m: { churn?: number }) => {
    if (!m.churn) return;
    for (let i = 0; i < m.churn; i++) {
      const s = i % SERVICES;
      const o = pod(`svc-${s}-0`, `ns-${s % NAMESPACES}`, `10.200.${(i >> 8) & 255}.${i & 255}`, { app: `svc-${s}`, version: 'v1' }, { node: 'node-0' });
      o.metadata.annotations['bench.istio.io/t'] = String(Date.now());
      api.apply(o);
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5)); // at most ~4,000 events/s, in bursts of 20
    }
    process.send!({ churned: m.churn });
  });
}

interface ClientResult {
  mode: string; syncMs: number; rssMb: number; heapMb: number; objects: number;
  registryMs?: number; services?: number; endpoints?: number; churn?: ReturnType<LatencyHistogram['summary']>;
}

async function client(kind: string, kubeconfig: string): Promise<ClientResult> {
  gc();
  const rss0 = process.memoryUsage().rss, heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  if (kind === 'raw') {
    const c = new KubeClient(loadKubeConfig({ yaml: kubeconfig }));
    const held = new Map<string, unknown>();
    for (const t of REGISTRY_TYPES) {
      let cont: string | undefined;
      do {
        const page = await c.listPage(collectionPath(t), { limit: 500, continue: cont });
        for (const o of page.items) held.set(`${t.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o);
        cont = page.continue;
      } while (cont);
    }
    const syncMs = performance.now() - t0;
    gc();
    return { mode: kind, syncMs, rssMb: mb(process.memoryUsage().rss - rss0), heapMb: mb(process.memoryUsage().heapUsed - heap0), objects: held.size };
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-sync-')), 'kubeconfig');
  fs.writeFileSync(file, kubeconfig);
  const ks = new KubeSource({
    kubeconfigs: [{ path: file }], clusterId: 'bench', store: new ConfigStore(), systemNamespace: 'istio-system',
    log: pino({ level: 'silent' }), reflector: { pageSize: kind === 'projected-100' ? 100 : 500 },
  });
  ks.start();
  await new Promise<void>((r) => ks.once('ready', () => r()));
  const syncMs = performance.now() - t0;
  gc();
  const res: ClientResult = {
    mode: kind, syncMs, rssMb: mb(process.memoryUsage().rss - rss0), heapMb: mb(process.memoryUsage().heapUsed - heap0),
    objects: ks.cluster('bench')!.store.size(),
  };
  const r0 = performance.now();
  const reg = buildAggregateRegistry(new ConfigStore(), 'cluster.local', 'files', ks);
  res.registryMs = performance.now() - r0;
  res.services = reg.services.length;
  res.endpoints = Object.values(reg.endpoints).reduce((n, l) => n + l.length, 0);
  if (kind === 'projected' && CHURN > 0) {
    const h = new LatencyHistogram();
    let seen = 0;
    const store = ks.cluster('bench')!.store;
    store.on('change', (ev: ConfigEvent) => {
      if (ev.key.kind !== 'Pod') return;
      const t = Number(store.get(ev.key)?.resource.metadata.annotations?.['bench.istio.io/t']);
      if (t) { h.recordMs(Date.now() - t); seen++; }
    });
    process.send!({ wantChurn: CHURN });
    await new Promise<void>((r) => { const iv = setInterval(() => { if (seen >= CHURN) { clearInterval(iv); r(); } }, 20); });
    res.churn = h.summary();
  }
  ks.stop();
  return res;
}

function run(child: ChildProcess): Promise<any> {
  return new Promise((resolve, reject) => { child.once('message', resolve); child.once('exit', (c) => reject(new Error(`child exited ${c}`))); });
}

if (mode === '--serve') {
  await serve();
} else if (mode === '--client') {
  const kind = process.argv[3]!;
  process.once('message', async (m: { kubeconfig: string }) => {
    const r = await client(kind, m.kubeconfig);
    process.send!({ result: r }, () => process.exit(0));
  });
  process.send!({ up: true });
} else {
  const extra = ['--services', String(SERVICES), '--pods', String(PODS), '--churn', String(CHURN)];
  const t0 = performance.now();
  let kubeconfig: string;
  let server: ChildProcess | undefined;
  let real: RealApiServer | undefined;
  let realClient: KubeClient | undefined;
  if (REAL) {
    const why = realApiServerMissing();
    if (why) throw new Error(`--real: ${why}`);
    real = await startRealApiServer();
    kubeconfig = fs.readFileSync(real.kubeconfigPath, 'utf8');
    realClient = new KubeClient(loadKubeConfig({ yaml: kubeconfig }));
    await loadReal(realClient);
  } else {
    server = fork(self, ['--serve', ...extra], { execArgv: ['--max-old-space-size=4096'] });
    ({ kubeconfig } = await run(server));
  }
  const loadMs = performance.now() - t0;
  process.stderr.write(`kube-sync bench: server loaded in ${Math.round(loadMs)} ms\n`);
  /** Pod churn on the real server: merge-patch the timestamp annotation, 4 writes in flight. */
  const churnReal = async (n: number): Promise<void> => {
    let i = 0;
    const w = async (): Promise<void> => {
      for (let k = i++; k < n; k = i++) {
        const s = k % SERVICES;
        await realClient!.request('PATCH', `/api/v1/namespaces/ns-${s % NAMESPACES}/pods/svc-${s}-0`, {},
          { metadata: { annotations: { 'bench.istio.io/t': String(Date.now()) } } }, 60_000, 'application/merge-patch+json');
      }
    };
    await Promise.all(Array.from({ length: 4 }, w));
  };
  const results: ClientResult[] = [];
  for (const kind of ['projected', 'projected-100', 'raw']) {
    const c = fork(self, ['--client', kind, ...extra], { execArgv: ['--expose-gc'] });
    await run(c);
    c.on('message', (m: { wantChurn?: number }) => {
      if (!m.wantChurn) return;
      if (server) server.send({ churn: m.wantChurn }); else void churnReal(m.wantChurn);
    });
    const done = new Promise<ClientResult>((resolve) => c.on('message', (m: { result?: ClientResult }) => { if (m.result) resolve(m.result); }));
    c.send({ kubeconfig });
    const r = await done;
    process.stderr.write(`kube-sync bench: ${kind}: ${Math.round(r.syncMs)} ms\n`);
    results.push(r);
  }
  server?.kill();
  await real?.stop();
  const base = results[0]!;
  const cmd = `node dist/bench/kube-sync.js --services ${SERVICES} --pods ${PODS} --churn ${CHURN}${REAL ? ' --real' : ''}`;
  const where = REAL
    ? `a REAL kube-apiserver v1.31.4 + etcd 3.4 (scripts/install-kube-apiserver.sh) on this machine, loaded over REST in ${Math.round(loadMs / 1000)} s (Pods without status: no kubelet)`
    : 'test/helpers/fake-apiserver.ts in its own process';
  let section = `\n## Kubernetes initial sync and watch latency (issue #6)\n\n\`${cmd}\` — ${new Date().toISOString()}, ${os.cpus().length} cores, Node ${process.version}, @kubernetes/client-node 1.4.0; machine shared with other work (compare ratios).\n\n` +
    `${SERVICES} Services, ${PODS} Pods, ${SERVICES} EndpointSlices, ${NAMESPACES} Namespaces, ${NODES} Nodes served by ${where}; each client in its own process (RSS/heap are deltas over its idle start, after GC). ` +
    `*projected* is meshpilot's informer path; *raw* lists the same pages and keeps whole objects (an unprojected cache).\n\n` +
    `| client | sync ms | sync vs projected | RSS Δ MiB | heap Δ MiB | heap vs projected | objects | registry build ms | services | endpoints |\n|---|---|---|---|---|---|---|---|---|---|\n`;
  for (const r of results) {
    section += `| ${r.mode} | ${Math.round(r.syncMs)} | ${(r.syncMs / base.syncMs).toFixed(2)}× | ${r.rssMb} | ${r.heapMb} | ${(r.heapMb / base.heapMb).toFixed(2)}× | ${r.objects.toLocaleString('en')} | ${r.registryMs === undefined ? '—' : Math.round(r.registryMs)} | ${r.services ?? '—'} | ${r.endpoints?.toLocaleString('en') ?? '—'} |\n`;
  }
  const ch = base.churn;
  if (ch) section += `\nWatch latency, API server write → projected object in the cluster store, ${ch.count} pod updates (${REAL ? 'merge-patches, 4 in flight' : 'bursts of 20 every 5 ms'}): p50 ${ch.p50} ms, p90 ${ch.p90} ms, p99 ${ch.p99} ms, max ${ch.max} ms.\n`;
  process.stdout.write(section);
  if (!process.argv.includes('--no-record')) fs.appendFileSync(path.join(path.dirname(self), '../../bench/RESULTS.md'), section);
}
