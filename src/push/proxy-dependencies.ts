/**
 * Which proxies a config change can affect (istiod's pilot/pkg/xds/proxy_dependencies.go: ProxyNeedsPush,
 * checkProxyDependencies, SidecarScope.DependsOnConfig). A full push then goes only to those proxies; the others
 * keep what they have, which is still exactly what the new PushContext would give them.
 *
 * The check is made against the scope a proxy was last pushed with (old context) and its scope now (new context),
 * so a config that leaves a proxy's view (deleted, exportTo narrowed, egress host removed) still reaches it.
 * It is deliberately conservative: anything it cannot reason about cheaply affects every proxy.
 *
 * - VirtualService: proxies one of whose Sidecar egress listeners imports it (SelectVirtualServices: bound to
 *   `mesh`, exported to the proxy's namespace, a host matching the listener's hosts for the VirtualService's
 *   namespace or `*`): its routes and the destinations it brings in reach no other sidecar. A delegate
 *   VirtualService (no hosts) affects everyone it is exported to.
 * - DestinationRule: proxies in namespaces it is exported to whose Sidecar egress imports its host; a host
 *   matching no service at all (external hosts) affects everyone it is exported to. It also affects its host's
 *   own namespace.
 * - Service: its hostname, as above, plus its own namespace (inbound listeners).
 * - Sidecar, AuthorizationPolicy, RequestAuthentication: its namespace (every namespace for the root namespace).
 * - Endpoints, EndpointSlices, Pods, WorkloadEntries merged into a full push: left to the engine's endpoint path.
 * - Everything else (ServiceEntry, PeerAuthentication — auto-mTLS reads it on the client side —, Gateway,
 *   Namespace, mesh config, …): every proxy. Routers and proxyless gRPC
 *   clients are always pushed.
 */
import type { ConfigEntry, PushContext } from '../model/push-context.js';
import type { Service } from '../model/service.js';
import { exportedTo, hostMatches } from '../model/push-context.js';
import { securityLabelKeys, type ProxyScope } from '../model/scope.js';
import { scopeIncludes, selectsVirtualService, sidecarScope } from '../../workers/networking/sidecar-scope.js';
import { ENDPOINT_KINDS, Kind } from '../config/kinds.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, PUSH_ORDER, ROUTE_TYPE } from '../proto/type-urls.js';

interface ChangedKey { kind: string; namespace: string; name: string }

function parseKey(k: string): ChangedKey {
  const [kind = '', namespace = '', ...rest] = k.split('/');
  return { kind, namespace, name: rest.join('/') };
}

const NAMESPACED_ONLY: ReadonlySet<string> = new Set([Kind.Sidecar, Kind.AuthorizationPolicy, Kind.RequestAuthentication]);
const HOST_SCOPED: ReadonlySet<string> = new Set([Kind.VirtualService, Kind.DestinationRule, Kind.Service]);

/** The same DestinationRule selector label keys in every namespace (proxy scopes' drLabels are then the same). */
function sameKeysByNamespace(a: ReadonlyMap<string, readonly string[]>, b: ReadonlyMap<string, readonly string[]>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [ns, keys] of a) {
    const other = b.get(ns);
    if (!other || other.length !== keys.length || keys.some((k, i) => k !== other[i])) return false;
  }
  return true;
}

export class ProxyDependencies {
  private readonly keys: ChangedKey[];
  /** Some change affects every proxy: no per-proxy check needed. */
  readonly all: boolean;
  private readonly memo = new Map<string, boolean>();

  /**
   * No proxy outside the affected ones can have a new scope: the label keys routes, policies and DestinationRule
   * workloadSelectors select on and the locality switch are unchanged, and Sidecar/Service changes affect their whole namespace anyway. Then the
   * scope a proxy was last pushed with stands for its scope now, and thousands of scopes need not be recomputed
   * to find the few proxies a change concerns.
   */
  readonly scopesStable: boolean;

