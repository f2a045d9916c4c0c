/**
 * SidecarScope: which services (and so clusters, routes, listeners) and VirtualServices a proxy receives, from the
 * Sidecar resource in effect (istio pilot/pkg/model/sidecar.go, unified scoping: no Sidecar, or one without egress
 * listeners, is one catch-all egress listener `*\/*`). Each egress listener imports the services an egress host
 * `NAMESPACE/DNSNAME` matches in their own namespace (`*` and `.` for the namespace, `*` or `*.suffix` for the
 * name, `~` for none), and the VirtualServices one matches in the VirtualService's own namespace
 * (virtual-service-index.ts); the scope adds those VirtualServices' destinations so routes resolve.
 * outboundTrafficPolicy REGISTRY_ONLY makes unknown destinations go to the BlackHoleCluster.
 * Egress listeners with a port build listeners and routes for their own hosts only, with their own VirtualServices
 * (istiod's IstioEgressListenerWrapper); the catch-all one (no port) builds the remaining listeners. Ingress
 * listeners and inboundConnectionPool shape the inbound side (listener-builder.ts, sidecar-ingress.ts).
 */
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import { exportedEverywhere, exportedTo, hostMatches, indexedAlready, indexOf, serviceIndex, type ServiceIndex } from '../../src/model/push-context.js';
import { classifyHosts, importsVirtualService, meshVisible, selectVirtualServices } from './virtual-service-index.js';
import { expandDelegates } from './http-route.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { byCreation, isKubernetesService, type Service } from '../../src/model/service.js';
import { parseProtocol, type Protocol } from '../../src/model/protocol.js';

export type OutboundPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface SidecarScope {
  /**
   * Every service the Sidecar imports (all egress listeners, plus destinations of imported VirtualServices), one
   * per hostname: what clusters and load assignments are built for.
   */
  services: Service[];
  /**
   * For each hostname that is several services (sharedHosts), the one this scope imports (istiod's
   * servicesByHostname): builders look services up through serviceFor, which reads it.
   */
  chosen: Map<string, Service>;
  /**
   * The services the catch-all egress listener (the one without a port) builds listeners and routes for: those its
   * hosts import, not its VirtualServices' destinations (those get clusters only, sidecar.go
   * collectImportedServices adds them to the scope, not to the listener); none when there is no catch-all listener.
   */
  catchAllServices: Service[];
  /** The VirtualServices the catch-all egress listener imports (its routes read only these), in precedence order. */
  catchAllVirtualServices: ConfigEntry[];
  /** Egress listeners with a port, in the Sidecar's order (istiod builds them before the catch-all one). */
  egressListeners: EgressListener[];
  /** Ingress listeners, by port number (first one wins on a duplicate, as istiod's conflict rule). */
  ingress: IngressListener[];
  /** What of the Sidecar shapes listeners and inbound clusters: part of their cache keys. */
  listenersKey: string;
  /** `inboundConnectionPool`: every inbound cluster's connection pool unless its ingress listener has its own. */
  inboundConnectionPool?: any;
  outboundPolicy: OutboundPolicy;
  /** The Sidecar resource's version ('' without one): part of every cache key that depends on the scope. */
  version: string;
  sidecar?: ConfigEntry;
}

export type CaptureMode = 'DEFAULT' | 'IPTABLES' | 'NONE';

export interface SidecarPort { number: number; protocol: Protocol; name: string }

/** A Sidecar `ingress` entry (istio networking/v1 IstioIngressListener). */
export interface IngressListener {
  port: SidecarPort;
  bind?: string;
  captureMode: CaptureMode;
  defaultEndpoint?: string;
  connectionPool?: any;
}

/** A Sidecar `egress` entry with a port: a listener on that port for its own hosts only. */
export interface EgressListener {
  port: SidecarPort;
  bind?: string;
  captureMode: CaptureMode;
  services: Service[];
  /** The VirtualServices this listener imports: its routes and tcp/tls chains read only these. */
  virtualServices: ConfigEntry[];
}

interface EgressHost { namespace: string; host: string }

export function visibleTo(svc: Service, namespace: string): boolean {
  return exportedTo(svc.exportTo, svc.namespace, namespace);
}

/**
 * `NAMESPACE/DNSNAME`, `.` the proxy's namespace; undefined for a host without exactly one `/`, which istiod
 * (convertIstioListenerToWrapper) logs and skips. Its validation rejects such hosts ("host must be of form
 * namespace/dnsName"); ours accepts them, so they are skipped here, with a warning once per host and process.
 */
function parseEgressHost(h: string, sidecarNs: string): EgressHost | undefined {
  const parts = h.split('/');
  if (parts.length !== 2) {
    if (!warnedHosts.has(h)) {
      warnedHosts.add(h);
      process.emitWarning(`Sidecar egress host "${h}" is not of the form namespace/dnsName: ignored`, { code: 'MESHPILOT_SIDECAR_EGRESS_HOST' });
    }
    return undefined;
  }
  const [ns, host] = parts as [string, string];
  return { namespace: ns === '.' ? sidecarNs : ns, host };
}
const warnedHosts = new Set<string>();

