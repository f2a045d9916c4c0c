/**
 * Router proxies (Istio gateways): Gateway servers → listeners, filter chains and route configurations, as
 * istio pilot/pkg/networking/core/gateway.go builds them.
 *
 * - One listener `0.0.0.0_PORT` (or `BIND_PORT`) per server port, binding for real; servers on one port become
 *   filter chains (TLS ones matched by SNI, with a tls_inspector).
 * - HTTP servers: HCM with RDS `http.PORT`; HTTPS (SIMPLE/MUTUAL termination): DownstreamTlsContext with the
 *   certificate from SDS `kubernetes://credentialName` over ADS (files when serverCertificate/privateKey are given)
 *   and RDS `https.PORT.PORTNAME.GATEWAY.NAMESPACE` (gatewayRDSRouteName); httpsRedirect sets require_tls.
 * - ISTIO_MUTUAL (HTTPS or TLS): terminated with the gateway's own workload certificate (SDS `default`) and client
 *   certificates required and checked against the mesh roots (SDS `ROOTCA`; subjectAltNames when given) —
 *   istiod's BuildListenerTLSContext; TLS servers with it advertise Istio's peer-exchange ALPN too.
 * - TCP servers: tcp_proxy from the VirtualService `tcp` route bound to the gateway; TLS PASSTHROUGH servers: one
 *   filter chain per `tls` route, matched on its sniHosts; AUTO_PASSTHROUGH servers: one chain per service port
 *   (and subset) matched on the SNI `outbound_.PORT_.SUBSET_.HOST`, to the SNI-DNAT cluster (sni-dnat.ts).
 * - Route configurations: a virtual host per VirtualService host bound to the gateway (`gateways: [ns/name]`) that
 *   matches a server host; several VirtualServices for one host are merged, catch-all routes moved last
 *   (route.SortVHostRoutes); no virtual host at all gives istiod's 404 `blackhole:PORT`.
 */
