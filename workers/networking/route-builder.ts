/**
 * RDS for sidecars and proxyless gRPC (gateways: gateway-builder.ts). Sidecars get one RouteConfiguration per
 * outbound HTTP port (named "PORT") with a virtual host per service in the proxy's SidecarScope, plus the catch-all
 * `allow_any` (PassthroughCluster) or, with outboundTrafficPolicy REGISTRY_ONLY, `block_all` (502); proxyless gRPC
 * gets one per HOST:PORT. Follows istio pilot/pkg/networking/core/httproute.go BuildSidecarOutboundVirtualHosts:
 * a route configuration reads only its egress listener's services and VirtualServices (sidecar-scope.ts; the
 * port's egress listener, else the catch-all one). A service's routes come from the first of the listener's
 * VirtualServices for it (exact host before the most specific wildcard, in the listener's precedence order) —
 * several VirtualServices for one host are not merged for sidecars — else a default route with Istio's default
 * retry policy.
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration, encodeMessage, messageType } from '../../src/proto/encode.js';
import { lengthDelimited } from '../../src/proto/discovery.js';
import { ROUTE_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext, ConfigEntry } from '../../src/model/push-context.js';
import { meshDigest } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service } from '../../src/model/service.js';
import { isHttp } from '../../src/model/protocol.js';
import { ALLOW_ANY_VHOST, PASSTHROUGH_CLUSTER } from '../../src/model/constants.js';
import { clusterName, parseHostPort } from './names.js';
import { visibleTo } from './visibility.js';
import { egressListenerFor, scopedDestinationRule, serviceFor, sidecarScope, type SidecarScope } from './sidecar-scope.js';
import { virtualServicesForHost } from './virtual-service-index.js';
import { buildHttpRoutes, hashPolicyFor, retryPolicy, routeDependencies } from './http-route.js';
import { EncodedParts } from './encoded-parts.js';

export const BLOCK_ALL_VHOST = 'block_all';
const MESH_GATEWAY = new Set(['mesh']);

function defaultRoute(ctx: PushContext, scope: ProxyScope, svc: Service, port: number): ProtoObject {
  const hash = hashPolicyFor(ctx, scope, svc.hostname, port, '');
  const action: ProtoObject = { cluster: clusterName('outbound', port, '', svc.hostname), timeout: duration(0) };
  const retry = retryPolicy(scope, undefined, hash !== undefined);
  if (retry) action.retry_policy = retry;
  if (hash) action.hash_policy = [hash];
  action.max_stream_duration = scope.generator === 'envoy'
    ? { max_stream_duration: duration(0), grpc_timeout_header_max: duration(0) }
    : { max_stream_duration: duration(0) };
  const r: ProtoObject = { name: 'default', match: { prefix: '/' }, route: action };
  if (scope.generator === 'envoy') r.decorator = { operation: `${svc.hostname}:${port}/*` };
  return r;
}

/**
 * The VirtualServices route configuration "PORT" reads (GetEgressListenerForRDS): those of the Sidecar's egress
 * listener on that port when it has one, else the catch-all listener's.
 */
export function listenerVirtualServices(sc: SidecarScope, port: number): ConfigEntry[] {
  return egressListenerFor(sc, port)?.virtualServices ?? sc.catchAllVirtualServices;
}

/**
 * The VirtualServices that may decide routing for a service on a port, in order (route.go
 * BuildSidecarVirtualHostWrapper, separateVSHostsAndServices): every one of the listener's with the service's exact
 * hostname — each makes a virtual host, the first one with routes wins the duplicate name — or, without those, the
 * one with the most specific wildcard host covering it (mostSpecificWildcardVsIndex).
 */
export function routingVirtualServices(ctx: PushContext, scope: ProxyScope, host: string, port: number): readonly ConfigEntry[] {
  const all = virtualServicesForHost(ctx, listenerVirtualServices(sidecarScope(ctx, scope), port), host);
  if (all.length <= 1) return all;
  const exact = all.filter((vs) => ((vs.spec.hosts ?? []) as string[]).some((h) => ctx.qualify(h, vs.namespace) === host));
  return exact.length > 0 ? exact : all.slice(0, 1);
}