function egressAdmits(hosts: readonly EgressHost[], namespace: string, hostname: string): boolean {
  return hosts.some((e) => e.namespace !== '~' && (e.namespace === '*' || e.namespace === namespace) && hostMatches(e.host, hostname));
}

/**
 * Scopes depend only on services, VirtualServices, Sidecars and mesh settings. An endpoint-only push installs a new
 * PushContext that keeps those very arrays, so the memo is keyed on them (not on the context) and survives it.
 * The key is the VirtualService list, which every rebuild replaces: a config-only rebuild keeps the services array,
 * and keying on that would make the old and the new context evict each other while a push compares them.
 */
interface ScopeMemo { services: unknown; sidecars: unknown; mesh: unknown; byKey: Map<string, SidecarScope> }
const memo = new WeakMap<object, ScopeMemo>();

/** The context's computed scopes by namespace|sidecar (a fresh map when the context's inputs are not the memo's). */
function scopesOf(ctx: PushContext): Map<string, SidecarScope> {
  const d = ctx.data;
  let m = memo.get(d.virtualServices);
  if (!m || m.services !== d.services || m.sidecars !== d.sidecars || m.mesh !== d.mesh) {
    memo.set(d.virtualServices, (m = { services: d.services, sidecars: d.sidecars, mesh: d.mesh, byKey: new Map() }));
  }
  return m.byKey;
}

/** Gateways pick among a hostname's services by istiod's DefaultSidecarScopeForGateway rule: a scope of their own. */
const scopeKeyOf = (scope: ProxyScope): string => `${scope.type === 'router' ? 'gw:' : ''}${scope.namespace}|${scope.sidecar ?? ''}`;

export function sidecarScope(ctx: PushContext, scope: ProxyScope): SidecarScope {
  const perCtx = scopesOf(ctx);
  const key = scopeKeyOf(scope);
  let s = perCtx.get(key);
  if (!s) perCtx.set(key, (s = compute(ctx, scope)));
  return s;
}

/** The Sidecar resource in effect for the scope, if any. */
function sidecarOf(ctx: PushContext, scope: ProxyScope): ConfigEntry | undefined {
  if (!scope.sidecar) return undefined;
  const [sns, sname] = scope.sidecar.split('/') as [string, string];
  return ctx.sidecar(sns, sname);
}

/**
 * One egress listener's hosts, parsed. `.` is the proxy's namespace (istiod's configNamespace): the Sidecar's own
 * for a namespace's Sidecar, and the workload's for the root namespace's default Sidecar, so that a mesh-wide
 * `egress: [{hosts: ["./*", "istio-system/*"]}]` isolates every namespace to itself.
 */
function egressHostsOf(listener: any, namespace: string): EgressHost[] {
  return ((listener.hosts ?? []) as string[]).flatMap((h) => parseEgressHost(h, namespace) ?? []);
}

/**
 * The Sidecar's egress listeners, or istiod's default `*\/*` one when it has none: no Sidecar, no `egress`, or
 * `egress: []` (initSidecarScopeInternalIndexes: "If egress not set, setup a default listener").
 */
function egressSpecs(sidecar: ConfigEntry | undefined): any[] {
  const egress = sidecar?.spec.egress as any[] | undefined;
  return egress?.length ? egress : DEFAULT_EGRESS;
}
const DEFAULT_EGRESS = [{ hosts: ['*/*'] }];


/**
 * Where a VirtualService sends traffic: a destination's host (qualified), its port (0 when none is given: every
 * port) and, for an HTTP rule matching on sourceNamespace, the namespaces the rule applies to.
 */
export interface Destination { host: string; port: number; sourceNamespaces?: readonly string[] }

/**
 * The destinations an egress listener that imports a VirtualService adds to the scope (push_context.go
 * virtualServiceDestinations, used by sidecar.go collectImportedServices): HTTP routes, mirror and mirrors (delegates
 * expanded, as istiod merges them into their root first), `tcp` and `tls` routes.
 */
export function virtualServiceDestinations(ctx: PushContext, vs: ConfigEntry): Destination[] {
  const out: Destination[] = [];
  const add = (d: any, sourceNamespaces: string[] | undefined): void => {
    if (!d?.host) return;
    const dest: Destination = { host: ctx.qualify(d.host, vs.namespace), port: d.port?.number ?? 0 };
    if (sourceNamespaces) dest.sourceNamespaces = sourceNamespaces;
    out.push(dest);
  };
  // (Once per VirtualService list, for every VirtualService: plain loops, no delegate expansion without delegates.)
  const rules = ((vs.spec.http ?? []) as any[]).some((h) => h.delegate) ? expandDelegates(ctx, vs) : (vs.spec.http ?? []) as any[];
  for (const http of rules) {
    let only: string[] | undefined;
    for (const m of (http.match ?? []) as any[]) if (m?.sourceNamespace) (only ??= []).push(m.sourceNamespace);
    for (const r of (http.route ?? []) as any[]) add(r.destination, only);
    if (http.mirror) add(http.mirror, only);
    for (const m of (http.mirrors ?? []) as any[]) add(m.destination, only);
  }
  for (const l of [vs.spec.tcp, vs.spec.tls] as Array<any[] | undefined>) for (const t of l ?? []) for (const r of (t.route ?? []) as any[]) add(r.destination, undefined);
  return out;
}

