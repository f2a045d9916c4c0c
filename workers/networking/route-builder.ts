/**
 * RDS for sidecars and proxyless gRPC (gateways: gateway-builder.ts). Sidecars get one RouteConfiguration per
 * outbound HTTP port (named "PORT") with a virtual host per service in the proxy's SidecarScope and per
 * VirtualService host that is no service (sidecarVirtualHosts), plus the catch-all `allow_any` (PassthroughCluster)
 * or, with outboundTrafficPolicy REGISTRY_ONLY, `block_all` (502); proxyless gRPC gets one per HOST:PORT. Follows istio pilot/pkg/networking/core/httproute.go BuildSidecarOutboundVirtualHosts:
 * a route configuration reads only its egress listener's services and VirtualServices (sidecar-scope.ts; the
 * port's egress listener, else the catch-all one). A service's routes come from the first of the listener's
 * VirtualServices for it (exact host before the most specific wildcard, in the listener's precedence order) —
 * several VirtualServices for one host are not merged for sidecars — else a default route with Istio's default
 * retry policy.
 */
import { isIP } from 'node:net';
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration, encodeMessage, messageType } from '../../src/proto/encode.js';
import { lengthDelimited } from '../../src/proto/discovery.js';
import { ROUTE_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext, ConfigEntry } from '../../src/model/push-context.js';
import { hostsOverlap, meshDigest } from '../../src/model/push-context.js';
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
  if (scope.generator === 'envoy') action.max_grpc_timeout = duration(0);
  else action.max_stream_duration = { max_stream_duration: duration(0) };
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

/**
 * Domains istiod 1.29 generates for a service's virtual host in a sidecar's route configuration
 * (httproute.go generateVirtualHostDomains, GenerateAltVirtualHosts). Envoy sidecars get no `host:port` variants:
 * the route configuration sets ignore_port_in_host_matching (SidecarIgnorePort). The hostname, its absolute form
 * with a trailing dot (PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN, on by default), for a Kubernetes hostname the short
 * forms the proxy's namespace can use (`name`, `name.ns.svc`, `name.ns` in the same namespace; `name.ns`,
 * `name.ns.svc` from another), then the service address. `alt` are the generated forms, which give way to a
 * service whose hostname they are (dedupeDomains' knownFQDN rule).
 */
export function virtualHostDomains(svc: Service, proxyNamespace: string, domainSuffix: string): { domains: string[]; alt: string[] } {
  const h = svc.hostname;
  const alt: string[] = isIP(h) !== 0 ? [] : [`${h}.`];
  const ih = h.indexOf('.svc.');
  if (h.endsWith(`.svc.${domainSuffix}`) && ih > 0) {
    const ns = h.indexOf('.');
    if (ns + 1 < h.length && ns + 1 <= ih) {
      const named = h.slice(0, ih);
      if (h.slice(ns + 1, ih) === proxyNamespace) alt.push(h.slice(0, ns), `${named}.svc`, named);
      else alt.push(named, `${named}.svc`);
    }
  }
  const domains = [h, ...alt];
  if (svc.address && svc.address !== '0.0.0.0') domains.push(svc.address.includes(':') ? `[${svc.address}]` : svc.address);
  return { domains, alt };
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
    return { name: BLOCK_ALL_VHOST, domains: ['*'], routes: [{ name: BLOCK_ALL_VHOST, match: { prefix: '/' }, direct_response: { status: 502 } }], include_request_attempt_count: true };
  }
  return {
    name: ALLOW_ANY_VHOST,
    domains: ['*'],
    routes: [{ name: ALLOW_ANY_VHOST, match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: duration(0), max_grpc_timeout: duration(0) } }],
    include_request_attempt_count: true,
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
 * A virtual host of a sidecar's route configuration "PORT": a service's, or one of a VirtualService host that is
 * no service of the port's egress listener (`vs`, routed by that VirtualService).
 */
export type SidecarVirtualHost =
  | { host: string; domains: string[]; svc: Service; vs?: undefined }
  | { host: string; domains: string[]; vs: ConfigEntry; svc?: undefined };

/**
 * The hosts of a VirtualService that are no service of `byName` (the listener's services with the port), and
 * whether it routes one of those services with an HTTP (or sniffed) port (route.go separateVSHostsAndServices,
 * buildSidecarVirtualHostsForVirtualService): a wildcard host counts as a service when it covers one, and routes it
 * when it is that service's VirtualService here.
 */
