/**
 * Kubernetes objects (Service, EndpointSlice, Endpoints, Pod, Namespace) → model services, endpoints and workloads,
 * as istiod's kube service registry derives them. Works on whatever ConfigStore holds, whichever source fed it.
 */
import type { ConfigStore, StoredConfig } from '../../config/store.js';
import { contentHash, keyString } from '../../config/store.js';
import { Kind } from '../../config/kinds.js';
import { convertProtocol } from '../protocol.js';
import { parseLocality, serviceFqdn, type Endpoint, type Service, type ServicePort, type Locality } from '../service.js';
import type { Workload } from '../push-context.js';
import {
  LOCALITY_LABEL, TOPOLOGY_REGION_LABEL, TOPOLOGY_SUBZONE_LABEL, TOPOLOGY_ZONE_LABEL,
} from '../constants.js';

const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Labels istiod adds to every endpoint (model.AugmentLabels), so subsets and policies can select on them. */
const CLUSTER_LABEL = 'topology.istio.io/cluster';
const NETWORK_LABEL = 'topology.istio.io/network';
const NODE_KIND = 'Node';

export interface KubeRegistryOptions {
  /** Network of this cluster's endpoints (the system namespace's topology.istio.io/network label). */
  network?: string;
  /**
   * Objects come from a live Kubernetes API server: endpoints come only from EndpointSlices (the endpoints
   * controller publishes one, possibly empty, for every selector Service, so deriving them from pods would
   * only race it), and endpoints carry istiod's cluster/network labels.
   */
  kubernetes?: boolean;
}

export interface KubeRegistryResult {
  services: Service[];
  endpoints: Record<string, Endpoint[]>;
  workloads: Workload[];
}

/**
 * Locality as istiod derives it: the pod's istio-locality label, else the topology labels of its node (the pod's
 * own topology labels for hand-written meshes without Nodes), else the EndpointSlice's zone.
 */
function podLocality(labels: Record<string, string>, zoneHint?: string, node?: Record<string, string>): Locality {
  if (labels[LOCALITY_LABEL]) return parseLocality(labels[LOCALITY_LABEL].replace(/\./g, '/'));
  const n = node ?? {};
  return {
    region: labels[TOPOLOGY_REGION_LABEL] ?? n[TOPOLOGY_REGION_LABEL] ?? n['failure-domain.beta.kubernetes.io/region'] ?? '',
    zone: labels[TOPOLOGY_ZONE_LABEL] ?? n[TOPOLOGY_ZONE_LABEL] ?? n['failure-domain.beta.kubernetes.io/zone'] ?? zoneHint ?? '',
    subzone: labels[TOPOLOGY_SUBZONE_LABEL] ?? n[TOPOLOGY_SUBZONE_LABEL] ?? '',
  };
}

/**
 * EndpointSlice conditions → health (discovery.k8s.io/v1): `ready` unset means ready unless terminating; a
 * terminating endpoint that still serves is draining, which istiod sends only for persistent sessions — not here.
 */
export function sliceEndpointHealthy(conditions: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } | undefined): boolean {
  const c = conditions ?? {};
  if (c.ready === true) return true;
  if (c.ready === false) return false;
  return c.terminating !== true;
}

/**
 * Stored objects are replaced, never mutated, on update: what is derived from one is memoised on it, so a rebuild
 * after one change re-derives (and re-hashes) only the changed objects.
 */
const serviceMemo = new WeakMap<StoredConfig, { domainSuffix: string; svc: Service }>();
const podMemo = new WeakMap<StoredConfig, PodInfo | undefined>();

function toService(c: StoredConfig, domainSuffix: string): Service {
  const m = serviceMemo.get(c);
  if (m && m.domainSuffix === domainSuffix) return m.svc;
  const svc = toServiceUncached(c, domainSuffix);
  serviceMemo.set(c, { domainSuffix, svc });
  return svc;
}