/**
 * Whether a destination applies to a proxy namespace (virtualServiceDestinationsFilteredBySourceNamespace): an
 * HTTP rule with sourceNamespace matches is for those namespaces only.
 */
const appliesTo = (d: Destination, namespace: string): boolean => !d.sourceNamespaces || d.sourceNamespaces.includes(namespace);

/** Each VirtualService's destinations, once per VirtualService list; and by destination host, the VirtualServices. */
interface Destinations {
  of: Map<ConfigEntry, readonly Destination[]>;
  /** By destination host, the VirtualServices (built on first use: scopeIncludes). */
  to?: Map<string, ConfigEntry[]>;
  /** Some destination is for some source namespaces only: a listener's destinations depend on the namespace. */
  filtered: boolean;
  /** Destination hostnames (with ports) by imported VirtualService list, while none is filtered (the `*\/*` list is shared). */
  byList: WeakMap<readonly ConfigEntry[], ReadonlyMap<string, ReadonlySet<number>>>;
}
const destinationsMemo = new WeakMap<object, Destinations>();
function destinations(ctx: PushContext): Destinations {
  let d = destinationsMemo.get(ctx.data.virtualServices);
  if (!d) {
    d = { of: new Map(), filtered: false, byList: new WeakMap() };
    for (const vs of ctx.data.virtualServices) {
      const dests = virtualServiceDestinations(ctx, vs);
      d.of.set(vs, dests);
      if (!d.filtered && dests.some((x) => x.sourceNamespaces)) d.filtered = true;
    }
    destinationsMemo.set(ctx.data.virtualServices, d);
  }
  return d;
}

/** The VirtualServices that route to a host (any namespace, any rule). */
function routingTo(ctx: PushContext, host: string): readonly ConfigEntry[] | undefined {
  const d = destinations(ctx);
  if (!d.to) {
    d.to = new Map();
    for (const [vs, dests] of d.of) {
      for (const x of dests) {
        const l = d.to.get(x.host);
        if (!l) d.to.set(x.host, [vs]); else if (l[l.length - 1] !== vs) l.push(vs);
      }
    }
  }
  return d.to.get(host);
}

/** The egress listeners' hosts of the scope's Sidecar; undefined when everything is imported (`*\/*`). */
function listenerHostsOf(ctx: PushContext, scope: ProxyScope): EgressHost[][] | undefined {
  const sidecar = sidecarOf(ctx, scope);
  const specs = egressSpecs(sidecar);
  return specs === DEFAULT_EGRESS ? undefined : specs.map((l) => egressHostsOf(l, scope.namespace));
}

/**
 * Whether a scope imports a service (some of its ports, maybe: holds), without computing the scope when the answer is plain: a
 * service the namespace cannot see (and not of its own namespace, which a VirtualService destination may import
 * unseen) is out; one an egress host imports is in; one no VirtualService the namespace sees routes to is out. Only
 * the rest, and hostnames that are several services, compute the scope. A VirtualService change replaces the list
 * the scope memo hangs on, and the push decision asks this of every namespace's scope.
 */
export function scopeIncludes(ctx: PushContext, scope: ProxyScope, svc: Service): boolean {
  const done = scopesOf(ctx).get(scopeKeyOf(scope));
  if (done) return holds(done, svc);
  const ns = scope.namespace;
  const visible = visibleTo(svc, ns);
  if (!visible && svc.namespace !== ns) return false;
  if (ctx.isShared(svc.hostname)) return holds(sidecarScope(ctx, scope), svc);
  // Imported by an egress listener's own hosts (one with a port: only a service with that port).
  const specs = egressSpecs(sidecarOf(ctx, scope));
  if (visible && (specs === DEFAULT_EGRESS || specs.some((l) => {
    const port = matchPort(l);
    return (port === undefined || svc.ports.some((p) => p.port === port)) && egressAdmits(egressHostsOf(l, ns), svc.namespace, svc.hostname);
  }))) return true;
  const routes = routingTo(ctx, svc.hostname);
  if (!routes?.some((vs) => meshVisible(ctx, ns, vs))) return false;
  return holds(sidecarScope(ctx, scope), svc);
}

