/**
 * VirtualService `tcp` and `tls` routes → tcp_proxy targets (istio pilot/pkg/networking/core/networkfilter.go,
 * listener.go buildSidecarOutboundTCPListenerOpts / gateway.go buildGatewayNetworkFiltersFromTCPRoutes): the first
 * route whose match fits the port, the proxy's labels and namespace, and the gateway, with its weighted destinations.
 */
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import { exportedTo } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service } from '../../src/model/service.js';
import { clusterName } from './names.js';
import { serviceFor } from './sidecar-scope.js';

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

/** For a sidecar's TCP service listener: the VirtualService tcp route bound to `mesh`, if any. */
export function tcpRouteTarget(ctx: PushContext, scope: ProxyScope, svc: Service, port: number): TcpTarget | undefined {
  const mesh = new Set(['mesh']);
  for (const vs of ctx.virtualServicesFor(svc.hostname)) {
    if (!exportedTo(vs.spec.exportTo, vs.namespace, scope.namespace)) continue;
    const gws: string[] = vs.spec.gateways?.length ? vs.spec.gateways : ['mesh'];
    if (!gws.includes('mesh')) continue;
    const t = tcpRouteOf(ctx, scope, vs, port, mesh);
    if (t) return t;
  }
  return undefined;
}

/** For a sidecar's TLS service listener: the `tls` routes of the VirtualServices bound to `mesh` for the service. */
export function tlsRouteChains(ctx: PushContext, scope: ProxyScope, svc: Service, port: number): Array<{ sniHosts: string[]; target: TcpTarget }> {
  const p = svc.ports.find((x) => x.port === port);
  if (!p || (p.protocol !== 'TLS' && p.protocol !== 'HTTPS')) return [];
  const mesh = new Set(['mesh']);
  const out: Array<{ sniHosts: string[]; target: TcpTarget }> = [];
  for (const vs of ctx.virtualServicesFor(svc.hostname)) {
    if (!exportedTo(vs.spec.exportTo, vs.namespace, scope.namespace)) continue;
    const gws: string[] = vs.spec.gateways?.length ? vs.spec.gateways : ['mesh'];
    if (!gws.includes('mesh')) continue;
    for (const r of tlsRouteOf(ctx, scope, vs, port, mesh)) if (r.target.length) out.push(r);
    if (out.length) break; // the first VirtualService for the host decides, as for http
  }
  return out;
}

/** VirtualService versions and destination service versions a TCP listener depends on (for cache keys). */
export function tcpRouteDependencies(ctx: PushContext, svc: Service): string {
  return ctx.virtualServicesFor(svc.hostname).map((vs) => `${vs.namespace}/${vs.name}@${vs.version}`).join(',');
}
