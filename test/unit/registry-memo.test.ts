/**
 * The registry's memos (per-object endpoint contributions, per-host sorted lists, the pod view) must never change what
 * it derives: after every change in a long random sequence, the registry built from the live store (memos warm) equals
 * the one built from a copy of the store's objects (memos cold), and a host whose inputs did not change keeps the very
 * same endpoint array (which is what lets its version hash be skipped).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigStore } from '../../src/config/store.js';
import { buildKubeRegistry, registryBuilds } from '../../src/model/registry/kube-registry.js';
import type { KubeResource } from '../../src/config/schema/index.js';
import { rng } from '../helpers/rng.js';


const NS = ['a', 'b'];
const SVCS = ['s0', 's1', 's2', 's3'];

/** `portName`: 'web' matches no slice or Endpoints port (those are named http and tcp), so renaming changes endpoints. */
function service(ns: string, name: string, port: number, selector: boolean, portName = 'http'): KubeResource {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns },
    spec: { ports: [{ name: portName, port, targetPort: 8080 }, { name: 'tcp', port: 9000 }], ...(selector ? { selector: { app: name } } : {}) },
  } as unknown as KubeResource;
}

function slice(ns: string, svc: string, idx: number, ips: string[], ready: boolean[], pods: Array<string | undefined>): KubeResource {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `${svc}-${idx}`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080 }, { name: 'tcp', port: 9000 }],
    endpoints: ips.map((ip, i) => ({
      addresses: [ip], conditions: { ready: ready[i] },
      ...(pods[i] ? { targetRef: { kind: 'Pod', name: pods[i], namespace: ns } } : {}),
    })),
  } as unknown as KubeResource;
}

function endpointsObj(ns: string, svc: string, ips: string[]): KubeResource {
  return {
    apiVersion: 'v1', kind: 'Endpoints', metadata: { name: svc, namespace: ns },
    subsets: [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: 'http', port: 8080 }] }],
  } as unknown as KubeResource;
}

function pod(ns: string, name: string, ip: string, app: string, node: string, ready: boolean): KubeResource {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app, version: name.slice(-1) } },
    spec: { nodeName: node, serviceAccountName: `sa-${app}`, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { podIP: ip, phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  } as unknown as KubeResource;
}

function node(name: string, zone: string): KubeResource {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': zone } } } as unknown as KubeResource;
}

function copyOf(store: ConfigStore): ConfigStore {
  const fresh = new ConfigStore();
  for (const kind of ['Service', 'EndpointSlice', 'Endpoints', 'Pod', 'Node']) {
    for (const c of store.list(kind)) fresh.upsert(structuredClone(c.resource), c.source);
  }
  return fresh;
}