/** A scope's services hold a service: itself, or a copy with some of its ports. */
function holds(sc: SidecarScope, svc: Service): boolean {
  return sc.services.some((s) => s === svc || (s.hostname === svc.hostname && s.namespace === svc.namespace));
}

/**
 * Whether some egress listener of the scope imports a VirtualService (SelectVirtualServices), without computing
 * the scope: what a VirtualService change can reach of a sidecar (its routes, and the services it brings in).
 */
export function selectsVirtualService(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry): boolean {
  const listeners = listenerHostsOf(ctx, scope) ?? [EVERYTHING];
  return listeners.some((hosts) => importsVirtualService(ctx, scope.namespace, classifyHosts(hosts), vs));
}

/** The egress hosts of istiod's default listener (no Sidecar, or a Sidecar without egress). */
const EVERYTHING: EgressHost[] = [{ namespace: '*', host: '*' }];
const importsEverything = (hosts: readonly EgressHost[]): boolean => hosts.some((e) => e.namespace === '*' && e.host === '*');


function sidecarPort(p: any): SidecarPort {
  return { number: p.number as number, protocol: parseProtocol(String(p.protocol ?? '')), name: String(p.name ?? '') };
}

function ingressListeners(spec: any): IngressListener[] {
  const byPort = new Map<number, IngressListener>();
  for (const l of (spec.ingress ?? []) as any[]) {
    if (byPort.has(l.port.number)) continue;
    byPort.set(l.port.number, {
      port: sidecarPort(l.port), bind: l.bind || undefined, captureMode: l.captureMode ?? 'DEFAULT', defaultEndpoint: l.defaultEndpoint || undefined,
      connectionPool: l.connectionPool,
    });
  }
  return [...byPort.values()].sort((a, b) => a.port.number - b.port.number);
}

/**
 * A visible list's services by namespace and hostname, with positions: an egress host looks only where it can match.
 * When every service is exported everywhere the list is the context's services array, which the PushContext has
 * indexed already (and derives from the previous index after a Service change): that index is used, so a Service
 * change on a 10,000-service mesh does not re-index them here (~10 ms) nor rebuild a position map (~5 ms).
 */
const visibleIndexes = new WeakMap<readonly Service[], ServiceIndex>();
function indexOfVisible(visible: readonly Service[]): ServiceIndex {
  let idx = visibleIndexes.get(visible) ?? indexedAlready(visible);
  if (!idx) visibleIndexes.set(visible, (idx = indexOf(visible)));
  return idx;
}

/**
 * The visible services an egress host list admits by itself (the hostnames of every visible service some egress
 * host matches). It depends on neither VirtualServices nor endpoints, and `visible` survives rebuilds that leave
 * services alone (visibleIn): a VirtualService change re-runs only the VirtualService part of a scope. Each host
 * looks only where it can match: `ns/…` at that namespace's services, `*\/name` up one hostname; only `*\/*` and
 * `*\/*.suffix` read every visible service. At 10,000 services in 100 namespaces, matching every host against
 * every service cost ~4 ms per namespace (a storm with no warm-up computes all 100).
 */
const egressMemo = new WeakMap<readonly Service[], Map<string, ReadonlySet<string>>>();
function egressAdmitted(visible: readonly Service[], egress: readonly EgressHost[]): ReadonlySet<string> {
  let byHosts = egressMemo.get(visible);
  if (!byHosts) egressMemo.set(visible, (byHosts = new Map()));
  const key = egress.map((e) => `${e.namespace}/${e.host}`).join(',');
  let set = byHosts.get(key);
  if (!set) {
    const s = new Set<string>();
    const idx = indexOfVisible(visible);
    const matching = (svcs: readonly Service[], host: string): void => {
      if (host === '*') for (const svc of svcs) s.add(svc.hostname);
      else for (const svc of svcs) if (hostMatches(host, svc.hostname)) s.add(svc.hostname);
    };
    for (const e of egress) {
      if (e.namespace === '~') continue;
      if (e.namespace !== '*') matching(idx.byNamespace.get(e.namespace) ?? [], e.host);
      else if (e.host.startsWith('*')) matching(visible, e.host);
      else if (idx.byHost.has(e.host)) s.add(e.host);
    }
    byHosts.set(key, (set = s));
  }
  return set;
}

/**
 * Services visible from a namespace. A rebuild after a change that left every Service alone yields the very same
 * Service objects (they are memoised on the stored objects), so the lists survive it: checked by identity.
 */
