/**
 * SidecarScope: which services (and so clusters, routes, listeners) a proxy receives, from the Sidecar resource in
 * effect (istio pilot/pkg/model/sidecar.go). Without a Sidecar every exported service is visible. With one, a service
 * is admitted when an egress host `NAMESPACE/DNSNAME` matches it (`*` and `.` for the namespace, `*` or `*.suffix`
 * for the name, `~` for none), plus the destinations of admitted VirtualServices (istiod adds those so routes
 * resolve). outboundTrafficPolicy REGISTRY_ONLY makes unknown destinations go to the BlackHoleCluster.
 * Egress listeners with a port import only their own hosts (istiod's IstioEgressListenerWrapper); the catch-all one
 * (no port) builds the remaining listeners. Ingress listeners and inboundConnectionPool shape the inbound side
 * (listener-builder.ts, sidecar-ingress.ts).
 */
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import { exportedTo, hostMatches, indexedAlready, indexOf, type ServiceIndex } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { byCreation, isKubernetesService, type Service } from '../../src/model/service.js';
import { parseProtocol, type Protocol } from '../../src/model/protocol.js';

export type OutboundPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface SidecarScope {
  /**
   * Every service the Sidecar imports (all egress listeners, plus destinations of admitted VirtualServices), one
   * per hostname.
   */
  services: Service[];
  /**
   * For each hostname that is several services (sharedHosts), the one this scope imports (istiod's
   * servicesByHostname): builders look services up through serviceFor, which reads it.
   */
  chosen: Map<string, Service>;
  /**
   * The services the catch-all egress listener (the one without a port) builds listeners and routes for: all of
   * `services` when no egress listener has a port, none when there is no catch-all listener.
   */
  catchAllServices: Service[];
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
}

interface EgressHost { namespace: string; host: string }

export function visibleTo(svc: Service, namespace: string): boolean {
  return exportedTo(svc.exportTo, svc.namespace, namespace);
}

function parseEgressHost(h: string, sidecarNs: string): EgressHost {
  const i = h.indexOf('/');
  const ns = i < 0 ? '*' : h.slice(0, i);
  return { namespace: ns === '.' ? sidecarNs : ns, host: i < 0 ? h : h.slice(i + 1) };
}

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
  return ((listener.hosts ?? []) as string[]).map((h) => parseEgressHost(h, namespace));
}

/**
 * For each hostname, the VirtualServices that route (or mirror) to it, and whether the VirtualService's only host
 * is that same hostname: once per VirtualService list.
 */
interface DestinationOf { vs: ConfigEntry; selfOnly: boolean }
const destinationsMemo = new WeakMap<object, Map<string, DestinationOf[]>>();
function vsDestinations(ctx: PushContext): Map<string, DestinationOf[]> {
  let d = destinationsMemo.get(ctx.data.virtualServices);
  if (!d) {
    d = new Map();
    for (const q of qualifiedVirtualServices(ctx)) {
      for (const dest of new Set(q.destinations)) {
        let l = d.get(dest);
        if (!l) d.set(dest, (l = []));
        l.push({ vs: q.vs, selfOnly: q.hosts.length === 1 && q.hosts[0] === dest });
      }
    }
    destinationsMemo.set(ctx.data.virtualServices, d);
  }
  return d;
}

/**
 * Whether `admit` can add `svc` through a VirtualService destination for this namespace: some VirtualService
 * exported here routes to it, other than one whose only host is the service itself in the service's own namespace
 * (that one is admitted only when the service already is: its host is checked against the egress hosts with the
 * same namespace the service was).
 */
function admittableByRoute(ctx: PushContext, namespace: string, svc: Service): boolean {
  const routes = vsDestinations(ctx).get(svc.hostname);
  return routes !== undefined && routes.some((r) => !(r.selfOnly && r.vs.namespace === svc.namespace) &&
    exportedTo(r.vs.spec.exportTo, r.vs.namespace, namespace));
}