for (const kubernetes of [false, true]) {
  test(`memoised registry equals a cold build after each of 400 random changes (kubernetes=${kubernetes})`, () => {
    const rand = rng(kubernetes ? 7 : 3);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const store = new ConfigStore();
    const opts = { kubernetes, network: kubernetes ? 'net1' : undefined };
    let reused = 0;
    let prev = buildKubeRegistry(store, 'cluster.local', 'c1', opts);
    let incremental = 0;
    const inPlaceBefore = registryBuilds.servicesInPlace;
    let modifiedIncrementally = 0;
    for (let step = 0; step < 400; step++) {
      const ns = pick(NS), svc = pick(SVCS);
      const ip = (): string => `10.${NS.indexOf(ns)}.${Math.floor(rand() * 4)}.${Math.floor(rand() * 6)}`;
      const op = rand();
      if (op < 0.12) store.upsert(service(ns, svc, pick([80, 81]), rand() < 0.7, rand() < 0.7 ? 'http' : 'web'), 'src');
      else if (op < 0.18) store.delete({ kind: 'Service', namespace: ns, name: svc });
      else if (op < 0.5) {
        const n = 1 + Math.floor(rand() * 3);
        store.upsert(slice(ns, svc, Math.floor(rand() * 2), Array.from({ length: n }, ip), Array.from({ length: n }, () => rand() < 0.8),
          Array.from({ length: n }, () => (rand() < 0.5 ? `${svc}-p${Math.floor(rand() * 3)}` : undefined))), 'src');
      } else if (op < 0.58) store.delete({ kind: 'EndpointSlice', namespace: ns, name: `${svc}-${Math.floor(rand() * 2)}` });
      else if (op < 0.66) store.upsert(endpointsObj(ns, svc, [ip(), ip()]), 'src');
      else if (op < 0.7) store.delete({ kind: 'Endpoints', namespace: ns, name: svc });
      else if (op < 0.88) store.upsert(pod(ns, `${svc}-p${Math.floor(rand() * 3)}`, ip(), svc, pick(['n1', 'n2']), rand() < 0.8), 'src');
      else if (op < 0.93) store.delete({ kind: 'Pod', namespace: ns, name: `${svc}-p${Math.floor(rand() * 3)}` });
      else store.upsert(node(pick(['n1', 'n2']), pick(['z1', 'z2', 'z3'])), 'src');

      const before = registryBuilds.incremental, inPlace = registryBuilds.servicesInPlace;
      const warm = buildKubeRegistry(store, 'cluster.local', 'c1', opts);
      incremental += registryBuilds.incremental - before;
      if (registryBuilds.servicesInPlace > inPlace && registryBuilds.incremental > before) modifiedIncrementally++;
      const cold = buildKubeRegistry(copyOf(store), 'cluster.local', 'c1', opts);
      assert.deepEqual(warm, cold, `step ${step}: the memoised registry differs from a cold build`);
      for (const [host, eps] of Object.entries(warm.endpoints)) {
        if (prev.endpoints[host] === eps) reused++;
      }
      prev = warm;
    }
    // Most changes touch one object: most hosts must have kept their array (the point of the memo).
    assert.ok(reused > 400, `only ${reused} host lists were reused across 400 changes`);
    // Slice-only changes (40% of the operations) take the incremental path; it is what these comparisons test.
    assert.ok(incremental > 100, `only ${incremental} of 400 builds were incremental`);
    // Service modifications (same namespace/name: a port, the selector) replace the service in place.
    const inPlace = registryBuilds.servicesInPlace - inPlaceBefore;
    assert.ok(inPlace > 15, `only ${inPlace} builds replaced modified Services in place`);
    assert.ok(modifiedIncrementally > 10, `only ${modifiedIncrementally} of them rederived just the modified hosts`);
  });
}

test('a slice that moves to another service, and a burst of changes past the incremental limit, build as a cold registry does', () => {
  const store = new ConfigStore();
  for (const s of SVCS) store.upsert(service('a', s, 80, true), 'src');
  store.upsert(endpointsObj('a', 's1', ['10.0.9.1', '10.0.9.2']), 'src');
  store.upsert(pod('a', 's0-p0', '10.0.0.5', 's0', 'n1', true), 'src');
  store.upsert(slice('a', 's0', 0, ['10.0.0.1'], [true], [undefined]), 'src');
  buildKubeRegistry(store, 'cluster.local', 'c1');
  const check = (what: string): void => {
    const before = registryBuilds.incremental;
    const warm = buildKubeRegistry(store, 'cluster.local', 'c1');
    assert.equal(registryBuilds.incremental, before + 1, `${what}: incremental`);
    assert.deepEqual(warm, buildKubeRegistry(copyOf(store), 'cluster.local', 'c1'), what);
  };
  // s0-0 now labelled for s1: s0 falls back to its pods, s1's Endpoints object gives way to the slice.
  const moved = slice('a', 's0', 0, ['10.0.0.1'], [true], [undefined]) as any;
  moved.metadata.labels['kubernetes.io/service-name'] = 's1';
  store.upsert(moved, 'src');
  check('slice moved from s0 to s1');
  store.delete({ kind: 'EndpointSlice', namespace: 'a', name: 's0-0' });
  check('slice deleted: s1 back to its Endpoints object');
  // More slice changes than the incremental limit (64): a full build, still equal.
  for (let i = 0; i < 80; i++) store.upsert(slice('a', SVCS[i % 4]!, i, [`10.1.${i % 200}.1`], [true], [undefined]), 'src');
  const full = registryBuilds.full;
  const warm = buildKubeRegistry(store, 'cluster.local', 'c1');
  assert.equal(registryBuilds.full, full + 1, 'a full build after the burst');
  assert.deepEqual(warm, buildKubeRegistry(copyOf(store), 'cluster.local', 'c1'));
});