function toServiceUncached(c: StoredConfig, domainSuffix: string): Service {
  const r = c.resource;
  const spec = (r.spec ?? {}) as any;
  const ns = c.key.namespace;
  const ports: ServicePort[] = ((spec.ports ?? []) as any[]).map((p) => ({
    name: p.name ?? '',
    port: p.port,
    targetPort: p.targetPort ?? p.port,
    protocol: convertProtocol(p.name, p.protocol, p.appProtocol),
  }));
  const clusterIP: string | undefined = spec.clusterIP && spec.clusterIP !== 'None' ? spec.clusterIP : undefined;
  // Unset stays empty (= everywhere) so that MeshConfig defaultServiceExportTo can apply (build-push-context.ts).
  const exportTo = (r.metadata.annotations?.[EXPORT_TO_ANNOTATION] ?? '').split(',').map((s: string) => s.trim()).filter(Boolean);
  const external = spec.type === 'ExternalName';
  const svc: Omit<Service, 'version'> = {
    hostname: serviceFqdn(r.metadata.name, ns, domainSuffix),
    name: r.metadata.name,
    namespace: ns,
    address: clusterIP,
    ports,
    selector: spec.selector,
    exportTo,
    resolution: external ? 'DNS' : clusterIP || spec.selector ? 'EDS' : 'EDS',
    meshExternal: external,
  };
  if (typeof r.metadata.creationTimestamp === 'string') svc.creationTime = r.metadata.creationTimestamp;
  return { ...svc, version: contentHash(svc) };
}

interface PodInfo { ip: string; labels: Record<string, string>; sa?: string; name: string; namespace: string; ready: boolean; containerPorts: Map<string, number>; nodeName?: string }

function podInfo(c: StoredConfig): PodInfo | undefined {
  if (podMemo.has(c)) return podMemo.get(c);
  const p = podInfoUncached(c);
  podMemo.set(c, p);
  return p;
}

function podInfoUncached(c: StoredConfig): PodInfo | undefined {
  const r = c.resource as any;
  const ip: string | undefined = r.status?.podIP;
  if (!ip) return undefined;
  const conditions: any[] = r.status?.conditions ?? [];
  const readyCond = conditions.find((x) => x.type === 'Ready');
  const phase = r.status?.phase ?? 'Running';
  const containerPorts = new Map<string, number>();
  for (const ct of (r.spec?.containers ?? []) as any[]) {
    for (const p of (ct.ports ?? []) as any[]) if (p.name) containerPorts.set(p.name, p.containerPort);
  }
  return {
    ip, name: r.metadata.name, namespace: c.key.namespace, labels: r.metadata.labels ?? {},
    sa: r.spec?.serviceAccountName ?? 'default',
    ready: phase === 'Running' && (readyCond ? readyCond.status === 'True' : true),
    containerPorts,
    nodeName: r.spec?.nodeName,
  };
}

function resolveTargetPort(sp: ServicePort, pod: PodInfo | undefined): number | undefined {
  if (typeof sp.targetPort === 'number') return sp.targetPort;
  if (typeof sp.targetPort === 'string') {
    const n = Number(sp.targetPort);
    if (Number.isInteger(n)) return n;
    return pod?.containerPorts.get(sp.targetPort);
  }
  return sp.port;
}

/** What one registry build derived from pods and nodes; reused while neither kind has changed in the store. */
interface PodView {
  podRev: number; nodeRev: number;
  pods: Map<string, PodInfo>; podsByIp: Map<string, PodInfo>; nodes: Map<string, Record<string, string>>;
  workloads: Workload[];
  /** Identifies this view in the per-object memos below (a new view invalidates what was derived with the old). */
  epoch: number;
}

/** Per store and build options: the pod view and, per host, the contributions its last endpoint list was sorted from. */
interface RegistryMemo {
  view?: PodView;
  hosts: Map<string, { parts: Endpoint[][]; list: Endpoint[] }>;
  /** The services, sorted, by namespace/name and by hostname, while no Service has changed in the store. */
  services?: { rev: number; list: readonly Service[]; byNsName: Map<string, Service>; byHost: Map<string, Service> };
  /**
   * What the last build saw, for the next to apply only the EndpointSlices changed since (when nothing else has):
   * each slice's host, each host's slices, and the endpoints by host it returned.
   */
  inc?: {
    serviceRev: number; epoch: number; endpointsRev: number; sliceRev: number;
    sliceHost: Map<string, string>; hostSlices: Map<string, Set<string>>; endpoints: Record<string, Endpoint[]>;
  };
}

const registryMemos = new WeakMap<ConfigStore, Map<string, RegistryMemo>>();