let lastServices: readonly Service[] | undefined;
let lastDomain = '';
let visibleByNs = new Map<string, Service[]>();
/** Whether every service of `lastServices` is exported to every namespace (undefined: not yet known). */
let everywhere: boolean | undefined;
function visibleIn(ctx: PushContext, namespace: string): Service[] {
  const svcs = ctx.services;
  if (svcs !== lastServices) {
    const prev = lastServices;
    const same = prev !== undefined && prev.length === svcs.length && lastDomain === ctx.data.mesh.domainSuffix && svcs.every((s, i) => s === prev[i]);
    if (!same) { visibleByNs = new Map(); everywhere = undefined; }
    lastServices = svcs;
    lastDomain = ctx.data.mesh.domainSuffix;
  }
  let v = visibleByNs.get(namespace);
  if (!v) {
    // Services exported everywhere (no exportTo, or `*`: most of a mesh) are visible from every namespace: when all
    // are, every namespace shares the array itself, and with it the memos hung on it (egress matches, positions).
    if (everywhere === undefined) everywhere = indexOfVisible(svcs).restricted === 0;
    v = everywhere ? svcs as Service[] : svcs.filter((svc) => visibleTo(svc, namespace));
    visibleByNs.set(namespace, v);
  }
  return v;
}

/**
 * `visible.filter((s) => admitted.has(s.hostname))`, without a lookup per visible service when few are admitted
 * (an isolated namespace admits a few dozen of thousands).
 */
function inVisibleOrder(visible: Service[], admitted: ReadonlySet<string>): Service[] {
  if (admitted.size * 8 >= visible.length) return visible.filter((s) => admitted.has(s.hostname));
  const pos = indexOfVisible(visible).position;
  if (pos.size !== visible.length) return visible.filter((s) => admitted.has(s.hostname)); // a hostname twice (ServiceEntries)
  const idx: number[] = [];
  for (const h of admitted) { const i = pos.get(h); if (i !== undefined) idx.push(i); }
  return idx.sort((a, b) => a - b).map((i) => visible[i]!);
}


/**
 * What one egress listener imports: the services its hosts match (`admitted`, by hostname; every visible one for
 * `*\/*`) and the VirtualServices (selectVirtualServices) with the hostnames they route to, each with the ports
 * routed to (0: a destination without a port, every port). A listener with a port (not HTTP_PROXY) imports only
 * services with that port, and only that port of them (`port`; sidecar.go needsPortMatch).
 */
interface ListenerImports {
  hosts: EgressHost[];
  everything: boolean;
  port?: number;
  admitted: ReadonlySet<string>;
  virtualServices: ConfigEntry[];
  destinations: ReadonlyMap<string, ReadonlySet<number>>;
}

function listenerImports(ctx: PushContext, namespace: string, visible: Service[], spec: any): ListenerImports {
  const hosts = egressHostsOf(spec, namespace);
  const everything = importsEverything(hosts);
  const port = matchPort(spec);
  const virtualServices = selectVirtualServices(ctx, namespace, classifyHosts(hosts));
  const all = destinations(ctx);
  let dests = all.filtered ? undefined : all.byList.get(virtualServices);
  if (!dests) {
    const m = new Map<string, Set<number>>();
    for (const vs of virtualServices) {
      for (const d of all.of.get(vs) ?? []) {
        if (!appliesTo(d, namespace)) continue;
        const ports = m.get(d.host);
        if (ports) ports.add(d.port); else m.set(d.host, new Set([d.port]));
      }
    }
    if (!all.filtered) all.byList.set(virtualServices, m);
    dests = m;
  }
  return { hosts, everything, port, admitted: everything ? EMPTY : egressAdmitted(visible, hosts), virtualServices, destinations: dests };
}

/** The port an egress listener imports services on (sidecar.go needsPortMatch): its port, unless HTTP_PROXY. */
function matchPort(spec: any): number | undefined {
  return spec.port?.number && parseProtocol(String(spec.port.protocol ?? '')) !== 'HTTP_PROXY' ? spec.port.number as number : undefined;
}

/**
 * Of a listener's destinations, the hostnames a namespace might import without seeing them (destinationChoice
 * takes the proxy namespace's service whatever its exportTo): services not exported everywhere. Usually none;
 * once per destination map and services array.
 */
const restrictedMemo = new WeakMap<object, { services: readonly Service[]; hosts: string[] }>();
function restrictedDestinations(ctx: PushContext, dests: ReadonlyMap<string, unknown>): string[] {
  let m = restrictedMemo.get(dests);
  if (!m || m.services !== ctx.services) {
    const hosts = [...dests.keys()].filter((h) => ctx.servicesFor(h).some((s) => !exportedEverywhere(s.exportTo)));
    restrictedMemo.set(dests, (m = { services: ctx.services, hosts }));
  }
  return m.hosts;
}
const EMPTY: ReadonlySet<string> = new Set();

/** The ports of a service a scope imports: all of them, or some (by number). */
type Ports = 'all' | ReadonlySet<number>;

/** What a listener's own hosts import of a service (serviceMatchingListenerPort): undefined, nothing. */
function ownPorts(l: ListenerImports, svc: Service): Ports | undefined {
  if (l.port === undefined) return 'all';
  return svc.ports.some((p) => p.port === l.port) ? new Set([l.port]) : undefined;
}

