/**
 * VirtualService `tcp` and `tls` routes → tcp_proxy targets (istio pilot/pkg/networking/core/networkfilter.go,
 * listener.go buildSidecarOutboundTCPListenerOpts / gateway.go buildGatewayNetworkFiltersFromTCPRoutes): the first
 * route whose match fits the port, the proxy's labels and namespace, and the gateway, with its weighted destinations.
 */
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service } from '../../src/model/service.js';
import { clusterName } from './names.js';
import { serviceFor } from './sidecar-scope.js';
import { virtualServicesForHost } from './virtual-service-index.js';

export type TcpTarget = Array<{ cluster: string; weight: number }>;

function l4MatchFits(m: any, port: number, scope: ProxyScope, gatewayNames: ReadonlySet<string>, vs: ConfigEntry): boolean {
  if (m.port && m.port !== port) return false;
  if (m.gateways?.length && !(m.gateways as string[]).some((g) => gatewayNames.has(g.includes('/') || g === 'mesh' ? g : `${vs.namespace}/${g}`))) return false;
  if (!Object.entries((m.sourceLabels ?? {}) as Record<string, string>).every(([k, v]) => scope.labels[k] === v)) return false;
  return !m.sourceNamespace || m.sourceNamespace === scope.namespace;
}

export function routeTargets(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, route: any[], port: number): TcpTarget {
  const targets = route.map((d) => {
    const host = ctx.qualify(d.destination.host, vs.namespace);
    const svc = serviceFor(ctx, scope, host);
    const p: number = d.destination.port?.number ?? (svc?.ports.length === 1 ? svc.ports[0]!.port : port);
    return { cluster: clusterName('outbound', p, d.destination.subset ?? '', host), weight: d.weight ?? 0 };
  });
  return targets.length > 1 ? targets.filter((t) => t.weight > 0) : targets;
}

/** The first `tcp` route of a VirtualService that fits, or undefined. */
export function tcpRouteOf(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, port: number, gatewayNames: ReadonlySet<string>): TcpTarget | undefined {
  for (const tcp of (vs.spec.tcp ?? []) as any[]) {
    const matches: any[] = tcp.match ?? [{}];
    if (matches.some((m) => l4MatchFits(m, port, scope, gatewayNames, vs))) return routeTargets(ctx, scope, vs, tcp.route, port);
  }
  return undefined;
}

/** The first `tls` route whose sniHosts include `sni` (or any, for `*`). */
export function tlsRouteOf(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, port: number, gatewayNames: ReadonlySet<string>): Array<{ sniHosts: string[]; target: TcpTarget }> {
  const out: Array<{ sniHosts: string[]; target: TcpTarget }> = [];
  for (const tls of (vs.spec.tls ?? []) as any[]) {
    const fits = ((tls.match ?? []) as any[]).filter((m) => l4MatchFits(m, port, scope, gatewayNames, vs));
    if (fits.length === 0) continue;
    out.push({ sniHosts: [...new Set(fits.flatMap((m) => m.sniHosts as string[]))], target: routeTargets(ctx, scope, vs, tls.route, port) });
  }
  return out;
}

const MESH = new Set(['mesh']);

/**
 * For a sidecar's TCP service listener: the first `tcp` route that fits among the egress listener's VirtualServices
 * for the service (`virtualServices`: those the Sidecar's listener imported, all bound to `mesh`), if any.
 */
export function tcpRouteTarget(ctx: PushContext, scope: ProxyScope, svc: Service, port: number, virtualServices: readonly ConfigEntry[]): TcpTarget | undefined {
  for (const vs of virtualServicesForHost(ctx, virtualServices, svc.hostname)) {
    const t = tcpRouteOf(ctx, scope, vs, port, MESH);
    if (t) return t;
  }
  return undefined;
}

/** For a sidecar's TLS service listener: the `tls` routes of the first of the listener's VirtualServices with any. */
export function tlsRouteChains(ctx: PushContext, scope: ProxyScope, svc: Service, port: number, virtualServices: readonly ConfigEntry[]): Array<{ sniHosts: string[]; target: TcpTarget }> {
  const p = svc.ports.find((x) => x.port === port);
  if (!p || (p.protocol !== 'TLS' && p.protocol !== 'HTTPS')) return [];
  const out: Array<{ sniHosts: string[]; target: TcpTarget }> = [];
  for (const vs of virtualServicesForHost(ctx, virtualServices, svc.hostname)) {
    for (const r of tlsRouteOf(ctx, scope, vs, port, MESH)) if (r.target.length) out.push(r);
    if (out.length) break; // the first VirtualService for the host decides, as for http
  }
  return out;
}

/** The VirtualService versions a TCP listener depends on (for cache keys): the listener's for the service. */
export function tcpRouteDependencies(ctx: PushContext, svc: Service, virtualServices: readonly ConfigEntry[]): string {
  return virtualServicesForHost(ctx, virtualServices, svc.hostname).map((vs) => `${vs.namespace}/${vs.name}@${vs.version}`).join(',');
}
