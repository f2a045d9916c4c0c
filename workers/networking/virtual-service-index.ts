/**
 * Which VirtualServices a sidecar's egress listener imports (istio pilot/pkg/model/push_context.go
 * initVirtualServices, VirtualServicesForGateway; virtualservice.go SelectVirtualServices; sidecar.go
 * convertIstioListenerToWrapper, hostClassification.VSMatches).
 *
 * Once per VirtualService list, the VirtualServices bound to the `mesh` gateway (no `gateways`, or `mesh` among
 * them: one bound only to other gateways is never a sidecar's) are filed by visibility, oldest first
 * (sortConfigByCreationTime): exportTo with `*` (or none) public; else with `~` hidden, even from the namespaces
 * listed too; else `.` or the own namespace private to it, any other namespace exported to that one.
 * A proxy namespace's candidates are its private ones, then those exported to it, then the public ones.
 *
 * An egress listener's hosts are grouped by namespace (`.` already the proxy's). A candidate in namespace N is
 * imported when one of its hosts matches the listener's hosts for N or for `*`: the namespace is the
 * VirtualService's own, not that of the service it routes to. An exact egress host matches only the same VS host;
 * when either is a wildcard they match if one covers the other, in either direction (host.Name.Matches), so
 * `ns/a.example.com` imports a VirtualService for `*.example.com` and `ns/*` every one in `ns`.
 */
import { exportedEverywhere, hostMatches, hostsOverlap, type ConfigEntry, type PushContext } from '../../src/model/push-context.js';
import { byCreation } from '../../src/model/service.js';

/** A VirtualService bound to `mesh`, with its hosts qualified in its namespace. */
export interface MeshVirtualService {
  vs: ConfigEntry;
  hosts: string[];
  /** Its place in creation order. */
  order: number;
  /** Exported everywhere. */
  public: boolean;
  /** Whether a proxy namespace can see it (the lists it was filed in). */
  visibleFrom(namespace: string): boolean;
}

/**
 * One namespace's candidates in order, and (built on first use) those with hosts as configs: what the default
 * listener `*\/*` imports. A namespace nothing is exported to privately shares the public candidates' object, so
 * every namespace without a Sidecar shares one list.
 */
interface Candidates {
  list: MeshVirtualService[];
  everything?: ConfigEntry[];
}

interface VsIndex {
  private: Map<string, MeshVirtualService[]>;
  exportedTo: Map<string, MeshVirtualService[]>;
  public: Candidates;
  /** By the VirtualService's own namespace, in creation order: where `ns/…` egress hosts look. */
  byNamespace: Map<string, MeshVirtualService[]>;
  byConfig: Map<ConfigEntry, MeshVirtualService>;
  candidates: Map<string, Candidates>;
}

const indexes = new WeakMap<readonly ConfigEntry[], { domain: string; ix: VsIndex }>();

/** VirtualService `gateways` (default `mesh`) include the mesh: sidecars use it. */
export function boundToMesh(vs: ConfigEntry): boolean {
  const gws = vs.spec.gateways as string[] | undefined;
  return !gws?.length || gws.includes('mesh');
}

function vsIndex(ctx: PushContext): VsIndex {
  const list = ctx.data.virtualServices;
  const m = indexes.get(list);
  if (m && m.domain === ctx.data.mesh.domainSuffix) return m.ix;
  const ix: VsIndex = { private: new Map(), exportedTo: new Map(), public: { list: [] }, byNamespace: new Map(), byConfig: new Map(), candidates: new Map() };
  const file = (map: Map<string, MeshVirtualService[]>, ns: string, mv: MeshVirtualService): void => {
    const l = map.get(ns);
    if (!l) map.set(ns, [mv]); else if (l[l.length - 1] !== mv) l.push(mv);
  };
  let order = 0;
  for (const vs of [...list].sort(byCreation)) {
    if (!boundToMesh(vs)) continue;
    const exportTo = (vs.spec.exportTo ?? []) as string[];
    const hosts = ((vs.spec.hosts ?? []) as string[]).map((h) => ctx.qualify(h, vs.namespace));
    let mv: MeshVirtualService;
    if (exportedEverywhere(exportTo)) {
      mv = { vs, hosts, order: order++, public: true, visibleFrom: () => true };
      ix.public.list.push(mv);
    } else {
      if (exportTo.includes('~')) continue;
      const to = new Set(exportTo.map((e) => (e === '.' ? vs.namespace : e)));
      mv = { vs, hosts, order: order++, public: false, visibleFrom: (ns) => to.has(ns) };
      for (const ns of to) file(ns === vs.namespace ? ix.private : ix.exportedTo, ns, mv);
    }
    ix.byConfig.set(vs, mv);
    file(ix.byNamespace, vs.namespace, mv);
  }
  indexes.set(list, { domain: ctx.data.mesh.domainSuffix, ix });
  return ix;
}

function candidatesOf(ix: VsIndex, namespace: string): Candidates {
  let c = ix.candidates.get(namespace);
  if (!c) {
    const own = [...(ix.private.get(namespace) ?? []), ...(ix.exportedTo.get(namespace) ?? [])];
    c = own.length === 0 ? ix.public : { list: [...own, ...ix.public.list] };
    ix.candidates.set(namespace, c);
  }
  return c;
}