/** What a destination imports of a service: the listener's port, else the ports routed to (serviceMatchingVirtualServicePorts). */
function destinationPorts(l: ListenerImports, svc: Service, routed: ReadonlySet<number>): Ports | undefined {
  if (l.port !== undefined) return ownPorts(l, svc);
  if (routed.has(0)) return 'all';
  const found = svc.ports.filter((p) => routed.has(p.port));
  return found.length === 0 ? undefined : found.length === svc.ports.length ? 'all' : new Set(found.map((p) => p.port));
}

/**
 * A service with only some of its ports (istiod's trimmed DeepCopy), one object per service and port set; its
 * version says which ports, so that cache keys and scope comparisons move with them.
 */
const trimmedMemo = new WeakMap<Service, Map<string, Service>>();
function withPorts(svc: Service, ports: Ports): Service {
  if (ports === 'all' || ports.size === svc.ports.length) return svc;
  const key = svc.ports.filter((p) => ports.has(p.port)).map((p) => p.port).join(',');
  let byKey = trimmedMemo.get(svc);
  if (!byKey) trimmedMemo.set(svc, (byKey = new Map()));
  let t = byKey.get(key);
  if (!t) byKey.set(key, (t = { ...svc, ports: svc.ports.filter((p) => ports.has(p.port)), version: `${svc.version}|ports:${key}` }));
  return t;
}

/**
 * The services some egress listeners import together, one per hostname (sidecar.go collectImportedServices,
 * appendSidecarServices), in the registry's order: each listener's own services and then its VirtualServices'
 * destinations, with their ports (ownPorts, destinationPorts). For a hostname, the first service added stands,
 * with the ports of every later addition of the same service merged in; a Kubernetes Service replaces another
 * one. Where a hostname is several services, each listener picks one (egressChoice; destinationChoice for
 * destinations). A destination is imported even unseen when it is of the proxy's namespace
 * (HostnameAndNamespace[host][configNamespace] is not checked for visibility): such services come last.
 * Only hostnames that need it go through that fold: those several services, and those no listener without a port
 * imports whole (destinations, port-specific listeners' hosts).
 */
function importedTogether(ctx: PushContext, namespace: string, visible: Service[], ls: readonly ListenerImports[], chosen?: Map<string, Service>): Service[] {
  const whole = ls.filter((l) => l.port === undefined);
  const wholeEverything = whole.some((l) => l.everything);
  let list: Service[];
  if (ls.some((l) => l.everything)) list = visible;
  else {
    const hostnames = new Set<string>();
    for (const l of ls) { for (const h of l.admitted) hostnames.add(h); for (const h of l.destinations.keys()) hostnames.add(h); }
    list = inVisibleOrder(visible, hostnames);
  }
  // The fold for one hostname: the service it ends with and its ports, or undefined when nothing is imported.
  const fold = (h: string): { svc: Service; ports: Ports } | undefined => {
    let c: { svc: Service; ports: Ports } | undefined;
    const take = (x: Service | undefined, ports: Ports | undefined): void => {
      if (!x || !ports) return;
      if (!c || (!isKubernetesService(c.svc) && isKubernetesService(x) && c.svc !== x)) c = { svc: x, ports };
      else if (c.svc === x && c.ports !== 'all') c = { svc: x, ports: ports === 'all' ? 'all' : new Set([...c.ports, ...ports]) };
    };
    const shared = ctx.isShared(h);
    for (const l of ls) {
      let own: Service | undefined;
      if (l.everything || l.admitted.has(h)) {
        own = shared ? egressChoice(ctx, h, namespace, l.everything ? EVERYTHING : l.hosts, l.port) : ctx.service(h);
        if (own && !visibleTo(own, namespace)) own = undefined;
      }
      if (own) take(own, ownPorts(l, own));
      const routed = l.destinations.get(h);
      if (routed) {
        const d = shared ? destinationChoice(ctx, h, namespace) : ctx.service(h);
        if (d && (d.namespace === namespace || visibleTo(d, namespace))) take(d, destinationPorts(l, d, routed));
      }
    }
    return c;
  };
  // Hostnames that need the fold: several services; destinations or port-listener hosts not imported whole.
  const special = new Set<string>();
  const shared = serviceIndex(ctx.services).shared;
  for (const h of shared.keys()) special.add(h);
  const importedWhole = (h: string): boolean => wholeEverything || whole.some((l) => l.admitted.has(h));
  for (const l of ls) {
    if (wholeEverything) { for (const h of restrictedDestinations(ctx, l.destinations)) special.add(h); continue; }
    for (const h of l.destinations.keys()) if (!importedWhole(h)) special.add(h);
    if (l.port !== undefined) {
      if (l.everything) { for (const s of visible) if (!importedWhole(s.hostname)) special.add(s.hostname); } else for (const h of l.admitted) if (!importedWhole(h)) special.add(h);
    }
  }
  if (special.size === 0) return list;
  const replace = new Map<string, Service | null>();
  let unseen: Service[] | undefined;
  for (const h of special) {
    const r = fold(h);
    if (!r) { replace.set(h, null); continue; }
    const svc = withPorts(r.svc, r.ports);
    if (ctx.isShared(h) && chosen) chosen.set(h, svc);
    replace.set(h, svc);
    if (!visibleTo(r.svc, namespace)) (unseen ??= []).push(svc);
  }
  const out: Service[] = [];
  for (const s of list) {
    const r = replace.get(s.hostname);
    if (r === undefined) out.push(s);
    else if (r !== null && (r === s || (r.namespace === s.namespace && r.hostname === s.hostname))) out.push(r);
  }
  return unseen ? [...out, ...unseen] : out;
}