/**
 * `sidecarScope(ctx, scope).services.includes(svc)`, without computing the scope when the answer is plain: a
 * service the namespace cannot see is out; one an egress host admits is in; one that no VirtualService could have
 * added (admittableByRoute) is out. Only the rest computes the scope. A VirtualService change replaces
 * the list the scope memo hangs on, and the push decision asked this of all 50 namespaces' scopes; each one
 * computed cost a pass over every VirtualService.
 */
export function scopeIncludes(ctx: PushContext, scope: ProxyScope, svc: Service): boolean {
  const done = scopesOf(ctx).get(scopeKeyOf(scope));
  if (done) return done.services.includes(svc);
  if (!visibleTo(svc, scope.namespace)) return false; // the scope's services are among the visible ones
  // One of a hostname's services: which one the scope took is the scope's choice.
  if (ctx.isShared(svc.hostname)) return sidecarScope(ctx, scope).services.includes(svc);
  const sidecar = sidecarOf(ctx, scope);
  if (!sidecar || !sidecar.spec.egress) return true; // everything visible is imported
  const all = (sidecar.spec.egress as any[]).flatMap((l) => egressHostsOf(l, scope.namespace));
  if (egressAdmits(all, svc.namespace, svc.hostname)) return true;
  if (!admittableByRoute(ctx, scope.namespace, svc)) return false;
  return sidecarScope(ctx, scope).services.includes(svc);
}

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
 * Hostnames admitted by some egress hosts: matching services, plus the destinations of VirtualServices whose hosts
 * are admitted (istiod adds those so routes resolve).
 */