function splitVirtualServiceHosts(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, port: number, byName: ReadonlyMap<string, Service>): { other: string[]; routesService: boolean } {
  const other: string[] = [];
  let routesService = false;
  const httpOnPort = (s: Service): boolean => s.ports.some((p) => p.port === port && (isHttp(p.protocol) || p.protocol === 'UnsupportedProtocol'));
  for (const raw of (vs.spec.hosts ?? []) as string[]) {
    const h = ctx.qualify(raw, vs.namespace).toLowerCase();
    if (!h.startsWith('*')) {
      const s = byName.get(h);
      if (!s) other.push(h);
      else if (httpOnPort(s)) routesService = true;
      continue;
    }
    let covers = false;
    for (const [sh, s] of byName) {
      if (!hostsOverlap(sh, h)) continue;
      covers = true;
      if (!routesService && httpOnPort(s) && routingVirtualServices(ctx, scope, s.hostname, port).includes(vs)) routesService = true;
    }
    if (!covers) other.push(h);
  }
  return { other, routesService };
}

const sidecarVhostsMemo = new WeakMap<PushContext, Map<string, SidecarVirtualHost[]>>();

/**
 * The virtual hosts of a sidecar's route configuration "PORT", in order, with their domains (istiod 1.29
 * BuildSidecarOutboundVirtualHosts). First the hosts of the listener's VirtualServices that are no service of the
 * listener on this port — on the port of the services the VirtualService routes, or on port 80 when it routes none
 * (istiod's "port 80 hack": an alias like `details.example.com`, or an external host without a ServiceEntry,
 * is routed on port 80) — each `HOST:PORT` with the one domain HOST; then one per service. A name already used is
 * skipped, and a domain an earlier virtual host has is dropped (Envoy rejects duplicates; dedupeDomains), as is a
 * generated short form that is another service's hostname; a virtual host left without domains is left out.
 */
export function sidecarVirtualHosts(ctx: PushContext, scope: ProxyScope, port: number): SidecarVirtualHost[] {
  let memo = sidecarVhostsMemo.get(ctx);
  if (!memo) sidecarVhostsMemo.set(ctx, (memo = new Map()));
  const k = `${scope.namespace}|${scope.sidecar ?? ''}|${JSON.stringify(scope.labels)}|${port}`;
  const hit = memo.get(k);
  if (hit) return hit;
  const sc = sidecarScope(ctx, scope);
  const listener = egressListenerFor(sc, port);
  const byName = new Map<string, Service>();
  for (const s of listener ? listener.services : sc.catchAllServices) {
    if (s.ports.some((p) => p.port === port)) byName.set(s.hostname.toLowerCase(), s);
  }
  const services = sidecarRouteServices(ctx, scope, port);
  const known = new Set(services.map((s) => s.hostname));
  const names = new Set<string>();
  const used = new Set<string>();
  const keep = (domains: readonly string[], alt: readonly string[]): string[] => {
    const out: string[] = [];
    for (const d of domains) {
      const lower = d.toLowerCase();
      if (used.has(lower) || (alt.includes(d) && known.has(d))) continue;
      used.add(lower);
      out.push(d);
    }
    return out;
  };
  const out: SidecarVirtualHost[] = [];
  for (const vs of listenerVirtualServices(sc, port)) {
    const { other, routesService } = splitVirtualServiceHosts(ctx, scope, vs, port, byName);
    if (other.length === 0 || (!routesService && port !== 80)) continue;
    if (buildHttpRoutes({ ctx, scope, port, gatewayNames: MESH_GATEWAY }, vs).length === 0) continue;
    for (const host of other) {
      if (names.has(`${host}:${port}`)) continue;
      names.add(`${host}:${port}`);
      const domains = keep([host], []);
      if (domains.length > 0) out.push({ host, domains, vs });
    }
  }
  for (const svc of services) {
    if (names.has(`${svc.hostname}:${port}`)) continue;
    names.add(`${svc.hostname}:${port}`);
    const { domains, alt } = virtualHostDomains(svc, scope.namespace, ctx.data.mesh.domainSuffix);
    const kept = keep(domains, alt);
    if (kept.length > 0) out.push({ host: svc.hostname, domains: kept, svc });
  }
  memo.set(k, out);
  return out;
}