/**
 * The services an egress listener's hosts import (selectServices), one per hostname; not its destinations. A
 * listener with a port imports only services with that port, trimmed to it.
 */
function ownServices(ctx: PushContext, namespace: string, visible: Service[], li: ListenerImports): Service[] {
  const list = oneOfEach(ctx, li.everything ? visible : inVisibleOrder(visible, li.admitted), namespace, undefined,
    (h) => egressChoice(ctx, h, namespace, li.everything ? EVERYTHING : li.hosts, li.port));
  if (li.port === undefined) return list;
  const out: Service[] = [];
  for (const s of list) { const ports = ownPorts(li, s); if (ports) out.push(withPorts(s, ports)); }
  return out;
}

function compute(ctx: PushContext, scope: ProxyScope): SidecarScope {
  const ns = scope.namespace;
  const visible = visibleIn(ctx, ns);
  const sidecar = sidecarOf(ctx, scope);
  // The mesh config's outboundTrafficPolicy is the default for proxies whose Sidecar (if any) leaves it unset.
  const meshPolicy: OutboundPolicy = ctx.data.mesh.outboundTrafficPolicy ?? 'ALLOW_ANY';
  if (scope.type === 'router') {
    // Gateways (DefaultSidecarScopeForGateway): every visible service, no VirtualServices of the mesh.
    const chosen = new Map<string, Service>();
    const services = oneOfEach(ctx, visible, ns, chosen, (h) => pickForGateway(visibleCandidates(ctx, h, ns)));
    return { services, chosen, catchAllServices: services, catchAllVirtualServices: [], egressListeners: [], ingress: [], listenersKey: '', outboundPolicy: meshPolicy, version: '' };
  }
  const outboundPolicy: OutboundPolicy = (sidecar?.spec.outboundTrafficPolicy?.mode as OutboundPolicy | undefined) ?? meshPolicy;
  const ingress = sidecar ? ingressListeners(sidecar.spec) : [];
  const listenersKey = sidecar ? JSON.stringify([sidecar.spec.ingress ?? null, (sidecar.spec.egress ?? []).map((l: any) => [l.port ?? null, l.bind ?? '', l.captureMode ?? '']), sidecar.spec.inboundConnectionPool ?? null]) : '';
  const inboundConnectionPool = sidecar?.spec.inboundConnectionPool;
  // Without a Sidecar, or with one without egress listeners, one catch-all listener `*\/*` (unified scoping: the same
  // rules as a Sidecar saying so).
  const specs = egressSpecs(sidecar);
  const imports = specs.map((l) => listenerImports(ctx, ns, visible, l));
  const chosen = new Map<string, Service>();
  const services = importedTogether(ctx, ns, visible, imports, chosen);
  const catchAllAt = specs.findIndex((l) => !l.port);
  const catchAll = catchAllAt >= 0 ? imports[catchAllAt]! : undefined;
  // Each listener builds listeners and routes for its own hosts' services only (istiod's
  // IstioEgressListenerWrapper.services), with its own VirtualServices.
  const egressListeners: EgressListener[] = [];
  specs.forEach((l, i) => {
    if (!l.port) return;
    egressListeners.push({
      port: sidecarPort(l.port), bind: l.bind || undefined, captureMode: l.captureMode ?? 'DEFAULT',
      services: ownServices(ctx, ns, visible, imports[i]!), virtualServices: imports[i]!.virtualServices,
    });
  });
  const catchAllServices = catchAll ? ownServices(ctx, ns, visible, catchAll) : [];
  return {
    services, chosen, catchAllServices, catchAllVirtualServices: catchAll?.virtualServices ?? [], egressListeners, ingress, listenersKey,
    inboundConnectionPool, outboundPolicy, version: sidecar?.version ?? '', sidecar,
  };
}


/**
 * Where a hostname is several services (one per namespace: ServiceEntries may name any host), the order istiod
 * meets them in for a proxy namespace (servicesExportedToNamespace): those private to it (its own, exported to `.`
 * or to itself only), then those exported to it by name, then public ones; each oldest first.
 */
