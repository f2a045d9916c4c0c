/**
 * PushContext: the immutable, versioned snapshot of the mesh that one push computes from (istiod's
 * model.PushContext). Its data part is plain JSON so it can be handed to workers as bytes in shared memory;
 * indexes are derived on each side and never shipped.
 */
import { createHash } from 'node:crypto';
import { byCreation, type Endpoint, type Service } from './service.js';
import type { EndpointSource } from './snapshot-flat.js';
import type { ExtensionProvider } from './mesh-config.js';
import { destinationRuleIndex, type DestinationRuleIndex } from './destination-rules.js';

export interface ConfigEntry<T = any> {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: T;
  /** Content hash, used in resource cache keys. */
  version: string;
  /** metadata.creationTimestamp, when the config has one (objects from files have none): istiod's precedence order. */
  creationTime?: string;
}

export interface Workload {
  name: string;
  namespace: string;
  ip: string;
  labels: Record<string, string>;
  serviceAccount?: string;
  locality: string;
}

/**
 * Mesh-wide settings (istiod's push.Mesh): flags and the mesh config (src/model/mesh-config.ts). The optional
 * fields are unset when the mesh config leaves them unset, meaning istiod's defaults: ALLOW_ANY, locality LB
 * enabled, auto mTLS on, exportTo `*`, no extension providers.
 */
export interface MeshSettings {
  rootNamespace: string;
  domainSuffix: string;
  connectTimeoutMs: number;
  trustDomain: string;
  /** Sidecars without a Sidecar resource, or whose Sidecar leaves it unset. */
  outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Used where no DestinationRule sets localityLbSetting (istio loadbalancer.GetLocalityLbSetting). */
  localityLbSetting?: any;
  enableAutoMtls?: boolean;
  defaultServiceExportTo?: string[];
  defaultVirtualServiceExportTo?: string[];
  defaultDestinationRuleExportTo?: string[];
  extensionProviders?: ExtensionProvider[];
}

const meshDigests = new WeakMap<MeshSettings, string>();

/**
 * A digest of the whole mesh: part of every resource cache key (workers/networking/generator.ts), so a mesh config
 * change regenerates everything — istiod clears its whole XDS cache on a mesh change too.
 */
export function meshDigest(mesh: MeshSettings): string {
  let d = meshDigests.get(mesh);
  if (!d) {
    d = createHash('sha1').update(JSON.stringify(mesh)).digest('base64url').slice(0, 12);
    meshDigests.set(mesh, d);
  }
  return d;
}

export interface PushContextData {
  version: string;
  mesh: MeshSettings;
  services: Service[];
  endpoints: Record<string, Endpoint[]>;
  endpointVersions: Record<string, string>;
  virtualServices: ConfigEntry[];
  destinationRules: ConfigEntry[];
  gateways: ConfigEntry[];
  sidecars: ConfigEntry[];
  peerAuthentications: ConfigEntry[];
  authorizationPolicies: ConfigEntry[];
  requestAuthentications: ConfigEntry[];
  workloads: Workload[];
}

export interface ServiceIndex {
  /**
   * By hostname: the first service with it. A hostname can be several services, one per namespace (ServiceEntries
   * may name any host); the registry lists Kubernetes Services first and ServiceEntries oldest first, so this is
   * the one istiod prefers when nothing else decides (a proxy's scope does: sidecar-scope.ts).
   */
  byHost: Map<string, Service>;
  /** The position of that first service in the array. */
  position: Map<string, number>;
  /** Hostnames that are more than one service: all of them, in array order. */
  shared: Map<string, Service[]>;
  /** By namespace, in array order. */
  byNamespace: Map<string, Service[]>;
  /** How many services are exported to some namespaces only (exportTo set, without `*`). */
  restricted: number;
}

/** exportTo empty or with `*`: visible from every namespace. */
export const exportedEverywhere = (exportTo: readonly string[]): boolean => exportTo.length === 0 || exportTo.includes('*');