  constructor(private readonly oldCtx: PushContext, private readonly newCtx: PushContext, configsUpdated: Iterable<string>) {
    // Endpoint changes merged into a full request are the engine's (EDS to watchers, CDS for inline endpoints,
    // a full push where a workload's scope moved); only when nothing else is left does the request mean "all".
    this.keys = [...configsUpdated].map(parseKey).filter((k) => !ENDPOINT_KINDS.has(k.kind));
    this.all = this.keys.length === 0 || this.keys.some((k) => !NAMESPACED_ONLY.has(k.kind) && !HOST_SCOPED.has(k.kind));
    const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
    this.scopesStable = !this.all && oldCtx.localityAware === newCtx.localityAware &&
      same(oldCtx.sourceLabelKeys, newCtx.sourceLabelKeys) && same(securityLabelKeys(oldCtx), securityLabelKeys(newCtx)) &&
      sameKeysByNamespace(oldCtx.destinationRuleLabelKeysByNamespace, newCtx.destinationRuleLabelKeysByNamespace);
    this.virtualServicesOnly = this.keys.length > 0 && this.keys.every((k) => k.kind === Kind.VirtualService);
    if (this.virtualServicesOnly) {
      const streamRoutes = (vs: ConfigEntry | undefined): boolean => vs !== undefined && ((vs.spec.tcp?.length ?? 0) > 0 || (vs.spec.tls?.length ?? 0) > 0);
      this.streamRoutesChanged = this.keys.some((k) => streamRoutes(oldCtx.virtualService(k.namespace, k.name)) || streamRoutes(newCtx.virtualService(k.namespace, k.name)));
    }
  }

  /**
   * Every change other than endpoints is a VirtualService. Endpoint changes merged into the same push are the
   * engine's to add (see withEndpointTypes): typesFor answers for the VirtualServices alone.
   */
  private readonly virtualServicesOnly: boolean;
  /** Some changed VirtualService has (or had) tcp or tls routes: those live in listeners, not routes. */
  private streamRoutesChanged = false;

  /**
   * The types an affected sidecar's config can have changed in. A VirtualService reaches a sidecar's clusters,
   * load assignments and listeners only through the services its Sidecar scope admits (a VirtualService brings its
   * destinations in) and through tcp/tls routes (filter chains in listeners); everything else it says is in routes.
   * So when only VirtualServices changed and the scope's services are the same in both contexts, only RDS — plus
   * LDS when tcp/tls routes changed — is offered; the other three types would plan, look up and compare equal.
   */
  typesFor(scope: ProxyScope): readonly string[] {
    if (!this.virtualServicesOnly || scope.type !== 'sidecar' || scope.generator !== 'envoy') return PUSH_ORDER;
    const a = sidecarScope(this.oldCtx, scope), b = sidecarScope(this.newCtx, scope);
    // The same services in the same order (the same objects after a config-only rebuild; equal versions otherwise).
    const same = (x: readonly Service[], y: readonly Service[]): boolean => x === y ||
      (x.length === y.length && x.every((v, i) => v === y[i] || (v.hostname === y[i]!.hostname && v.version === y[i]!.version)));
    if (!same(a.services, b.services) || !same(a.catchAllServices, b.catchAllServices)) return PUSH_ORDER;
    return this.streamRoutesChanged ? [LISTENER_TYPE, ROUTE_TYPE] : [ROUTE_TYPE];
  }

  /**
   * What to offer an affected proxy when endpoint changes are merged into the push: the types the other changes
   * reach (typesFor), plus EDS, plus CDS when some changed service's clusters carry its endpoints (DNS) or its
   * identities (a new service account). A proxy whose scope reads the workload registry is the caller's to send
   * everything when workloads moved.
   */
  static withEndpointTypes(types: readonly string[], cds: boolean): readonly string[] {
    if (types === PUSH_ORDER) return types;
    return PUSH_ORDER.filter((t) => types.includes(t) || t === ENDPOINT_TYPE || (cds && t === CLUSTER_TYPE));
  }

  /** Whether a proxy last pushed with `oldScope` (undefined: never pushed) and now in `newScope` needs this push. */
  affects(oldScope: ProxyScope | undefined, newScope: ProxyScope): boolean {
    if (this.all || !oldScope) return true;
    if (newScope.type !== 'sidecar' || newScope.generator !== 'envoy') return true;
    return this.groupAffected(this.oldCtx, oldScope) || this.groupAffected(this.newCtx, newScope);
  }