function candidateOrder(svcs: readonly Service[], namespace: string): Service[] {
  const rank = (s: Service): number => {
    if (exportedEverywhere(s.exportTo)) return 2;
    return s.namespace === namespace && s.exportTo.some((e) => e === '.' || e === namespace) ? 0 : 1;
  };
  return [...svcs].sort((a, b) => rank(a) - rank(b) || byCreation(a, b));
}

/** A hostname's services visible from a namespace, in candidateOrder. */
function visibleCandidates(ctx: PushContext, host: string, namespace: string): Service[] {
  return candidateOrder(ctx.servicesFor(host).filter((s) => visibleTo(s, namespace)), namespace);
}

/**
 * One of a hostname's imported services for a sidecar (sidecar.go selectServices, unified scoping): the one in the
 * proxy's namespace, else the first Kubernetes Service, else the first one (candidateOrder).
 */
function pickForSidecar(candidates: readonly Service[], namespace: string): Service | undefined {
  return candidates.find((s) => s.namespace === namespace) ?? candidates.find(isKubernetesService) ?? candidates[0];
}

/**
 * A gateway's (DefaultSidecarScopeForGateway, appendSidecarServices): the first Kubernetes Service, else the
 * first one, whatever the gateway's namespace.
 */
function pickForGateway(candidates: readonly Service[]): Service | undefined {
  return candidates.find(isKubernetesService) ?? candidates[0];
}

/**
 * The service an egress listener's hosts import for a hostname that is several services, if any: of those its
 * hosts match (and that have the listener's port, for a listener with one), pickForSidecar's.
 */
function egressChoice(ctx: PushContext, host: string, namespace: string, hosts: readonly EgressHost[], port?: number): Service | undefined {
  return pickForSidecar(visibleCandidates(ctx, host, namespace).filter((s) =>
    egressAdmits(hosts, s.namespace, host) && (port === undefined || s.ports.some((p) => p.port === port))), namespace);
}

/**
 * The service a VirtualService destination imports for a hostname that is several services (sidecar.go
 * collectImportedServices): the one in the proxy's namespace, else the one of the alphabetically first namespace
 * that exports it there (pickFirstVisibleNamespace).
 */
function destinationChoice(ctx: PushContext, host: string, namespace: string): Service | undefined {
  const all = ctx.servicesFor(host);
  return all.find((s) => s.namespace === namespace)
    ?? all.filter((s) => visibleTo(s, namespace)).sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0))[0];
}

/**
 * `list` with one service per hostname: for each hostname that is several services (few; the check goes over
 * those, not the list), the one `choose` picks; the others are dropped. Choices are recorded in `chosen`.
 */
function oneOfEach(ctx: PushContext, list: Service[], namespace: string, chosen: Map<string, Service> | undefined, choose: (host: string) => Service | undefined): Service[] {
  const shared = serviceIndex(ctx.services).shared;
  if (shared.size === 0) return list;
  let drop: Set<Service> | undefined;
  for (const [host, svcs] of shared) {
    if (!svcs.some((s) => s.namespace === namespace || visibleTo(s, namespace))) continue;
    const pick = choose(host);
    if (pick && chosen) chosen.set(host, pick);
    for (const s of svcs) if (s !== pick) (drop ??= new Set()).add(s);
  }
  return drop ? list.filter((s) => !drop!.has(s)) : list;
}

/**
 * The service a proxy means by a hostname: where the hostname is several services, the one its scope imported
 * (istiod's PushContext.ServiceForHostname, from the SidecarScope), else — a host it did not import — the one a
 * VirtualService destination would import. Builders use this, not ctx.service, for anything per proxy.
 */
export function serviceFor(ctx: PushContext, scope: ProxyScope, host: string): Service | undefined {
  if (!ctx.isShared(host)) return ctx.service(host);
  return sidecarScope(ctx, scope).chosen.get(host) ?? destinationChoice(ctx, host, scope.namespace);
}

/**
 * The DestinationRule a proxy applies to a host: the rules of its namespace, its service's namespace, the root's;
 * of its namespace's rules with a workloadSelector, one that selects its labels (scope.drLabels).
 */
export function scopedDestinationRule(ctx: PushContext, scope: ProxyScope, host: string): ConfigEntry | undefined {
  return ctx.destinationRuleFor(host, scope.namespace, ctx.isShared(host) ? serviceFor(ctx, scope, host)?.namespace : undefined, scope.drLabels);
}

/** The connection pool of an inbound port (istio SidecarScope.InboundConnectionPoolForPort): the ingress listener's, else the Sidecar's. */
export function inboundConnectionPoolForPort(sc: SidecarScope, port: number): any {
  return sc.ingress.find((l) => l.port.number === port)?.connectionPool ?? sc.inboundConnectionPool;
}

/** The port-specific egress listener for a port, if the Sidecar has one (istiod GetEgressListenerForRDS). */
export function egressListenerFor(sc: SidecarScope, port: number): EgressListener | undefined {
  return sc.egressListeners.find((l) => l.port.number === port);
}
