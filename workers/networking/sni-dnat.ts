/**
 * SNI-DNAT: what a router needs for a Gateway server in `tls.mode: AUTO_PASSTHROUGH` (east-west gateways). Istio mTLS
 * clients send the SNI `outbound_.PORT_.SUBSET_.HOST`; the gateway routes on it without terminating TLS:
 *
 * - listener: one filter chain per visible mesh-internal service port matching a server host (and one per
 *   DestinationRule subset), matched on that SNI and on Istio's mTLS ALPNs, tcp_proxy to the cluster of the same
 *   name (istio pilot/pkg/networking/core/gateway.go builtAutoPassthroughFilterChains — per-service chains with an
 *   explicit cluster; the older `envoy.filters.network.sni_cluster` arrangement is gone from istiod);
 * - clusters: `outbound_.PORT_.SUBSET_.HOST` for every visible mesh-internal service port and subset, built like the
 *   outbound cluster but with no TLS of their own (cluster.go buildOutboundSniDnatClusters, SniDnatClusterMode),
 *   sent only when some gateway selecting the router has an AUTO_PASSTHROUGH server (ContainsAutoPassthroughGateways);
 * - endpoints: those of the outbound cluster, keeping only endpoints that accept Istio mTLS (tlsMode=istio), so
 *   the passthrough cannot reach a plaintext workload (xds/endpoints EndpointsWithMTLSFilter).
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import type { PushContext } from '../../src/model/push-context.js';
import { hostMatches } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service, ServicePort } from '../../src/model/service.js';
import { outboundCluster } from './cluster-builder.js';
import { buildLoadAssignment } from './endpoint-builder.js';
import { clusterName, dnsSrvSubsetKey } from './names.js';
import { visibleServices } from './visibility.js';
import { TRANSPORT_SOCKET_MATCH } from './security/tls-context.js';

export const AUTO_PASSTHROUGH = 'AUTO_PASSTHROUGH';

/** A server's hosts as SNI hosts: the `namespace/` part dropped (istio gateway.GetSNIHostsForServer). */
export function sniHostsOf(server: any): string[] {
  return [...new Set(((server.hosts ?? []) as string[]).map((h) => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h)))].sort();
}

export function isAutoPassthrough(server: any): boolean {
  return server?.tls?.mode === AUTO_PASSTHROUGH;
}

/** True when a Gateway selecting this router has an AUTO_PASSTHROUGH server. */
export function hasAutoPassthrough(ctx: PushContext, scope: ProxyScope): boolean {
  if (scope.type !== 'router') return false;
  return (scope.gateways ?? []).some((k) => {
    const [ns, name] = k.split('/') as [string, string];
    return ((ctx.gateway(ns, name)?.spec.servers ?? []) as any[]).some(isAutoPassthrough);
  });
}

/** The services SNI-DNAT clusters are built for: visible to the router, mesh-internal, as istiod. */
export function sniDnatServices(ctx: PushContext, scope: ProxyScope): Service[] {
  return visibleServices(ctx, scope).filter((s) => !s.meshExternal);
}

/** DestinationRule subsets of a service as seen from the router ('' = the default cluster). */
export function subsetNames(ctx: PushContext, scope: ProxyScope, svc: Service): string[] {
  const dr = ctx.destinationRuleFor(svc.hostname, scope.namespace, svc.namespace, scope.drLabels);
  return ['', ...((dr?.spec.subsets ?? []) as any[]).map((s) => s.name as string)];
}

export interface SniChain { sni: string; port: ServicePort; svc: Service }

/** The SNI names an AUTO_PASSTHROUGH server with these hosts routes, in istiod's order (service, port, subsets). */
export function autoPassthroughChains(ctx: PushContext, scope: ProxyScope, hosts: readonly string[]): SniChain[] {
  const out: SniChain[] = [];
  for (const svc of sniDnatServices(ctx, scope)) {
    if (!hosts.some((h) => hostMatches(h, svc.hostname))) continue;
    for (const port of svc.ports) {
      if (port.protocol === 'UDP') continue;
      for (const subset of subsetNames(ctx, scope, svc)) out.push({ sni: dnsSrvSubsetKey(port.port, subset, svc.hostname), port, svc });
    }
  }
  return out;
}

/** The outbound cluster with the SNI-DNAT name and no TLS (istiod's SniDnatClusterMode applies no TLS settings). */
export function sniDnatCluster(ctx: PushContext, scope: ProxyScope, svc: Service, port: ServicePort, subset: string): ProtoObject {
  const name = dnsSrvSubsetKey(port.port, subset, svc.hostname);
  const c: ProtoObject = { ...outboundCluster(ctx, scope, svc, port, subset), name };
  delete c.transport_socket;
  delete c.transport_socket_matches;
  const eds = c.eds_cluster_config as ProtoObject | undefined;
  if (eds) c.eds_cluster_config = { ...eds, service_name: name };
  const la = c.load_assignment as ProtoObject | undefined;
  if (la) c.load_assignment = { ...la, cluster_name: name };
  return c;
}

function acceptsIstioMtls(lbEndpoint: any): boolean {
  return lbEndpoint?.metadata?.filter_metadata?.[TRANSPORT_SOCKET_MATCH]?.fields?.tlsMode?.stringValue === 'istio';
}

/** The outbound cluster's endpoints, only those accepting Istio mTLS; localities reweighted by what is left. */
export function sniDnatLoadAssignment(ctx: PushContext, scope: ProxyScope, parts: { port: number; subset: string; host: string }): ProtoObject {
  const la = buildLoadAssignment(ctx, scope, clusterName('outbound', parts.port, parts.subset, parts.host));
  const endpoints = ((la.endpoints ?? []) as any[]).flatMap((l) => {
    const kept = ((l.lb_endpoints ?? []) as any[]).filter(acceptsIstioMtls);
    if (kept.length === 0) return [];
    const all = (l.lb_endpoints as any[]).length;
    const weight = l.load_balancing_weight?.value;
    return [{ ...l, lb_endpoints: kept, load_balancing_weight: weight === undefined ? undefined : { value: Math.max(1, Math.round((weight * kept.length) / all)) } }];
  });
  return { ...la, cluster_name: dnsSrvSubsetKey(parts.port, parts.subset, parts.host), endpoints };
}