  /** Per scope object (proxies of one scope group share it), before the namespace|sidecar memo. */
  private readonly oldByScope = new WeakMap<ProxyScope, boolean>();
  private readonly newByScope = new WeakMap<ProxyScope, boolean>();

  private groupAffected(ctx: PushContext, scope: ProxyScope): boolean {
    const byScope = ctx === this.oldCtx ? this.oldByScope : this.newByScope;
    let r = byScope.get(scope);
    if (r !== undefined) return r;
    const g = `${ctx === this.oldCtx ? 'o' : 'n'}|${scope.namespace}|${scope.sidecar ?? ''}`;
    r = this.memo.get(g);
    if (r === undefined) {
      r = this.keys.some((k) => this.keyAffects(ctx, scope, k));
      this.memo.set(g, r);
    }
    byScope.set(scope, r);
    return r;
  }

  private keyAffects(ctx: PushContext, scope: ProxyScope, k: ChangedKey): boolean {
    const ns = scope.namespace;
    const root = ctx.data.mesh.rootNamespace;
    if (NAMESPACED_ONLY.has(k.kind)) return k.namespace === ns || k.namespace === root;
    switch (k.kind) {
      case Kind.VirtualService: {
        const vs = ctx.virtualService(k.namespace, k.name);
        if (!vs) return false; // not in this context; the other context is checked too
        // A delegate is reached through whichever VirtualService includes it.
        if (!vs.spec.hosts?.length) return exportedTo(vs.spec.exportTo as string[] | undefined, vs.namespace, ns);
        return selectsVirtualService(ctx, scope, vs);
      }
      case Kind.DestinationRule: {
        const dr = ctx.data.destinationRules.find((d) => d.namespace === k.namespace && d.name === k.name);
        if (!dr) return false;
        const host = ctx.qualify(String(dr.spec.host ?? ''), dr.namespace);
        if (ctx.service(host)?.namespace === ns) return true;
        return exportedTo(dr.spec.exportTo as string[] | undefined, dr.namespace, ns) && this.hostsAffect(ctx, scope, [host]);
      }
      case Kind.Service: {
        const svc = this.serviceOf(ctx, k);
        if (!svc) return false;
        if (svc.namespace === ns) return true;
        return scopeIncludes(ctx, scope, svc);
      }
      default:
        return true;
    }
  }

  /**
   * The changed Service in a context, looked up once per push rather than once per scope group: a scan of every
   * service for each of 200 groups (old and new context, 100 namespaces) cost ~240 ms per Service change at
   * 10,000 services.
   */
  private readonly changedServices = new Map<string, Service | null>();
  private serviceOf(ctx: PushContext, k: ChangedKey): Service | undefined {
    const key = `${ctx === this.oldCtx ? 'o' : 'n'}|${k.namespace}/${k.name}`;
    let svc = this.changedServices.get(key);
    if (svc === undefined) {
      // A Kubernetes Service's hostname is name.namespace.svc.<domain suffix>: one lookup, else a scan.
      const byHost = ctx.service(`${k.name}.${k.namespace}.svc.${ctx.data.mesh.domainSuffix}`);
      svc = (byHost?.namespace === k.namespace && byHost.name === k.name ? byHost
        : ctx.services.find((s) => s.namespace === k.namespace && s.name === k.name)) ?? null;
      this.changedServices.set(key, svc);
    }
    return svc ?? undefined;
  }

  /** Whether a config exported to the scope's namespace reaches it through one of its hosts. */
  private hostsAffect(ctx: PushContext, scope: ProxyScope, hosts: string[]): boolean {
    if (hosts.length === 0) return true; // a delegate: reached through whichever VirtualService includes it
    for (const h of hosts) {
      if (!h.includes('*')) {
        const svc = ctx.service(h);
        if (!svc || scopeIncludes(ctx, scope, svc)) return true; // external host, or a service this proxy sees
        continue;
      }
      if (!ctx.services.some((s) => hostMatches(h, s.hostname))) return true;
      if (sidecarScope(ctx, scope).services.some((s) => hostMatches(h, s.hostname))) return true;
    }
    return false;
  }
}