import { createHash } from 'node:crypto';
import type { ProtoObject } from '../../src/proto/encode.js';
import { DOWNSTREAM_TLS_CONTEXT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import { exportedTo, hostMatches } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { parseProtocol, isHttp } from '../../src/model/protocol.js';
import { WILDCARD_ADDRESS } from '../../src/model/constants.js';
import { listenerName } from './names.js';
import { SIDECAR_HTTP_FILTERS, TLS_INSPECTOR, TRANSPORT_SOCKET_CONNECT_TIMEOUT, hcm, rds, tcpProxyTo } from './listener-builder.js';
import { buildRbacHttpFilters } from './security/authz-builder.js';
import { securityHttpFilters } from './security/jwt-builder.js';
import { buildHttpRoutes, isCatchAll, routeDependencies, type RouteContext } from './http-route.js';
import { MAX_DIRECT_RESPONSE_BODY } from './route-builder.js';
import { tcpRouteOf, tlsRouteOf } from './tcp-route.js';
import { autoPassthroughChains, isAutoPassthrough, sniHostsOf } from './sni-dnat.js';
import { INBOUND_ISTIO_ALPN } from './security/inbound-mtls.js';
import { ADS_SDS, ROOT_SECRET, WORKLOAD_SECRET } from './security/tls-context.js';

const SDS_PREFIX = 'kubernetes://';
const ADS_SDS_CONFIG = { ads: {}, resource_api_version: 'V3' };

interface GatewayServer { gateway: ConfigEntry; server: any; index: number }

function digest(parts: string[]): string {
  return createHash('sha1').update(parts.join('\n')).digest('base64url').slice(0, 20);
}

function gatewaysOf(ctx: PushContext, scope: ProxyScope): ConfigEntry[] {
  return (scope.gateways ?? []).flatMap((k) => {
    const [ns, name] = k.split('/') as [string, string];
    const g = ctx.gateway(ns, name);
    return g ? [g] : [];
  });
}

function serversByPort(ctx: PushContext, scope: ProxyScope): Map<string, GatewayServer[]> {
  const out = new Map<string, GatewayServer[]>();
  for (const gateway of gatewaysOf(ctx, scope)) {
    ((gateway.spec.servers ?? []) as any[]).forEach((server, index) => {
      const name = listenerName(server.bind || WILDCARD_ADDRESS, server.port.number);
      let l = out.get(name);
      if (!l) out.set(name, (l = []));
      l.push({ gateway, server, index });
    });
  }
  return out;
}

function serverKind(server: any): 'http' | 'https' | 'tcp' | 'passthrough' | 'auto-passthrough' {
  const p = parseProtocol(server.port.protocol ?? '');
  if (isHttp(p)) return 'http';
  if (p === 'HTTPS' || p === 'TLS') {
    const mode = server.tls?.mode ?? 'SIMPLE';
    if (mode === 'AUTO_PASSTHROUGH') return 'auto-passthrough';
    if (mode === 'PASSTHROUGH') return 'passthrough';
    return p === 'HTTPS' ? 'https' : 'tcp';
  }
  return 'tcp';
}

/** gatewayRDSRouteName. */
export function gatewayRouteName(gs: GatewayServer): string {
  const bind = gs.server.bind ? `.${gs.server.bind}` : '';
  const port = gs.server.port.number;
  if (serverKind(gs.server) === 'http') return `http.${port}${bind}`;
  return `https.${port}.${gs.server.port.name}.${gs.gateway.name}.${gs.gateway.namespace}${bind}`;
}

/** Server hosts are `[NAMESPACE/]HOST`; the namespace limits which VirtualServices may bind. */
function serverHosts(server: any): Array<{ ns: string; host: string }> {
  return ((server.hosts ?? []) as string[]).map((h) => {
    const i = h.indexOf('/');
    return i < 0 ? { ns: '*', host: h } : { ns: h.slice(0, i), host: h.slice(i + 1) };
  });
}

/** VirtualServices bound to a gateway (`gateways` naming it), exported to the gateway's namespace. */
function boundVirtualServices(ctx: PushContext, gateway: ConfigEntry): ConfigEntry[] {
  const key = `${gateway.namespace}/${gateway.name}`;
  return ctx.data.virtualServices.filter((vs) =>
    ((vs.spec.gateways ?? []) as string[]).some((g) => (g.includes('/') ? g : `${vs.namespace}/${g}`) === key) &&
    exportedTo(vs.spec.exportTo, vs.namespace, gateway.namespace));
}

/** The VirtualService hosts a server admits (the more specific of the two names when both are wildcards). */
function admittedHosts(ctx: PushContext, gs: GatewayServer, vs: ConfigEntry): string[] {
  const out: string[] = [];
  for (const h of (vs.spec.hosts ?? []) as string[]) {
    const host = ctx.qualify(h, vs.namespace);
    for (const sh of serverHosts(gs.server)) {
      if (sh.ns !== '*' && (sh.ns === '.' ? gs.gateway.namespace : sh.ns) !== vs.namespace) continue;
      if (hostMatches(sh.host, host)) out.push(host);
      else if (hostMatches(host, sh.host)) out.push(sh.host);
    }
  }
  return [...new Set(out)];
}

// ---------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------

export function planGatewayListeners(ctx: PushContext, scope: ProxyScope): Array<{ name: string; key: string }> {
  const out: Array<{ name: string; key: string }> = [];
  for (const [name, servers] of [...serversByPort(ctx, scope)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const parts = servers.map((s) => `${s.gateway.namespace}/${s.gateway.name}@${s.gateway.version}#${s.index}`);
    // TCP/TLS servers read bound VirtualServices' tcp/tls routes; AUTO_PASSTHROUGH ones the services and subsets.
    for (const s of servers) {
      if (isAutoPassthrough(s.server)) {
        for (const c of autoPassthroughChains(ctx, scope, sniHostsOf(s.server))) parts.push(`${c.sni}@${c.svc.version}`);
        continue;
      }
      if (serverKind(s.server) === 'http' || serverKind(s.server) === 'https') continue;
      for (const vs of boundVirtualServices(ctx, s.gateway)) parts.push(`${vs.namespace}/${vs.name}@${vs.version}`);
    }
    parts.push(JSON.stringify(scope.labels), scope.namespace);
    out.push({ name, key: digest(parts) });
  }
  return out;
}

/** ALPN istiod offers on a TLS (non-HTTP) server terminating ISTIO_MUTUAL (util.ALPNDownstreamWithMxc). */
const ISTIO_MUTUAL_TCP_ALPN = ['istio-peer-exchange', 'h2', 'http/1.1'];

function downstreamTls(tls: any, h2: boolean): ProtoObject {
  const common: ProtoObject = { alpn_protocols: h2 ? ['h2', 'http/1.1'] : ['http/1.1'] };
  if (tls.mode === 'ISTIO_MUTUAL') {
    // The gateway's own workload certificate; clients must present one from the mesh CA (authn ApplyToCommonTLSContext).
    const sans = (tls.subjectAltNames ?? []) as string[];
    common.tls_certificate_sds_secret_configs = [{ name: WORKLOAD_SECRET, sds_config: ADS_SDS }];
    common.combined_validation_context = {
      default_validation_context: sans.length ? { match_typed_subject_alt_names: sans.map((exact) => ({ san_type: 'URI', matcher: { exact } })) } : {},
      validation_context_sds_secret_config: { name: ROOT_SECRET, sds_config: ADS_SDS },
    };
    if (!h2) common.alpn_protocols = ISTIO_MUTUAL_TCP_ALPN;
    return { name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM_TLS_CONTEXT_TYPE, common_tls_context: common, require_client_certificate: { value: true } } };
  }
  // OPTIONAL_MUTUAL validates a client certificate when one is presented but does not require it (istiod).
  const validate = tls.mode === 'MUTUAL' || tls.mode === 'OPTIONAL_MUTUAL';
  if (tls.credentialName) {
    const name = SDS_PREFIX + tls.credentialName;
    common.tls_certificate_sds_secret_configs = [{ name, sds_config: ADS_SDS_CONFIG }];
    if (validate) {
      common.combined_validation_context = {
        default_validation_context: {},
        validation_context_sds_secret_config: { name: `${name}-cacert`, sds_config: ADS_SDS_CONFIG },
      };
    }
  } else {
    if (tls.serverCertificate && tls.privateKey) {
      common.tls_certificates = [{ certificate_chain: { filename: tls.serverCertificate }, private_key: { filename: tls.privateKey } }];
    }
    if (validate && tls.caCertificates) common.validation_context = { trusted_ca: { filename: tls.caCertificates } };
  }
  if (tls.minProtocolVersion || tls.maxProtocolVersion) {
    common.tls_params = {
      tls_minimum_protocol_version: tls.minProtocolVersion ?? undefined,
      tls_maximum_protocol_version: tls.maxProtocolVersion ?? undefined,
    };
  }
  const ctx: ProtoObject = { '@type': DOWNSTREAM_TLS_CONTEXT_TYPE, common_tls_context: common };
  if (tls.mode === 'MUTUAL') ctx.require_client_certificate = { value: true };
  return { name: 'envoy.transport_sockets.tls', typed_config: ctx };
}

/**
 * A gateway's HCM (istiod buildGatewayConnectionManager): RDS; the downstream peer is the client
 * (useRemoteAddress); the client certificate of an mTLS connection is forwarded upstream in
 * x-forwarded-client-cert, a client-sent one never (SANITIZE_SET, istiod's default without a gatewayTopology).
 */
function gatewayHcm(statPrefix: string, route: string, filters: ProtoObject[]): ProtoObject {
  const f = hcm(statPrefix, rds(route), filters);
  const tc = f.typed_config as ProtoObject;
  tc.use_remote_address = { value: true };
  tc.server_name = 'istio-envoy';
  tc.forward_client_cert_details = 'SANITIZE_SET';
  tc.set_current_client_cert_details = { subject: { value: true }, cert: true, dns: true, uri: true };
  return f;
}

function sniNames(server: any): string[] | undefined {
  const hosts = serverHosts(server).map((h) => h.host);
  return hosts.includes('*') ? undefined : hosts;
}

export function buildGatewayListener(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject | undefined {
  const servers = serversByPort(ctx, scope).get(name);
  if (!servers?.length) return undefined;
  const first = servers[0]!.server;
  const chains: ProtoObject[] = [];
  let tlsInspector = false;
  const seenRoutes = new Set<string>();
  const seenSni = new Set<string>();
  // AuthorizationPolicies selecting the gateway workload apply to its HTTP traffic (istiod: RBAC before the rest).
  const labels = scope.securityLabels ?? {};
  const httpFilters = [...securityHttpFilters(ctx, scope.namespace, labels, buildRbacHttpFilters(ctx, scope.namespace, labels, 'envoy').filters), ...SIDECAR_HTTP_FILTERS];
  for (const gs of servers) {
    const kind = serverKind(gs.server);
    const statPrefix = `outbound_${name}`;
    if (kind === 'http') {
      const route = gatewayRouteName(gs);
      if (seenRoutes.has(route)) continue; // HTTP servers on one port share one route configuration
      seenRoutes.add(route);
      chains.push({ filters: [gatewayHcm(statPrefix, route, httpFilters)] });
    } else if (kind === 'https') {
      tlsInspector = true;
      const sni = sniNames(gs.server);
      chains.push({
        filter_chain_match: sni ? { server_names: sni } : undefined,
        transport_socket: downstreamTls(gs.server.tls ?? {}, true),
        filters: [gatewayHcm(statPrefix, gatewayRouteName(gs), httpFilters)],
      });
    } else if (kind === 'auto-passthrough') {
      tlsInspector = true;
      // No TLS context: the client's Istio mTLS goes through to the workload; Istio ALPNs required (gateway.go).
      for (const c of autoPassthroughChains(ctx, scope, sniHostsOf(gs.server))) {
        if (seenSni.has(c.sni)) continue; // Envoy refuses two chains with one match
        seenSni.add(c.sni);
        chains.push({
          filter_chain_match: { server_names: [c.sni], application_protocols: INBOUND_ISTIO_ALPN },
          filters: [tcpProxyTo(c.sni, [{ cluster: c.sni, weight: 100 }])],
        });
      }
    } else if (kind === 'passthrough') {
      tlsInspector = true;
      const gwNames = new Set([`${gs.gateway.namespace}/${gs.gateway.name}`]);
      for (const vs of boundVirtualServices(ctx, gs.gateway)) {
        if (admittedHosts(ctx, gs, vs).length === 0) continue;
        for (const r of tlsRouteOf(ctx, scope, vs, gs.server.port.number, gwNames)) {
          if (r.target.length === 0) continue;
          chains.push({ filter_chain_match: { server_names: r.sniHosts }, filters: [tcpProxyTo(r.target[0]!.cluster, r.target)] });
        }
      }
    } else {
      const gwNames = new Set([`${gs.gateway.namespace}/${gs.gateway.name}`]);
      for (const vs of boundVirtualServices(ctx, gs.gateway)) {
        if (admittedHosts(ctx, gs, vs).length === 0) continue;
        const t = tcpRouteOf(ctx, scope, vs, gs.server.port.number, gwNames);
        const tls = gs.server.tls && gs.server.tls.mode !== 'PASSTHROUGH' ? downstreamTls(gs.server.tls, false) : undefined;
        if (t?.length) { chains.push({ transport_socket: tls, filters: [tcpProxyTo(t[0]!.cluster, t)] }); break; }
      }
    }
  }
  if (chains.length === 0) return undefined;
  // istiod 1.29: every chain may take 15 s to set up its transport socket; one connection accepted per event.
  for (const c of chains) c.transport_socket_connect_timeout = TRANSPORT_SOCKET_CONNECT_TIMEOUT;
  const listener: ProtoObject = {
    '@type': LISTENER_TYPE,
    name,
    address: { socket_address: { address: first.bind || WILDCARD_ADDRESS, port_value: first.port.number } },
    traffic_direction: 'OUTBOUND',
    filter_chains: chains,
    max_connections_to_accept_per_socket_event: { value: 1 },
  };
  if (tlsInspector) listener.listener_filters = [TLS_INSPECTOR];
  return listener;
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

function routeServers(ctx: PushContext, scope: ProxyScope): Map<string, GatewayServer[]> {
  const out = new Map<string, GatewayServer[]>();
  for (const servers of serversByPort(ctx, scope).values()) {
    for (const gs of servers) {
      const kind = serverKind(gs.server);
      if (kind !== 'http' && kind !== 'https') continue;
      const name = gatewayRouteName(gs);
      let l = out.get(name);
      if (!l) out.set(name, (l = []));
      l.push(gs);
    }
  }
  return out;
}

export function planGatewayRoutes(ctx: PushContext, scope: ProxyScope): Array<{ name: string; key: string }> {
  const out: Array<{ name: string; key: string }> = [];
  for (const [name, servers] of [...routeServers(ctx, scope)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const parts = [scope.namespace, JSON.stringify(scope.labels)];
    for (const gs of servers) {
      parts.push(`${gs.gateway.namespace}/${gs.gateway.name}@${gs.gateway.version}#${gs.index}`);
      for (const vs of boundVirtualServices(ctx, gs.gateway)) parts.push(...routeDependencies(ctx, scope, vs));
    }
    out.push({ name, key: digest(parts) });
  }
  return out;
}

/** istio host.Names order: non-wildcards first, longest to shortest, then alphabetically. */
function hostOrder(a: string, b: string): number {
  const wa = a.startsWith('*'), wb = b.startsWith('*');
  if (wa !== wb) return wa ? 1 : -1;
  if (a.length !== b.length) return b.length - a.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A gateway's route configuration as istiod 1.29 builds it (gateway.go buildGatewayHTTPRouteConfig): one virtual
 * host per hostname a server and a bound VirtualService share (`HOST:PORT`, the one domain HOST: the port is
 * ignored in host matching), several VirtualServices for one host appended in order, the catch-all routes last;
 * an httpsRedirect server's hosts get a TLS-only virtual host even without a VirtualService. Virtual hosts whose
 * routes are the same VirtualService's for the same gateway are collapsed into one, named after the first host in
 * istio's host order, with the others' domains (PILOT_ENABLE_ROUTE_COLLAPSE_OPTIMIZATION, on by default). Sorted
 * by name; with none, `blackhole:PORT` without routes (Envoy answers 404).
 */
export function buildGatewayRoute(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject | undefined {
  const servers = routeServers(ctx, scope).get(name);
  if (!servers?.length) return undefined;
  const port: number = servers[0]!.server.port.number;
  // By hostname: the virtual host, and where its routes came from (gateway + VirtualService, in order).
  const byHost = new Map<string, { vh: ProtoObject; sources: string[] }>();
  const built = new Map<string, ProtoObject[]>();
  for (const gs of servers) {
    const gateway = `${gs.gateway.namespace}/${gs.gateway.name}`;
    const rc: RouteContext = { ctx, scope, port: gs.server.port.number, gatewayNames: new Set([gateway]), isTls: serverKind(gs.server) === 'https' };
    const redirect = gs.server.tls?.httpsRedirect === true;
    for (const vs of boundVirtualServices(ctx, gs.gateway)) {
      const hosts = admittedHosts(ctx, gs, vs);
      if (hosts.length === 0) continue;
      const source = `${gateway}|${vs.namespace}/${vs.name}`;
      let routes = built.get(source);
      if (!routes) built.set(source, (routes = buildHttpRoutes(rc, vs)));
      if (routes.length === 0) continue;
      for (const raw of hosts) {
        const host = raw.toLowerCase();
        const had = byHost.get(host);
        if (had) {
          (had.vh.routes as ProtoObject[]).push(...routes);
          had.sources.push(source);
          if (redirect) had.vh.require_tls = 'ALL';
          continue;
        }
        const vh: ProtoObject = { name: `${host}:${port}`, domains: [host], routes: [...routes], include_request_attempt_count: true };
        if (redirect) vh.require_tls = 'ALL';
        byHost.set(host, { vh, sources: [source] });
      }
    }
    if (!redirect) continue;
    for (const { host: raw } of serverHosts(gs.server)) {
      const host = raw.toLowerCase();
      const had = byHost.get(host);
      if (had) { had.vh.require_tls = 'ALL'; continue; }
      byHost.set(host, { vh: { name: `${host}:${port}`, domains: [host], include_request_attempt_count: true, require_tls: 'ALL' }, sources: [] });
    }
  }
  // collapseDuplicateRoutes: the first host of each set of identical routes keeps them and takes the others' domains.
  const primary = new Map<string, ProtoObject>();
  const list: ProtoObject[] = [];
  for (const host of [...byHost.keys()].sort(hostOrder)) {
    const { vh, sources } = byHost.get(host)!;
    const same = `${sources.join('\n')}|${vh.require_tls ?? ''}`;
    const into = primary.get(same);
    if (into) { (into.domains as string[]).push(...(vh.domains as string[])); continue; }
    primary.set(same, vh);
    list.push(vh);
  }
  for (const vh of list) {
    const routes = vh.routes as ProtoObject[] | undefined;
    if (routes) vh.routes = [...routes.filter((r) => !isCatchAll(r)), ...routes.filter(isCatchAll)];
  }
  list.sort((a, b) => (String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0));
  if (list.length === 0) list.push({ name: `blackhole:${port}`, domains: ['*'] });
  return {
    '@type': ROUTE_TYPE, name, virtual_hosts: list, validate_clusters: { value: false },
    max_direct_response_body_size_bytes: MAX_DIRECT_RESPONSE_BODY, ignore_port_in_host_matching: true,
  };
}