/** Domains istiod generates for a service's virtual host (route/route.go generateVirtualHostDomains). */
export function virtualHostDomains(svc: Service, port: number, proxyNamespace: string): string[] {
  const names = [svc.hostname];
  const parts = svc.hostname.split('.');
  if (svc.hostname.endsWith('.svc.' + parts.slice(3).join('.')) && parts.length > 3) {
    if (svc.namespace === proxyNamespace) names.push(parts[0]!);
    names.push(`${parts[0]}.${parts[1]}.svc`, `${parts[0]}.${parts[1]}`);
  }
  if (svc.address) names.push(svc.address);
  return names.flatMap((n) => [n, `${n}:${port}`]);
}

export function virtualHost(ctx: PushContext, scope: ProxyScope, svc: Service, port: number, domains: string[]): ProtoObject {
  let routes: ProtoObject[] = [];
  // A VirtualService with no route for this port or proxy makes no virtual host: the next one for the host does,
  // or, with none left, the service keeps its default route (istiod does the same).
  for (const vs of routingVirtualServices(ctx, scope, svc.hostname, port)) {
    routes = buildHttpRoutes({ ctx, scope, port, gatewayNames: MESH_GATEWAY }, vs);
    if (routes.length > 0) break;
  }
  if (routes.length === 0) routes = [defaultRoute(ctx, scope, svc, port)];
  return { name: `${svc.hostname}:${port}`, domains, routes, include_request_attempt_count: scope.generator === 'envoy' ? true : undefined };
}

/**
 * The services route configuration "PORT" has a virtual host for: those of the Sidecar's egress listener on that
 * port when it has one (istio GetEgressListenerForRDS — only that listener's hosts), else those of the catch-all.
 */
export function sidecarRouteServices(ctx: PushContext, scope: ProxyScope, port: number): Service[] {
  const sc = sidecarScope(ctx, scope);
  const listener = egressListenerFor(sc, port);
  if (listener) return listener.services.filter((s) => s.ports.some((p) => p.port === port && p.protocol !== 'UDP'));
  return sc.catchAllServices.filter((s) => s.ports.some((p) => p.port === port && isHttp(p.protocol)));
}

/** The catch-all virtual host: PassthroughCluster, or a 502 under REGISTRY_ONLY (istio buildCatchAllVirtualHost). */
export function catchAllVirtualHost(ctx: PushContext, scope: ProxyScope): ProtoObject {
  if (sidecarScope(ctx, scope).outboundPolicy === 'REGISTRY_ONLY') {
    return { name: BLOCK_ALL_VHOST, domains: ['*'], routes: [{ name: BLOCK_ALL_VHOST, match: { prefix: '/' }, direct_response: { status: 502 } }] };
  }
  return {
    name: ALLOW_ANY_VHOST,
    domains: ['*'],
    routes: [{ name: ALLOW_ANY_VHOST, match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: duration(0) } }],
  };
}

/**
 * What one service's virtual host reads besides the proxy's namespace, labels and generator: the service, its
 * DestinationRule as seen from that namespace (hash policy of the default route), and its VirtualService with
 * delegates, destinations and their DestinationRules. Route configuration keys and virtual host keys both use it.
 */
export function hostRouteInputs(ctx: PushContext, scope: ProxyScope, host: string, port: number): string {
  // Within one context it depends only on the proxy's namespace and Sidecar (which of a hostname's services it
  // imports, which VirtualServices the port's egress listener does) and, where a DestinationRule of its namespace
  // has a workloadSelector, the labels that selector reads: memoised for the plan's key and the build.
  let byHost = hostInputsMemo.get(ctx);
  if (!byHost) hostInputsMemo.set(ctx, (byHost = new Map()));
  const listener = scope.sidecar && egressListenerFor(sidecarScope(ctx, scope), port) ? port : '*';
  const k = `${scope.namespace}|${scope.sidecar ?? ''}|${listener}|${host}${scope.drLabels ? `|${JSON.stringify(scope.drLabels)}` : ''}`;
  let v = byHost.get(k);
  if (v === undefined) {
    const parts = [`${host}|${serviceFor(ctx, scope, host)?.version}|${scopedDestinationRule(ctx, scope, host)?.version ?? ''}`];
    for (const vs of routingVirtualServices(ctx, scope, host, port)) parts.push(...routeDependencies(ctx, scope, vs));
    byHost.set(k, (v = parts.join('\n')));
  }
  return v;
}