/**
 * Indexes over the services and workloads arrays, shared by every context built on the same (immutable) arrays: a
 * config-only rebuild (VirtualService, DestinationRule, …) keeps both, and re-indexing 1,000 services and 5,000
 * workloads was most of the context step of such a push.
 */
const serviceIndexes = new WeakMap<readonly Service[], ServiceIndex>();
const workloadIndexes = new WeakMap<readonly Workload[], Map<string, Workload>>();

/** The last services array indexed, and its index: a Service change replaces a few elements of the next one. */
let lastIndexed: { services: readonly Service[]; ix: ServiceIndex } | undefined;

/** The index of a services array some context has already indexed (no new index is built or derived). */
export function indexedAlready(services: readonly Service[]): ServiceIndex | undefined {
  return serviceIndexes.get(services);
}

/** How many indexes were derived from the previous one (read by tests). */
export const serviceIndexStats = { derived: 0 };

/** The services' index (memoised per array); exported for tests with `indexOf`, the full build it must equal. */
export function serviceIndex(services: readonly Service[]): ServiceIndex {
  let ix = serviceIndexes.get(services);
  if (ix) return ix;
  const derived = lastIndexed && indexFromPrevious(lastIndexed.services, lastIndexed.ix, services);
  if (derived) serviceIndexStats.derived++;
  ix = derived ?? indexOf(services);
  serviceIndexes.set(services, ix);
  lastIndexed = { services, ix };
  return ix;
}

/**
 * The index of `services` derived from that of `prev` when the two arrays have the same length and differ in a
 * few positions (Services modified in place): copies of the maps with only the replaced services' entries
 * recomputed, by the same rules as indexOf (the first service of a hostname wins; namespace lists in array order).
 * A service replaced by one of the same hostname and namespace takes its place directly; any other replacement,
 * or one of a hostname that is several services, rescans for its hostnames and namespaces. Re-indexing 10,000
 * services was ~16 ms of every Service change's push.
 * The previous index is not touched: the previous context, still in use while a push compares the two, holds it.
 */
function indexFromPrevious(prev: readonly Service[], prevIx: ServiceIndex, services: readonly Service[]): ServiceIndex | undefined {
  if (prev.length !== services.length) return undefined;
  const replaced: number[] = [];
  for (let i = 0; i < services.length; i++) {
    if (services[i] !== prev[i] && replaced.push(i) > 16) return undefined;
  }
  const ix: ServiceIndex = {
    byHost: new Map(prevIx.byHost), position: new Map(prevIx.position), shared: new Map(prevIx.shared), byNamespace: new Map(prevIx.byNamespace),
    restricted: prevIx.restricted,
  };
  const rescanHosts = new Set<string>(), rescanNamespaces = new Set<string>();
  for (const i of replaced) {
    const old = prev[i]!, svc = services[i]!;
    ix.restricted += Number(!exportedEverywhere(svc.exportTo)) - Number(!exportedEverywhere(old.exportTo));
    // The same hostname at the same position, the only service with it: still the first one, at the same place.
    if (old.hostname === svc.hostname && ix.byHost.get(old.hostname) === old && !ix.shared.has(old.hostname)) ix.byHost.set(svc.hostname, svc);
    else rescanHosts.add(old.hostname).add(svc.hostname);
    const list = old.namespace === svc.namespace ? ix.byNamespace.get(old.namespace) : undefined;
    const at = list ? list.indexOf(old) : -1;
    if (list && at >= 0 && !rescanNamespaces.has(svc.namespace)) {
      const copy = list === prevIx.byNamespace.get(svc.namespace) ? list.slice() : list;
      copy[at] = svc;
      ix.byNamespace.set(svc.namespace, copy);
    } else rescanNamespaces.add(old.namespace).add(svc.namespace);
  }
  for (const h of rescanHosts) {
    let at = -1;
    const all: Service[] = [];
    for (let i = 0; i < services.length; i++) {
      if (services[i]!.hostname !== h) continue;
      if (at < 0) at = i;
      all.push(services[i]!);
    }
    if (at >= 0) { ix.byHost.set(h, services[at]!); ix.position.set(h, at); } else { ix.byHost.delete(h); ix.position.delete(h); }
    if (all.length > 1) ix.shared.set(h, all); else ix.shared.delete(h);
  }
  for (const ns of rescanNamespaces) {
    const l = services.filter((s) => s.namespace === ns);
    if (l.length > 0) ix.byNamespace.set(ns, l); else ix.byNamespace.delete(ns);
  }
  return ix;
}