/** A VirtualService host's own virtual host: that VirtualService's routes for the port. */
function virtualServiceHostVirtualHost(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, host: string, port: number, domains: string[]): ProtoObject {
  return { name: `${host}:${port}`, domains, routes: buildHttpRoutes({ ctx, scope, port, gatewayNames: MESH_GATEWAY }, vs), include_request_attempt_count: true };
}

/**
 * What a virtual host of a sidecar route configuration reads (its cache inputs): a service's route inputs, or the
 * VirtualService with its delegates and destinations; and its domains, which depend on the other virtual hosts.
 */
export function sidecarVirtualHostInputs(ctx: PushContext, scope: ProxyScope, v: SidecarVirtualHost, port: number): string {
  const own = v.svc ? hostRouteInputs(ctx, scope, v.svc.hostname, port) : routeDependencies(ctx, scope, v.vs).join('\n');
  return `${own}\n${v.domains.join(',')}`;
}

/** Istio's DefaultMaxDirectResponseBodySizeBytes (1 MiB, what its webhook validates), on every route configuration. */
export const MAX_DIRECT_RESPONSE_BODY = { value: 1024 * 1024 };

/**
 * What follows the virtual hosts in a sidecar's RouteConfiguration (fields 7, 11, 14, after name 1 and
 * virtual_hosts 2): istiod 1.29's BuildSidecarOutboundHTTPRouteConfig.
 */
const SIDECAR_ROUTE_TAIL = { validate_clusters: { value: false }, max_direct_response_body_size_bytes: MAX_DIRECT_RESPONSE_BODY, ignore_port_in_host_matching: true };

/**
 * A sidecar's route configuration "PORT" as RouteConfiguration bytes, assembled from cached encoded virtual hosts:
 * byte for byte what encoding buildRouteConfiguration's object gives (fields in number order: name, the virtual
 * hosts, then the tail). Only the catch-all host and the hosts whose inputs changed are encoded.
 */
export function encodeSidecarRouteConfiguration(ctx: PushContext, scope: ProxyScope, name: string): Uint8Array | undefined {
  const port = Number(name);
  if (scope.generator === 'grpc' || !Number.isInteger(port)) return undefined;
  const VH = messageType('envoy.config.route.v3.VirtualHost');
  const RC = messageType('envoy.config.route.v3.RouteConfiguration');
  // The group: what every virtual host of this configuration reads about the proxy (and the mesh config).
  const group = `${scope.generator}|${scope.namespace}|${JSON.stringify(scope.labels)}|${port}|${meshDigest(ctx.data.mesh)}${scope.drLabels ? `|${JSON.stringify(scope.drLabels)}` : ''}`;
  const parts: Uint8Array[] = [encodeMessage(RC, { name }, `RouteConfiguration ${name}`)];
  for (const v of sidecarVirtualHosts(ctx, scope, port)) {
    const inputs = sidecarVirtualHostInputs(ctx, scope, v, port);
    const key = v.svc ? v.host : `vs ${v.host}`;
    let bytes = vhostCache.get(group, key, inputs);
    if (!bytes) {
      const vh = v.svc ? virtualHost(ctx, scope, v.svc, port, v.domains) : virtualServiceHostVirtualHost(ctx, scope, v.vs, v.host, port, v.domains);
      bytes = encodeMessage(VH, vh, `RouteConfiguration ${name} virtual host ${v.host}:${port}`);
      vhostCache.set(group, key, inputs, bytes);
    }
    parts.push(lengthDelimited(2, bytes));
  }
  parts.push(lengthDelimited(2, encodeMessage(VH, catchAllVirtualHost(ctx, scope))));
  parts.push(encodeMessage(RC, SIDECAR_ROUTE_TAIL));
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
  const vhosts = sidecarVirtualHosts(ctx, scope, port).map((v) => v.svc
    ? virtualHost(ctx, scope, v.svc, port, v.domains)
    : virtualServiceHostVirtualHost(ctx, scope, v.vs, v.host, port, v.domains));
  vhosts.push(catchAllVirtualHost(ctx, scope));
  return { '@type': ROUTE_TYPE, name, virtual_hosts: vhosts, ...SIDECAR_ROUTE_TAIL };
}