const hostInputsMemo = new WeakMap<PushContext, Map<string, string>>();

/**
 * Encoded virtual hosts of sidecar route configurations, by every input (per thread). Without sharing below the
 * resource, one VirtualService change re-encoded every virtual host of every namespace's route configuration:
 * with every proxy seeing 1,000 services, 50 configurations × 1,000 hosts per change.
 */
const vhostCache = new EncodedParts(64 * 1024 * 1024);

export function vhostCacheStats(): { entries: number; bytes: number; hits: number; misses: number } {
  return { entries: vhostCache.size, bytes: vhostCache.sizeBytes, hits: vhostCache.hits, misses: vhostCache.misses };
}

/**
 * A sidecar's route configuration "PORT" as RouteConfiguration bytes, assembled from cached encoded virtual hosts:
 * byte for byte what encoding buildRouteConfiguration's object gives (fields in the same order: name, the virtual
 * hosts, validate_clusters). Only the catch-all host and the hosts whose inputs changed are encoded.
 */
export function encodeSidecarRouteConfiguration(ctx: PushContext, scope: ProxyScope, name: string): Uint8Array | undefined {
  const port = Number(name);
  if (scope.generator === 'grpc' || !Number.isInteger(port)) return undefined;
  const VH = messageType('envoy.config.route.v3.VirtualHost');
  const RC = messageType('envoy.config.route.v3.RouteConfiguration');
  // The group: what every virtual host of this configuration reads about the proxy (and the mesh config).
  const group = `${scope.generator}|${scope.namespace}|${JSON.stringify(scope.labels)}|${port}|${meshDigest(ctx.data.mesh)}${scope.drLabels ? `|${JSON.stringify(scope.drLabels)}` : ''}`;
  const parts: Uint8Array[] = [encodeMessage(RC, { name }, `RouteConfiguration ${name}`)];
  for (const svc of sidecarRouteServices(ctx, scope, port)) {
    const inputs = hostRouteInputs(ctx, scope, svc.hostname, port);
    let bytes = vhostCache.get(group, svc.hostname, inputs);
    if (!bytes) {
      const vh = virtualHost(ctx, scope, svc, port, virtualHostDomains(svc, port, scope.namespace));
      bytes = encodeMessage(VH, vh, `RouteConfiguration ${name} virtual host ${svc.hostname}:${port}`);
      vhostCache.set(group, svc.hostname, inputs, bytes);
    }
    parts.push(lengthDelimited(2, bytes));
  }
  parts.push(lengthDelimited(2, encodeMessage(VH, catchAllVirtualHost(ctx, scope))));
  parts.push(encodeMessage(RC, { validate_clusters: { value: false } }));
  return Buffer.concat(parts);
}

export function buildRouteConfiguration(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject | undefined {
  if (scope.generator === 'grpc') {
    const hp = parseHostPort(name);
    const svc = hp ? serviceFor(ctx, scope, hp.host) : undefined;
    if (!hp || !svc || !visibleTo(svc, scope.namespace)) return undefined;
    return {
      '@type': ROUTE_TYPE,
      name,
      virtual_hosts: [virtualHost(ctx, scope, svc, hp.port, [svc.hostname, `${svc.hostname}:${hp.port}`])],
    };
  }
  const port = Number(name);
  if (!Number.isInteger(port)) return undefined;
  const vhosts = sidecarRouteServices(ctx, scope, port).map((svc) =>
    virtualHost(ctx, scope, svc, port, virtualHostDomains(svc, port, scope.namespace)));
  vhosts.push(catchAllVirtualHost(ctx, scope));
  return { '@type': ROUTE_TYPE, name, virtual_hosts: vhosts, validate_clusters: { value: false } };
}