export function indexOf(services: readonly Service[]): ServiceIndex {
  const ix: ServiceIndex = { byHost: new Map(), position: new Map(), shared: new Map(), byNamespace: new Map(), restricted: 0 };
  for (let i = 0; i < services.length; i++) {
    const s = services[i]!;
    const first = ix.byHost.get(s.hostname);
    if (first === undefined) {
      ix.byHost.set(s.hostname, s);
      ix.position.set(s.hostname, i);
    } else {
      const all = ix.shared.get(s.hostname);
      if (all) all.push(s); else ix.shared.set(s.hostname, [first, s]);
    }
    if (!exportedEverywhere(s.exportTo)) ix.restricted++;
    let inNs = ix.byNamespace.get(s.namespace);
    if (!inNs) ix.byNamespace.set(s.namespace, (inNs = []));
    inNs.push(s);
  }
  return ix;
}

function workloadIndex(workloads: readonly Workload[]): Map<string, Workload> {
  let ix = workloadIndexes.get(workloads);
  if (!ix) {
    ix = new Map();
    for (const w of workloads) ix.set(w.ip, w);
    workloadIndexes.set(workloads, ix);
  }
  return ix;
}

const NO_KEYS: readonly string[] = [];

export class PushContext {
  readonly version: string;
  private readonly byHost: Map<string, Service>;
  private readonly sharedHosts: Map<string, Service[]>;
  private readonly workloadByIp: Map<string, Workload>;
  /** Services by namespace: a proxy's inbound instances are looked up once per scope, for thousands of proxies. */
  private readonly byNamespace: Map<string, Service[]>;
  private readonly drIndex: DestinationRuleIndex;
  private readonly vsByName = new Map<string, ConfigEntry>();
  /** Label keys any VirtualService matches on (sourceLabels): the only proxy labels routes can depend on. */
  readonly sourceLabelKeys: readonly string[];
  /** Some DestinationRule sets outlierDetection or localityLbSetting: endpoints depend on the proxy's locality. */
  readonly localityAware: boolean;

  /**
   * `endpointSource`, when given, serves endpoints instead of data.endpoints: workers read them lazily from the
   * flatbuffer in shared memory (src/model/snapshot-flat.ts).
   */
  constructor(readonly data: PushContextData, private readonly endpointSource?: EndpointSource) {
    this.version = data.version;
    ({ byHost: this.byHost, byNamespace: this.byNamespace, shared: this.sharedHosts } = serviceIndex(data.services));
    this.workloadByIp = workloadIndex(data.workloads);
    const labelKeys = new Set<string>();
    for (const vs of data.virtualServices) {
      this.vsByName.set(`${vs.namespace}/${vs.name}`, vs);
      for (const http of (vs.spec.http ?? []) as any[]) {
        for (const m of (http.match ?? []) as any[]) for (const k of Object.keys(m?.sourceLabels ?? {})) labelKeys.add(k);
      }
    }
    this.sourceLabelKeys = [...labelKeys].sort();
    this.drIndex = destinationRuleIndex(data.destinationRules, data.mesh.rootNamespace, (h, ns) => this.qualify(h, ns), data.mesh.domainSuffix);
    // A mesh localityLbSetting with distribute rules shapes every cluster's endpoints by the proxy locality.
    const meshLb = data.mesh.localityLbSetting;
    this.localityAware = (meshLb !== undefined && meshLb.enabled !== false && (meshLb.distribute?.length ?? 0) > 0)
      || data.destinationRules.some((dr) => /"(outlierDetection|localityLbSetting)"/.test(JSON.stringify(dr.spec)));
  }