/**
 * Builds so far by path (read by tests): every object scanned, or only the EndpointSlices changed since the last;
 * and how many builds replaced modified Services in place instead of re-listing them all.
 */
export const registryBuilds = { full: 0, incremental: 0, servicesInPlace: 0 };
let nextEpoch = 1;
/**
 * The endpoints one EndpointSlice / Endpoints object contributes, valid for the service object, pod view and build
 * options they were derived with. With them an endpoint change re-derives only the objects that changed, and every
 * host whose contributions are all the same objects keeps its previous (sorted) list — the same array, so its
 * version hash is not recomputed either (build-push-context.ts).
 */
const contributionMemo = new WeakMap<StoredConfig | Service, { svc: Service; epoch: number; opts: string; eps: Endpoint[] }>();

function podView(store: ConfigStore, memo: RegistryMemo): PodView {
  const podRev = store.revision(Kind.Pod), nodeRev = store.revision(NODE_KIND);
  if (memo.view && memo.view.podRev === podRev && memo.view.nodeRev === nodeRev) return memo.view;
  const pods = new Map<string, PodInfo>(); // ns/name → pod
  const podsByIp = new Map<string, PodInfo>();
  for (const c of store.list(Kind.Pod)) {
    const p = podInfo(c);
    if (!p) continue;
    pods.set(`${p.namespace}/${p.name}`, p);
    podsByIp.set(p.ip, p);
  }
  const nodes = new Map<string, Record<string, string>>();
  for (const c of store.list(NODE_KIND)) nodes.set(c.key.name, c.resource.metadata.labels ?? {});
  const workloads: Workload[] = [...pods.values()].map((p) => {
    const l = podLocality(p.labels, undefined, nodes.get(p.nodeName ?? ''));
    return {
      name: p.name, namespace: p.namespace, ip: p.ip, labels: p.labels,
      serviceAccount: p.sa, locality: [l.region, l.zone, l.subzone].join('/'),
    };
  });
  memo.view = { podRev, nodeRev, pods, podsByIp, nodes, workloads, epoch: nextEpoch++ };
  return memo.view;
}

export const byHostname = (a: Service, b: Service): number => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0);

/**
 * Whether `changes` changes to a kind with `total` objects are few enough to apply one by one (Services modified in
 * place, EndpointSlices); past it a build lists everything again.
 */
const fewChanges = (changes: number, total: number): boolean => changes <= Math.max(64, total / 8);

/** Record that an EndpointSlice (its key string) contributes to a host. */
function addSlice(hostSlices: Map<string, Set<string>>, host: string, ks: string): void {
  let set = hostSlices.get(host);
  if (!set) hostSlices.set(host, (set = new Set()));
  set.add(ks);
}

/**
 * When every Service changed since the memo's revision was modified in place (it existed before and still does,
 * so its hostname — name.namespace.svc.suffix — and its place in the sorted list are the same), replace those in
 * a copy of the list and in the indexes, and return their hosts; otherwise (an addition, a deletion, too many
 * changes, the change log not reaching back) undefined, and the caller rebuilds the list. A Service change on a
 * 10,000-service mesh re-listed, converted and sorted all of them (~15 ms) and rederived every host's endpoints.
 */
function modifyServices(
  prev: NonNullable<RegistryMemo['services']>, store: ConfigStore, rev: number, domainSuffix: string,
): string[] | undefined {
  const changed = store.changesSince(Kind.Service, prev.rev);
  if (!changed || !fewChanges(changed.length, prev.list.length)) return undefined;
  const replace: Array<[old: Service, svc: Service]> = [];
  for (const ks of changed) {
    const c = store.byKeyString(ks);
    const old = c ? prev.byNsName.get(`${c.key.namespace}/${c.key.name}`) : undefined;
    if (!c || !old) return undefined;
    const svc = toService(c, domainSuffix);
    if (svc.hostname !== old.hostname) return undefined;
    replace.push([old, svc]);
  }
  const list = prev.list.slice();
  for (const [old, svc] of replace) {
    let lo = 0, hi = list.length - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (list[mid]!.hostname < old.hostname) lo = mid + 1; else hi = mid; }
    if (list[lo] !== old) return undefined; // not where the sort put it: rebuild (prev is untouched so far)
    list[lo] = svc;
  }
  for (const [, svc] of replace) {
    prev.byNsName.set(`${svc.namespace}/${svc.name}`, svc);
    prev.byHost.set(svc.hostname, svc);
  }
  prev.rev = rev;
  prev.list = list;
  registryBuilds.servicesInPlace++;
  return replace.map(([, svc]) => svc.hostname);
}
const byAddressPort = (a: Endpoint, b: Endpoint): number => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1);