test('an unchanged pod view keeps the same workloads array; a pod change replaces it', () => {
  const store = new ConfigStore();
  store.upsert(pod('a', 'x-p0', '10.0.0.1', 'x', 'n1', true), 'src');
  const r1 = buildKubeRegistry(store, 'cluster.local', 'c1');
  store.upsert(slice('a', 'x', 0, ['10.0.0.1'], [true], ['x-p0']), 'src');
  const r2 = buildKubeRegistry(store, 'cluster.local', 'c1');
  assert.equal(r2.workloads, r1.workloads);
  store.upsert(pod('a', 'x-p0', '10.0.0.2', 'x', 'n1', true), 'src');
  const r3 = buildKubeRegistry(store, 'cluster.local', 'c1');
  assert.notEqual(r3.workloads, r1.workloads);
  assert.equal(r3.workloads[0]!.ip, '10.0.0.2');
});

test('merging two clusters: memoised merge equals a plain concatenate-and-sort after each of 200 random changes; untouched hosts keep their arrays', async () => {
  const { mergeRegistries } = await import('../../src/model/registry/aggregate.js');
  const rand = rng(11);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const stores = { east: new ConfigStore(), west: new ConfigStore() };
  const build = (): ReturnType<typeof buildKubeRegistry>[] => (Object.keys(stores) as Array<keyof typeof stores>)
    .map((c) => buildKubeRegistry(stores[c], 'cluster.local', c, { kubernetes: true }));
  const plain = (parts: ReturnType<typeof buildKubeRegistry>[]): { services: unknown[]; endpoints: Record<string, unknown[]>; workloads: unknown[] } => {
    const services = new Map<string, unknown>();
    for (const p of parts) for (const sv of p.services) if (!services.has(sv.hostname)) services.set(sv.hostname, sv);
    const endpoints: Record<string, any[]> = {};
    for (const p of parts) for (const [h, eps] of Object.entries(p.endpoints)) (endpoints[h] ??= []).push(...eps);
    for (const l of Object.values(endpoints)) {
      l.sort((a, b) => (a.address === b.address ? (a.port === b.port ? (a.clusterId < b.clusterId ? -1 : a.clusterId > b.clusterId ? 1 : 0) : a.port - b.port) : a.address < b.address ? -1 : 1));
    }
    return { services: [...services.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, sv]) => sv), endpoints, workloads: parts.flatMap((p) => p.workloads) };
  };
  let prev = mergeRegistries(build());
  let reused = 0;
  for (let step = 0; step < 200; step++) {
    const store = stores[pick(['east', 'west'] as const)];
    const ns = pick(NS), svc = pick(SVCS);
    const ip = (): string => `10.${NS.indexOf(ns)}.${Math.floor(rand() * 4)}.${Math.floor(rand() * 6)}`;
    const op = rand();
    if (op < 0.15) store.upsert(service(ns, svc, pick([80, 81]), true), 'src');
    else if (op < 0.6) store.upsert(slice(ns, svc, 0, [ip(), ip()], [true, rand() < 0.5], [undefined, `${svc}-p0`]), 'src');
    else if (op < 0.7) store.delete({ kind: 'EndpointSlice', namespace: ns, name: `${svc}-0` });
    else store.upsert(pod(ns, `${svc}-p0`, ip(), svc, 'n1', true), 'src');
    const merged = mergeRegistries(build());
    const want = plain(build());
    assert.deepEqual(merged.services, want.services, `step ${step}: merged services`);
    assert.deepEqual(merged.endpoints, want.endpoints, `step ${step}: merged endpoints`);
    assert.deepEqual(merged.workloads, want.workloads, `step ${step}: merged workloads`);
    for (const [h, eps] of Object.entries(merged.endpoints)) if (prev.endpoints[h] === eps) reused++;
    prev = merged;
  }
  assert.ok(reused > 200, `only ${reused} merged host lists were reused across 200 changes`);
});