  /** Short names resolve in the config's namespace, as Istio resolves hosts in VirtualService and DestinationRule. */
  qualify(host: string, namespace: string): string {
    if (host.includes('.') || host === '*') return host;
    return `${host}.${namespace}.svc.${this.data.mesh.domainSuffix}`;
  }

  get services(): readonly Service[] { return this.data.services; }
  /**
   * The first service with a hostname (a Kubernetes Service before ServiceEntries, then the oldest). Where a
   * hostname is several services, a proxy uses the one its SidecarScope picked: builders ask
   * sidecar-scope.ts serviceFor, not this.
   */
  service(hostname: string): Service | undefined { return this.byHost.get(hostname); }
  /** Every service with a hostname (one per namespace), in registry order. */
  servicesFor(hostname: string): readonly Service[] {
    const shared = this.sharedHosts.get(hostname);
    if (shared) return shared;
    const one = this.byHost.get(hostname);
    return one ? [one] : [];
  }
  /** Whether a hostname is more than one service (ServiceEntries in several namespaces, or next to a Kubernetes Service). */
  isShared(hostname: string): boolean { return this.sharedHosts.has(hostname); }
  /** Every endpoint of a hostname, whichever of its services (namespaces) it belongs to. */
  endpoints(hostname: string): readonly Endpoint[] {
    return this.endpointSource ? this.endpointSource.endpoints(hostname) : (this.data.endpoints[hostname] ?? []);
  }
  /**
   * A service's endpoints: those of its hostname in its namespace (istiod's endpoint shards are by hostname and
   * namespace). Only a shared hostname needs the filter.
   */
  endpointsOf(svc: Service): readonly Endpoint[] {
    const eps = this.endpoints(svc.hostname);
    return this.sharedHosts.has(svc.hostname) ? eps.filter((e) => e.namespace === svc.namespace) : eps;
  }
  endpointVersion(hostname: string): string {
    return this.endpointSource ? this.endpointSource.version(hostname) : (this.data.endpointVersions[hostname] ?? '0');
  }
  workload(ip: string): Workload | undefined { return this.workloadByIp.get(ip); }

  /** A VirtualService by namespace and name (delegates are referenced this way). */
  virtualService(namespace: string, name: string): ConfigEntry | undefined { return this.vsByName.get(`${namespace}/${name}`); }

  /**
   * The DestinationRule a proxy in `proxyNamespace` applies to a host, a service of `serviceNamespace` (by default
   * the namespace of the hostname's first service; where a hostname is several services, callers pass the one
   * the proxy's scope picked): its own namespace's rules, else those the service's namespace exports to it, else
   * the root namespace's, else none; rules for one host in one namespace merged; a rule with a workloadSelector
   * only for proxies of its namespace whose labels it selects (destination-rules.ts). `proxyLabels`: the proxy's
   * labels, at least those destinationRuleLabelKeys names (ProxyScope.drLabels).
   */
  destinationRuleFor(hostname: string, proxyNamespace: string, serviceNamespace?: string, proxyLabels?: Record<string, string>): ConfigEntry | undefined {
    return this.drIndex.lookup(hostname, proxyNamespace, serviceNamespace ?? this.byHost.get(hostname)?.namespace, proxyLabels);
  }

  /** The label keys the workloadSelectors of a namespace's DestinationRules read (sorted; usually none). */
  destinationRuleLabelKeys(namespace: string): readonly string[] {
    return this.drIndex.selectorKeys.get(namespace) ?? NO_KEYS;
  }