function admit(ctx: PushContext, scope: ProxyScope, visible: Service[], egress: readonly EgressHost[]): Set<string> {
  const admitted = new Set(egressAdmitted(visible, egress));
  // An egress host can admit a VirtualService only from a namespace it names (or from any, with `*`): the other
  // VirtualServices are checked against what is admitted so far alone (100 namespaces × 1,000 VirtualServices).
  const anyNs = egress.some((e) => e.namespace === '*');
  const egressNs = new Set(egress.map((e) => e.namespace));
  const seen = (h: string): boolean => (h.includes('*') ? [...admitted].some((a) => hostMatches(h, a)) : admitted.has(h));
  for (const { vs, hosts, destinations } of qualifiedVirtualServices(ctx)) {
    if (!exportedTo(vs.spec.exportTo, vs.namespace, scope.namespace)) continue;
    const byEgress = anyNs || egressNs.has(vs.namespace);
    if (!hosts.some((h) => (byEgress && egressAdmits(egress, vs.namespace, h)) || seen(h))) continue;
    for (const d of destinations) admitted.add(d);
  }
  return admitted;
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
 * services alone (visibleIn): a VirtualService change re-runs only the VirtualService part of `admit`. Each host
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

/** Each VirtualService's qualified hosts and HTTP destinations, once per VirtualService list (not per namespace). */
interface QualifiedVs { vs: ConfigEntry; hosts: string[]; destinations: string[] }
const qualifiedMemo = new WeakMap<object, QualifiedVs[]>();
function qualifiedVirtualServices(ctx: PushContext): QualifiedVs[] {
  let q = qualifiedMemo.get(ctx.data.virtualServices);
  if (!q) {
    q = ctx.data.virtualServices.map((vs) => ({ vs, hosts: ((vs.spec.hosts ?? []) as string[]).map((h) => ctx.qualify(h, vs.namespace)), destinations: routeDestinations(ctx, vs) }));
    qualifiedMemo.set(ctx.data.virtualServices, q);
  }
  return q;
}

/**
 * The hosts a VirtualService's HTTP routes and mirrors send to, qualified: what `admit` adds to a Sidecar scope that
 * admits the VirtualService (so a scope holding none of them cannot have admitted it).
 */
export function routeDestinations(ctx: PushContext, vs: ConfigEntry): string[] {
  const destinations: string[] = [];
  for (const http of (vs.spec.http ?? []) as any[]) {
    for (const d of [...(http.route ?? []), ...(http.mirror ? [{ destination: http.mirror }] : []), ...(http.mirrors ?? [])] as any[]) {
      if (d?.destination?.host) destinations.push(ctx.qualify(d.destination.host, vs.namespace));
    }
  }
  return destinations;
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

function compute(ctx: PushContext, scope: ProxyScope): SidecarScope {
  const visible = visibleIn(ctx, scope.namespace);
  const sidecar = sidecarOf(ctx, scope);
  const ns = scope.namespace;
  const pick = scope.type === 'router' ? pickForGateway : pickForSidecar;
  // Without egress hosts (no Sidecar, or one without egress) every visible service is imported (`*/*`).
  const everything = (): { services: Service[]; chosen: Map<string, Service> } => {
    const chosen = new Map<string, Service>();
    const services = oneOfEach(ctx, visible, ns, chosen, (h) => pick(visibleCandidates(ctx, h, ns), ns));
    return { services, chosen };
  };
  const open = { catchAllServices: [] as Service[], egressListeners: [], ingress: [], listenersKey: '' };
  // The mesh config's outboundTrafficPolicy is the default for proxies whose Sidecar (if any) leaves it unset.
  const meshPolicy: OutboundPolicy = ctx.data.mesh.outboundTrafficPolicy ?? 'ALLOW_ANY';
  if (!sidecar) { const e = everything(); return { ...open, ...e, catchAllServices: e.services, outboundPolicy: meshPolicy, version: '' }; }
  const outboundPolicy: OutboundPolicy = (sidecar.spec.outboundTrafficPolicy?.mode as OutboundPolicy | undefined) ?? meshPolicy;
  const ingress = ingressListeners(sidecar.spec);
  const listenersKey = JSON.stringify([sidecar.spec.ingress ?? null, (sidecar.spec.egress ?? []).map((l: any) => [l.port ?? null, l.bind ?? '', l.captureMode ?? '']), sidecar.spec.inboundConnectionPool ?? null]);
  const inboundConnectionPool = sidecar.spec.inboundConnectionPool;
  // A Sidecar without egress listeners imports everything visible (istiod's default egress listener `*/*`).
  if (!sidecar.spec.egress) {
    const e = everything();
    return { ...open, ...e, catchAllServices: e.services, ingress, listenersKey, inboundConnectionPool, outboundPolicy, version: sidecar.version, sidecar };
  }
  const hostsOf = (l: any): EgressHost[] => egressHostsOf(l, scope.namespace);
  // Where a hostname is several services, each listener imports one of them (egressChoice); the scope keeps the
  // first listener's (in the Sidecar's order), unless a later one is the Kubernetes Service (sidecar.go
  // appendSidecarServices). One imported only as a VirtualService destination is destinationChoice's.
  const listeners = (sidecar.spec.egress as any[]).map(hostsOf);
  const chosen = new Map<string, Service>();
  const union = (h: string): Service | undefined => {
    let c: Service | undefined;
    for (const hosts of listeners) {
      const l = egressChoice(ctx, h, ns, hosts);
      if (l && (!c || (!isKubernetesService(c) && isKubernetesService(l)))) c = l;
    }
    return c ?? destinationChoice(ctx, h, ns);
  };
  const all = listeners.flat();
  const admitted = admit(ctx, scope, visible, all);
  const services = oneOfEach(ctx, inVisibleOrder(visible, admitted), ns, chosen, union);
  const withPort = (sidecar.spec.egress as any[]).filter((l) => l.port);
  if (withPort.length === 0) return { services, chosen, catchAllServices: services, egressListeners: [], ingress, listenersKey, inboundConnectionPool, outboundPolicy, version: sidecar.version, sidecar };
  // A port-specific listener imports only its own hosts (istiod's IstioEgressListenerWrapper.services); the
  // catch-all one, if any, its own hosts and their VirtualServices' destinations.
  const egressListeners: EgressListener[] = withPort.map((l) => {
    const hosts = hostsOf(l);
    return {
      port: sidecarPort(l.port), bind: l.bind || undefined, captureMode: l.captureMode ?? 'DEFAULT',
      services: oneOfEach(ctx, visible.filter((s) => egressAdmits(hosts, s.namespace, s.hostname)), ns, undefined, (h) => egressChoice(ctx, h, ns, hosts)),
    };
  });
  const catchAll = (sidecar.spec.egress as any[]).find((l) => !l.port);
  const catchAllHosts = catchAll ? hostsOf(catchAll) : [];
  const catchAllAdmitted = catchAll ? admit(ctx, scope, visible, catchAllHosts) : new Set<string>();
  const catchAllServices = oneOfEach(ctx, inVisibleOrder(visible, catchAllAdmitted), ns, undefined,
    (h) => egressChoice(ctx, h, ns, catchAllHosts) ?? destinationChoice(ctx, h, ns));
  return {
    services, chosen, catchAllServices, egressListeners, ingress, listenersKey,
    inboundConnectionPool, outboundPolicy, version: sidecar.version, sidecar,
  };
}

/**
 * Where a hostname is several services (one per namespace: ServiceEntries may name any host), the order istiod
 * meets them in for a proxy namespace (servicesExportedToNamespace): those private to it (its own, exported to `.`
 * or to itself only), then those exported to it by name, then public ones; each oldest first.
 */
function candidateOrder(svcs: readonly Service[], namespace: string): Service[] {
  const rank = (s: Service): number => {
    if (exportedEverywhereTo(s)) return 2;
    return s.namespace === namespace && s.exportTo.some((e) => e === '.' || e === namespace) ? 0 : 1;
  };
  return [...svcs].sort((a, b) => rank(a) - rank(b) || byCreation(a, b));
}
const exportedEverywhereTo = (s: Service): boolean => s.exportTo.length === 0 || s.exportTo.includes('*');

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

/** The service an egress listener's hosts import for a hostname that is several services, if any. */
function egressChoice(ctx: PushContext, host: string, namespace: string, hosts: readonly EgressHost[]): Service | undefined {
  return pickForSidecar(visibleCandidates(ctx, host, namespace).filter((s) => egressAdmits(hosts, s.namespace, host)), namespace);
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
  const shared = (indexedAlready(ctx.services) ?? indexOf(ctx.services)).shared;
  if (shared.size === 0) return list;
  let drop: Set<Service> | undefined;
  for (const [host, svcs] of shared) {
    const present = svcs.filter((s) => visibleTo(s, namespace));
    if (present.length === 0) continue;
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

/** The DestinationRule a proxy applies to a host: the rules of its namespace, its service's namespace, the root's. */
export function scopedDestinationRule(ctx: PushContext, scope: ProxyScope, host: string): ConfigEntry | undefined {
  return ctx.destinationRuleFor(host, scope.namespace, ctx.isShared(host) ? serviceFor(ctx, scope, host)?.namespace : undefined);
}

/** The connection pool of an inbound port (istio SidecarScope.InboundConnectionPoolForPort): the ingress listener's, else the Sidecar's. */
export function inboundConnectionPoolForPort(sc: SidecarScope, port: number): any {
  return sc.ingress.find((l) => l.port.number === port)?.connectionPool ?? sc.inboundConnectionPool;
}

/** The port-specific egress listener for a port, if the Sidecar has one (istiod GetEgressListenerForRDS). */
export function egressListenerFor(sc: SidecarScope, port: number): EgressListener | undefined {
  return sc.egressListeners.find((l) => l.port.number === port);
}