/**
 * A candidate's place in a namespace's candidate order: those private to it, then those exported to it, then the
 * public ones, each in creation order.
 */
function rank(mv: MeshVirtualService, namespace: string): number {
  return (mv.public ? 2 : mv.vs.namespace === namespace ? 0 : 1) * 1e9 + mv.order;
}

/** An egress listener's hosts for one namespace (istiod's hostClassification). */
export interface HostClass { exact: Set<string>; all: string[] }

/** `NAMESPACE/HOST` egress hosts (namespace `.` already resolved) grouped by namespace. */
export function classifyHosts(hosts: ReadonlyArray<{ namespace: string; host: string }>): Map<string, HostClass> {
  const out = new Map<string, HostClass>();
  for (const { namespace, host } of hosts) {
    let c = out.get(namespace);
    if (!c) out.set(namespace, (c = { exact: new Set(), all: [] }));
    if (!host.startsWith('*')) c.exact.add(host);
    c.all.push(host);
  }
  return out;
}

function vsHostMatches(c: HostClass | undefined, vsHost: string): boolean {
  if (!c) return false;
  if (c.exact.has(vsHost)) return true;
  const wild = vsHost.startsWith('*');
  return c.all.some((e) => (wild || e.startsWith('*')) && hostsOverlap(vsHost, e));
}

function imports(hosts: Map<string, HostClass>, mv: MeshVirtualService): boolean {
  const own = hosts.get(mv.vs.namespace), any = hosts.get('*');
  return mv.hosts.some((h) => vsHostMatches(own, h) || vsHostMatches(any, h));
}

/**
 * The VirtualServices an egress listener with these hosts imports for a proxy namespace, in candidate order. With
 * a `*` namespace every candidate is checked; otherwise only the candidates of the namespaces the hosts name.
 */
export function selectVirtualServices(ctx: PushContext, namespace: string, hosts: Map<string, HostClass>): ConfigEntry[] {
  const ix = vsIndex(ctx);
  const any = hosts.get('*');
  if (any) {
    const c = candidatesOf(ix, namespace);
    // `*\/*` imports every candidate with a host: one list, shared by the namespaces that share the candidates.
    if (any.all.includes('*')) return (c.everything ??= c.list.filter((mv) => mv.hosts.length > 0).map((mv) => mv.vs));
    return c.list.filter((mv) => imports(hosts, mv)).map((mv) => mv.vs);
  }
  // Only the VirtualServices of the namespaces the hosts name can match: those a namespace sees, in its order.
  const pool: MeshVirtualService[] = [];
  for (const ns of hosts.keys()) for (const mv of ix.byNamespace.get(ns) ?? []) if (mv.visibleFrom(namespace) && imports(hosts, mv)) pool.push(mv);
  return pool.sort((a, b) => rank(a, namespace) - rank(b, namespace)).map((mv) => mv.vs);
}

/** Whether an egress listener with these hosts imports a VirtualService for a proxy namespace (no list built). */
export function importsVirtualService(ctx: PushContext, namespace: string, hosts: Map<string, HostClass>, vs: ConfigEntry): boolean {
  const mv = vsIndex(ctx).byConfig.get(vs);
  return mv !== undefined && mv.visibleFrom(namespace) && imports(hosts, mv);
}

/** Whether a proxy namespace sees a VirtualService among its sidecar candidates (bound to mesh, exported there). */
export function meshVisible(ctx: PushContext, namespace: string, vs: ConfigEntry): boolean {
  return vsIndex(ctx).byConfig.get(vs)?.visibleFrom(namespace) ?? false;
}

/**
 * Of a listener's VirtualServices, those for a hostname in the order routes take them (computeWildcardHostVirtualServiceIndex,
 * MostSpecificHostMatch): the ones with that exact host first, then those with a wildcard host covering it from the
 * most specific (longest) wildcard; in the listener's order within each. Indexed once per list.
 */
export function virtualServicesForHost(ctx: PushContext, list: readonly ConfigEntry[], hostname: string): readonly ConfigEntry[] {
  let ix = byHostMemo.get(list);
  if (!ix) {
    const exact = new Map<string, ConfigEntry[]>();
    const wildcard: Array<{ host: string; vs: ConfigEntry }> = [];
    for (const vs of list) {
      for (const h of new Set(((vs.spec.hosts ?? []) as string[]).map((x) => ctx.qualify(x, vs.namespace)))) {
        if (h.startsWith('*')) { wildcard.push({ host: h, vs }); continue; }
        const l = exact.get(h);
        if (l) l.push(vs); else exact.set(h, [vs]);
      }
    }
    // Stable: the listener's order among wildcards of one length.
    wildcard.sort((a, b) => b.host.length - a.host.length);
    byHostMemo.set(list, (ix = { exact, wildcard }));
  }
  const exact = ix.exact.get(hostname) ?? [];
  const wild = ix.wildcard.filter((w) => hostMatches(w.host, hostname) && !exact.includes(w.vs)).map((w) => w.vs);
  return wild.length === 0 ? exact : [...new Set([...exact, ...wild])];
}
const byHostMemo = new WeakMap<readonly ConfigEntry[], { exact: Map<string, ConfigEntry[]>; wildcard: Array<{ host: string; vs: ConfigEntry }> }>();