  /** destinationRuleLabelKeys of every namespace that has some (empty where no DestinationRule has a workloadSelector). */
  get destinationRuleLabelKeysByNamespace(): ReadonlyMap<string, readonly string[]> { return this.drIndex.selectorKeys; }

  /**
   * The Sidecar for a workload (istiod PushContext.initSidecarScopes / getSidecarScope): Sidecars are taken oldest
   * first (sortConfigByCreationTime), those with a workloadSelector before those without. The first one in the
   * workload's namespace whose selector's labels are all among the workload's wins; else that namespace's oldest
   * Sidecar without a workloadSelector; else the root namespace's oldest one without. A workloadSelector that is
   * present but has no labels (`{}`, `{labels: {}}`) still counts as a selector, and matches every workload of its
   * namespace (labels.Instance.SubsetOf of an empty selector; istiod validation only warns "will be applied to all
   * services in namespace").
   */
  sidecarFor(namespace: string, labels: Record<string, string>): ConfigEntry | undefined {
    const ordered = this.sidecarsOrdered();
    const hasSelector = (s: ConfigEntry): boolean => s.spec.workloadSelector !== undefined && s.spec.workloadSelector !== null;
    const inNs = ordered.filter((s) => s.namespace === namespace);
    return inNs.find((s) => hasSelector(s) && selectorMatches(s.spec.workloadSelector.labels, labels))
      ?? inNs.find((s) => !hasSelector(s))
      ?? ordered.find((s) => s.namespace === this.data.mesh.rootNamespace && !hasSelector(s));
  }

  private sidecarsByAge: ConfigEntry[] | undefined;
  /** The Sidecars oldest first (creationTimestamp, then namespace/name: byCreation). */
  private sidecarsOrdered(): ConfigEntry[] {
    return (this.sidecarsByAge ??= [...this.data.sidecars].sort(byCreation));
  }

  /** Gateways whose selector matches a router's labels (istiod: any namespace, PILOT_SCOPE_GATEWAY_TO_NAMESPACE off). */
  gatewaysFor(labels: Record<string, string>): ConfigEntry[] {
    return this.data.gateways.filter((g) =>
      Object.entries((g.spec.selector ?? {}) as Record<string, string>).every(([k, v]) => labels[k] === v));
  }

  gateway(namespace: string, name: string): ConfigEntry | undefined {
    return this.data.gateways.find((g) => g.namespace === namespace && g.name === name);
  }

  sidecar(namespace: string, name: string): ConfigEntry | undefined {
    return this.data.sidecars.find((g) => g.namespace === namespace && g.name === name);
  }

  /** Services a Kubernetes selector matches, in a namespace: the proxy's inbound service instances. */
  servicesSelecting(namespace: string, labels: Record<string, string>): Service[] {
    return (this.byNamespace.get(namespace) ?? []).filter((s) =>
      s.selector !== undefined && Object.keys(s.selector).length > 0 &&
      Object.entries(s.selector).every(([k, v]) => labels[k] === v));
  }
}

/**
 * istio labels.Instance.SubsetOf: every label of the selector is on the workload with the same value; an empty (or
 * absent) selector matches every workload.
 */
export function selectorMatches(selector: Record<string, string> | undefined | null, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** Istio host matching: `*.example.com` matches any name ending in `.example.com`, `*` matches everything. */
export function hostMatches(pattern: string, hostname: string): boolean {
  if (pattern === '*' || pattern === hostname) return true;
  if (pattern.startsWith('*')) return hostname.endsWith(pattern.slice(1));
  return false;
}

/** istio host.Name.Matches between two hosts: equal, or one of them a wildcard covering the other (either way round). */
export function hostsOverlap(a: string, b: string): boolean {
  return hostMatches(a, b) || hostMatches(b, a);
}

/** exportTo of a config ("*", ".", namespaces; unset means everywhere) seen from a namespace. */
export function exportedTo(exportTo: readonly string[] | undefined, configNamespace: string, namespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || (e === '.' ? configNamespace === namespace : e === namespace));
}