export function buildKubeRegistry(store: ConfigStore, domainSuffix: string, clusterId: string, opts: KubeRegistryOptions = {}): KubeRegistryResult {
  const optsKey = `${domainSuffix}|${clusterId}|${opts.network ?? ''}|${opts.kubernetes === true}`;
  let memos = registryMemos.get(store);
  if (!memos) registryMemos.set(store, (memos = new Map()));
  let memo = memos.get(optsKey);
  if (!memo) memos.set(optsKey, (memo = { hosts: new Map() }));

  // An endpoint change leaves the services as they were: sorting and indexing 10,000 of them was ~7 ms per push.
  const serviceRev = store.revision(Kind.Service);
  /** The revision the services were at before this build, and the hosts of the Services modified since (if that is all). */
  let servicesFrom: number | undefined;
  let modifiedHosts: string[] | undefined;
  if (memo.services?.rev !== serviceRev) {
    servicesFrom = memo.services?.rev;
    modifiedHosts = memo.services ? modifyServices(memo.services, store, serviceRev, domainSuffix) : undefined;
    if (!modifiedHosts) {
      const list = store.list(Kind.Service).map((c) => toService(c, domainSuffix)).sort(byHostname);
      memo.services = {
        rev: serviceRev, list,
        byNsName: new Map(list.map((s) => [`${s.namespace}/${s.name}`, s])),
        byHost: new Map(list.map((s) => [s.hostname, s])),
      };
    }
  }
  // The same array for every build while no Service changes (callers copy it before adding to it), so an
  // endpoint-only push can tell the services are unchanged without comparing them one by one.
  const { list: services, byNsName, byHost } = memo.services!;
  const { pods, podsByIp, nodes, workloads, epoch } = podView(store, memo);

  /** Endpoints derived from `from` (an object, or a service for pod-derived ones), memoised as above. */
  const derived = (from: StoredConfig | Service, svc: Service, derive: () => Endpoint[]): Endpoint[] => {
    const m = contributionMemo.get(from);
    if (m && m.svc === svc && m.epoch === epoch && m.opts === optsKey) return m.eps;
    const eps = derive();
    contributionMemo.set(from, { svc, epoch, opts: optsKey, eps });
    return eps;
  };

  const extraLabels: Record<string, string> | undefined = opts.kubernetes
    ? { [CLUSTER_LABEL]: clusterId, ...(opts.network ? { [NETWORK_LABEL]: opts.network } : {}) }
    : undefined;

  const mkEndpoint = (svc: Service, sp: ServicePort, address: string, port: number, healthy: boolean, pod: PodInfo | undefined, zone?: string, nodeName?: string): Endpoint => {
    const node = nodes.get(pod?.nodeName ?? nodeName ?? '');
    const podLabels = pod?.labels ?? {};
    return {
      address, port, servicePortName: sp.name, healthy,
      labels: extraLabels ? { ...podLabels, ...extraLabels } : podLabels,
      locality: podLocality(podLabels, zone, node),
      serviceAccount: pod?.sa, namespace: svc.namespace, workloadName: pod?.name, clusterId,
    };
  };

  // What each kind of object contributes to its service's host.
  /** ExternalName: one DNS endpoint per port at the external name (istiod's externalNameServiceInstances). */
  const externalName = (c: StoredConfig, svc: Service): Endpoint[] | undefined => {
    const spec = (c.resource.spec ?? {}) as any;
    if (spec.type !== 'ExternalName' || !spec.externalName) return undefined;
    return svc.ports.map((sp) => mkEndpoint(svc, sp, spec.externalName, sp.port, true, undefined));
  };
  const sliceService = (c: StoredConfig): Service | undefined => {
    const svcName = (c.resource as any).metadata.labels?.[SERVICE_NAME_LABEL];
    return svcName ? byNsName.get(`${c.key.namespace}/${svcName}`) : undefined;
  };
  const fromSlice = (c: StoredConfig, svc: Service): Endpoint[] => derived(c, svc, () => {
    const r = c.resource as any;
    const eps: Endpoint[] = [];
    const slicePorts: any[] = r.ports ?? [];
    for (const e of (r.endpoints ?? []) as any[]) {
      const pod = e.targetRef?.kind === 'Pod' ? pods.get(`${e.targetRef.namespace ?? c.key.namespace}/${e.targetRef.name}`) : undefined;
      const healthy = sliceEndpointHealthy(e.conditions);
      for (const address of (e.addresses ?? []) as string[]) {
        for (const sp of svc.ports) {
          const slicePort = slicePorts.find((p) => (p.name ?? '') === sp.name);
          if (!slicePort) continue;
          eps.push(mkEndpoint(svc, sp, address, slicePort.port, healthy, pod ?? podsByIp.get(address), e.zone, e.nodeName));
        }
      }
    }
    return eps;
  });
  const fromEndpoints = (c: StoredConfig, svc: Service): Endpoint[] => derived(c, svc, () => {
    const eps: Endpoint[] = [];
    for (const subset of ((c.resource as any).subsets ?? []) as any[]) {
      const groups: Array<[any[], boolean]> = [[subset.addresses ?? [], true], [subset.notReadyAddresses ?? [], false]];
      for (const [addrs, healthy] of groups) {
        for (const a of addrs) {
          const pod = a.targetRef?.kind === 'Pod' ? pods.get(`${a.targetRef.namespace ?? c.key.namespace}/${a.targetRef.name}`) : podsByIp.get(a.ip);
          for (const sp of svc.ports) {
            const ep = ((subset.ports ?? []) as any[]).find((p) => (p.name ?? '') === sp.name);
            if (ep) eps.push(mkEndpoint(svc, sp, a.ip, ep.port, healthy, pod));
          }
        }
      }
    }
    return eps;
  });
  /**
   * Without any EndpointSlice/Endpoints object for a selector service (a hand-written mesh in files), endpoints
   * from matching running pods, as the Kubernetes endpoints controller would.
   */
  const fromPods = (svc: Service): Endpoint[] | undefined => {
    if (opts.kubernetes || !svc.selector || Object.keys(svc.selector).length === 0) return undefined;
    return derived(svc, svc, () => {
      const eps: Endpoint[] = [];
      for (const pod of pods.values()) {
        if (pod.namespace !== svc.namespace) continue;
        if (!Object.entries(svc.selector!).every(([k, v]) => pod.labels[k] === v)) continue;
        for (const sp of svc.ports) {
          const port = resolveTargetPort(sp, pod);
          if (port !== undefined) eps.push(mkEndpoint(svc, sp, pod.ip, port, pod.ready, pod));
        }
      }
      return eps;
    });
  };

  /** A host's list: its contributions concatenated and sorted (stable: ties keep derivation order), or the last one. */
  const listOf = (host: string, ps: Endpoint[][]): Endpoint[] => {
    const prev = memo!.hosts.get(host);
    if (prev && prev.parts.length === ps.length && prev.parts.every((p, i) => p === ps[i])) return prev.list;
    return (ps.length === 1 ? [...ps[0]!] : ps.flat()).sort(byAddressPort);
  };

  const sliceRev = store.revision(Kind.EndpointSlice);
  const inc = memo.inc;
  // The services the last build saw, or those with some modified in place (modifyServices: the same hosts).
  const sameHosts = inc !== undefined && (inc.serviceRev === serviceRev || (modifiedHosts !== undefined && inc.serviceRev === servicesFrom));
  const changed = inc && sameHosts && inc.epoch === epoch && inc.endpointsRev === store.revision(Kind.Endpoints)
    ? store.changesSince(Kind.EndpointSlice, inc.sliceRev) : undefined;
  if (inc && changed && fewChanges(changed.length, services.length)) {
    // Only EndpointSlices changed since the last build, and Services modified in place: rederive the hosts the
    // slices left or joined and the modified services' hosts, in the same order and with the same rules as the full
    // build below, and keep every other host's list.
    const touched = new Set<string>(modifiedHosts);
    for (const ks of changed) {
      const before = inc.sliceHost.get(ks);
      if (before !== undefined) { inc.hostSlices.get(before)?.delete(ks); touched.add(before); }
      inc.sliceHost.delete(ks);
      const c = store.byKeyString(ks);
      const svc = c ? sliceService(c) : undefined;
      if (!svc) continue;
      inc.sliceHost.set(ks, svc.hostname);
      addSlice(inc.hostSlices, svc.hostname, ks);
      touched.add(svc.hostname);
    }
    const endpoints: Record<string, Endpoint[]> = Object.assign({}, inc.endpoints);
    for (const host of touched) {
      const svc = byHost.get(host)!;
      const ps: Endpoint[][] = [];
      const add = (eps: Endpoint[] | undefined): void => { if (eps && eps.length > 0) ps.push(eps); };
      const own = store.get({ kind: Kind.Service, namespace: svc.namespace, name: svc.name });
      let covered = false;
      const ext = own ? externalName(own, svc) : undefined;
      if (ext) { covered = true; add(ext); }
      const slices = [...(inc.hostSlices.get(host) ?? [])].map((ks) => store.byKeyString(ks)!).sort((a, b) => a.seq - b.seq);
      for (const c of slices) { covered = true; add(fromSlice(c, svc)); }
      if (!covered) {
        const ep = store.get({ kind: Kind.Endpoints, namespace: svc.namespace, name: svc.name });
        if (ep) { covered = true; add(fromEndpoints(ep, svc)); }
      }
      if (!covered) add(fromPods(svc));
      if (ps.length === 0) { delete endpoints[host]; memo.hosts.delete(host); continue; }
      const list = listOf(host, ps);
      endpoints[host] = list;
      memo.hosts.set(host, { parts: ps, list });
    }
    memo.inc = { ...inc, serviceRev, sliceRev, endpoints };
    registryBuilds.incremental++;
    return { services: services as Service[], endpoints, workloads };
  }

  /** Each host's contributions in derivation order (their concatenation, sorted, is its endpoint list). */
  const parts = new Map<string, Endpoint[][]>();
  const covered = new Set<string>();
  const contribute = (svc: Service, eps: Endpoint[] | undefined): void => {
    if (!eps || eps.length === 0) return;
    const l = parts.get(svc.hostname);
    if (l) l.push(eps); else parts.set(svc.hostname, [eps]);
  };

  for (const c of store.list(Kind.Service)) {
    const svc = byNsName.get(`${c.key.namespace}/${c.key.name}`);
    const ext = svc ? externalName(c, svc) : undefined;
    if (!svc || !ext) continue;
    covered.add(svc.hostname);
    contribute(svc, ext);
  }

  const sliceHost = new Map<string, string>();
  const hostSlices = new Map<string, Set<string>>();
  for (const c of store.list(Kind.EndpointSlice)) {
    const svc = sliceService(c);
    if (!svc) continue;
    const ks = keyString(c.key);
    sliceHost.set(ks, svc.hostname);
    addSlice(hostSlices, svc.hostname, ks);
    covered.add(svc.hostname);
    contribute(svc, fromSlice(c, svc));
  }

  for (const c of store.list(Kind.Endpoints)) {
    const svc = byNsName.get(`${c.key.namespace}/${c.key.name}`);
    if (!svc || covered.has(svc.hostname)) continue; // EndpointSlices win when both exist, as in istiod
    contribute(svc, fromEndpoints(c, svc));
    covered.add(svc.hostname);
  }

  for (const svc of opts.kubernetes ? [] : services) {
    if (covered.has(svc.hostname)) continue;
    contribute(svc, fromPods(svc));
  }

  // Each host's list: the previous list when every contribution is the same array as last time.
  const endpoints: Record<string, Endpoint[]> = {};
  const hosts = new Map<string, { parts: Endpoint[][]; list: Endpoint[] }>();
  for (const [host, ps] of parts) {
    const list = listOf(host, ps);
    endpoints[host] = list;
    hosts.set(host, { parts: ps, list });
  }
  memo.hosts = hosts;
  memo.inc = { serviceRev, epoch, endpointsRev: store.revision(Kind.Endpoints), sliceRev, sliceHost, hostSlices, endpoints };
  registryBuilds.full++;
  return { services: services as Service[], endpoints, workloads };
}
