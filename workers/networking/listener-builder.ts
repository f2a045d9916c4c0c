/**
 * LDS: sidecar listeners as istiod builds them (istio pilot/pkg/networking/core/listener*.go):
 * `virtualOutbound` (15001) and `virtualInbound` (15006) when traffic is captured; an outbound listener per HTTP
 * port (`0.0.0.0_PORT`, RDS route "PORT") and per TCP service (`CLUSTERIP_PORT`, tcp_proxy). With interception
 * mode NONE, outbound listeners bind their real port on 127.0.0.1 and there are no virtual listeners.
 * A Sidecar shapes both sides (listener.go buildSidecarOutboundListeners, listener_inbound.go
 * buildInboundChainConfigs): an egress listener with a port gets a listener on that port for its own hosts only
 * (built before the catch-all listener, which then leaves those listeners alone); ingress listeners replace the
 * service ports on the inbound side — a real listener `BIND_PORT` when captured with NONE, else virtualInbound
 * filter chains — delivering to `inbound|PORT||` (the defaultEndpoint, cluster-builder.ts).
 * Proxyless gRPC gets an ApiListener per requested HOST:PORT (pilot/pkg/networking/grpcgen/lds.go).
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration } from '../../src/proto/encode.js';
import {
  CORS_TYPE, FAULT_TYPE, GRPC_STATS_TYPE, HCM_TYPE, HTTP_INSPECTOR_TYPE, LISTENER_TYPE, ORIGINAL_DST_TYPE, ROUTER_TYPE, TCP_PROXY_TYPE,
  TLS_INSPECTOR_TYPE, UUID_REQUEST_ID_TYPE,
} from '../../src/proto/type-urls.js';
import { CORS_FILTER, FAULT_FILTER } from './http-route.js';
import { serviceFor, sidecarScope, type CaptureMode } from './sidecar-scope.js';
import { tcpRouteTarget, tlsRouteChains, type TcpTarget } from './tcp-route.js';
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import { isGlobalUnicastIp, type ProxyScope } from '../../src/model/scope.js';
import type { Service, ServicePort } from '../../src/model/service.js';
import { isHttp, type Protocol } from '../../src/model/protocol.js';
import {
  BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, LOCALHOST_ADDRESS, PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND_LISTENER,
  VIRTUAL_INBOUND_PORT, VIRTUAL_OUTBOUND_LISTENER, VIRTUAL_OUTBOUND_PORT, WILDCARD_ADDRESS,
} from '../../src/model/constants.js';
import { clusterName, inboundClusterName, listenerName, parseHostPort } from './names.js';
import { visibleTo } from './visibility.js';
import { ISTIO_HTTP_ALPN, securedInboundChains } from './security/inbound-mtls.js';

const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const FAULT_HTTP_FILTER = { name: FAULT_FILTER, typed_config: { '@type': FAULT_TYPE } };
const CORS_HTTP_FILTER = { name: CORS_FILTER, typed_config: { '@type': CORS_TYPE } };
/** istiod's grpc_stats filter (upstream Envoy's; per-method stats off, gRPC message counts in filter state). */
const GRPC_STATS_HTTP_FILTER = { name: 'envoy.filters.http.grpc_stats', typed_config: { '@type': GRPC_STATS_TYPE, emit_filter_state: true, stats_for_all_methods: { value: false } } };
/**
 * The HCM filters of sidecars (inbound and outbound) and gateways as istiod 1.29 orders them (grpc_stats, fault,
 * cors, router; istio-proxy's own istio.metadata_exchange and istio.alpn are left out: upstream Envoy has
 * neither); per-route configs switch fault and cors on.
 */
export const SIDECAR_HTTP_FILTERS = [GRPC_STATS_HTTP_FILTER, FAULT_HTTP_FILTER, CORS_HTTP_FILTER, ROUTER_FILTER];
/** Proxyless gRPC implements the fault filter (grpc-js-xds), not CORS. */
const GRPC_HTTP_FILTERS = [FAULT_HTTP_FILTER, ROUTER_FILTER];

export interface ListenerPlan {
  name: string;
  kind: 'http' | 'tcp' | 'virtualOutbound' | 'virtualInbound' | 'inbound';
  address: string;
  port: number;
  /** For tcp listeners: the service the listener proxies to. */
  service?: Service;
  /** For tcp listeners: the VirtualServices of the egress listener that built it (tcp and tls routes). */
  virtualServices?: readonly ConfigEntry[];
  /** For tcp listeners: the service port of the cluster (a port-specific egress listener may listen on another). */
  servicePort?: number;
  /**
   * For a wildcard tcp listener of TLS services without an address: every such service on the port, each chosen by
   * its SNI (istiod buildSidecarOutboundTLSFilterChainOpts); anything else on the port passes through.
   */
  sniServices?: Array<{ service: Service; port: number }>;
  /** Outbound listeners: whether Envoy binds the port for real (interception NONE or captureMode NONE). */
  bindToPort?: boolean;
  /** For http listeners: the RDS route name. */
  routeName?: string;
  /** For inbound listeners (Sidecar ingress bound for real): the chain they serve. */
  inbound?: InboundChainConfig;
}

/** One inbound port: a service port of the workload, or a Sidecar ingress listener (istiod inboundChainConfig). */
export interface InboundChainConfig {
  bind: string;
  targetPort: number;
  protocol: Protocol;
  cluster: string;
  /** The route decorator's operation (`HOST:PORT/*`). */
  operation: string;
  /** A real listener of its own instead of a virtualInbound filter chain. */
  bindToPort: boolean;
}

function socketAddress(address: string, port: number): ProtoObject {
  return { socket_address: { address, port_value: port } };
}

/**
 * What istiod 1.29 sets on every Envoy HCM (buildHTTPConnectionManager): 100-continue and WebSocket upgrades
 * passed through, no stream idle timeout (Envoy's default would cut idle streams after 5 min), paths normalized
 * with escaped slashes kept, UUID request IDs that also drive trace sampling.
 */
/** How long a filter chain's transport socket may take to connect (istiod 1.29: 15 s on every chain it builds). */
export const TRANSPORT_SOCKET_CONNECT_TIMEOUT = duration(15_000);

/** The tls_inspector as istiod configures it (a 512-byte first read). */
export const TLS_INSPECTOR: ProtoObject = { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR_TYPE, initial_read_buffer_size: { value: 512 } } };
const HTTP_INSPECTOR: ProtoObject = { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': HTTP_INSPECTOR_TYPE } };
/** What the http_inspector reports for plaintext HTTP: the match of istiod's plaintext HTTP chains. */
const PLAIN_HTTP_MATCH = { transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] };

const HCM_DEFAULTS: ProtoObject = {
  proxy_100_continue: true,
  upgrade_configs: [{ upgrade_type: 'websocket' }],
  stream_idle_timeout: duration(0),
  normalize_path: { value: true },
  request_id_extension: { typed_config: { '@type': UUID_REQUEST_ID_TYPE, use_request_id_for_trace_sampling: { value: true } } },
  path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
};

export function hcm(statPrefix: string, route: ProtoObject, filters: ProtoObject[] = [ROUTER_FILTER]): ProtoObject {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM_TYPE,
      stat_prefix: statPrefix,
      ...route,
      http_filters: filters,
      use_remote_address: { value: false },
      ...HCM_DEFAULTS,
    },
  };
}

export function rds(routeName: string): ProtoObject {
  return {
    rds: {
      config_source: { ads: {}, initial_fetch_timeout: duration(0), resource_api_version: 'V3' },
      route_config_name: routeName,
    },
  };
}

function tcpProxy(statPrefix: string, cluster: string): ProtoObject {
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: statPrefix, cluster } };
}

/** tcp_proxy to one cluster or weighted clusters (istio networkfilter.go buildOutboundNetworkFiltersWithWeightedClusters). */
export function tcpProxyTo(statPrefix: string, target: TcpTarget): ProtoObject {
  if (target.length === 1) return tcpProxy(statPrefix, target[0]!.cluster);
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: {
      '@type': TCP_PROXY_TYPE, stat_prefix: statPrefix,
      weighted_clusters: { clusters: target.map((t) => ({ name: t.cluster, weight: t.weight })) },
    },
  };
}

/** istiod getBindToPort: a listener's captureMode wins over the proxy's interception mode unless DEFAULT. */
function bindsToPort(mode: CaptureMode, scope: ProxyScope): boolean {
  return mode === 'DEFAULT' ? scope.interception === 'NONE' : mode === 'NONE';
}

/**
 * The workload's inbound ports (istio buildInboundChainConfigs): the Sidecar's ingress listeners when it has any,
 * else the ports of the services selecting the workload — none in interception mode NONE, where binding the
 * application's own ports would keep the application from starting.
 */
export function inboundChainConfigs(ctx: PushContext, scope: ProxyScope): InboundChainConfig[] {
  const sc = sidecarScope(ctx, scope);
  if (sc.ingress.length > 0) {
    // Without a bind, the instance IP when it is a global unicast address, else the wildcard (getSidecarInboundBindIPs).
    const defaultBind = scope.instanceIp && isGlobalUnicastIp(scope.instanceIp) ? scope.instanceIp : WILDCARD_ADDRESS;
    const synthetic = `${sc.sidecar!.name}.${sc.sidecar!.namespace}`;
    return sc.ingress.map((l) => ({
      bind: l.bind ?? defaultBind,
      targetPort: l.port.number,
      protocol: l.port.protocol,
      cluster: inboundClusterName(l.port.number),
      operation: `${synthetic}:${l.port.number}/*`,
      bindToPort: bindsToPort(l.captureMode, scope),
    }));
  }
  if (scope.interception === 'NONE') return [];
  return scope.inbound.map((inst) => ({
    bind: WILDCARD_ADDRESS,
    targetPort: inst.targetPort,
    protocol: inst.protocol,
    cluster: inboundClusterName(inst.targetPort),
    operation: `${inst.hostname}:${inst.servicePort}/*`,
    bindToPort: false,
  }));
}

const listenerPlans = new WeakMap<PushContext, Map<string, ListenerPlan[]>>();

/**
 * Which listeners a sidecar gets; cheap, so the planner can derive cache keys without building anything. Memoised
 * per PushContext and scope: LDS and RDS planning and every listener build read the same plan.
 */
export function planSidecarListeners(ctx: PushContext, scope: ProxyScope): ListenerPlan[] {
  let perCtx = listenerPlans.get(ctx);
  if (!perCtx) listenerPlans.set(ctx, (perCtx = new Map()));
  const key = JSON.stringify(scope);
  let plans = perCtx.get(key);
  if (!plans) perCtx.set(key, (plans = computeSidecarListeners(ctx, scope)));
  return plans;
}

function computeSidecarListeners(ctx: PushContext, scope: ProxyScope): ListenerPlan[] {
  const bindLocal = scope.interception === 'NONE';
  const base = bindLocal ? LOCALHOST_ADDRESS : WILDCARD_ADDRESS;
  const sc = sidecarScope(ctx, scope);
  const plans = new Map<string, ListenerPlan>();
  // Egress listeners with a port come first, each for its own hosts (istio buildSidecarOutboundListeners).
  for (const el of sc.egressListeners) {
    const port = el.port.number;
    const bindToPort = bindsToPort(el.captureMode, scope);
    const bind = el.bind ?? (bindToPort ? LOCALHOST_ADDRESS : undefined);
    if (isHttp(el.port.protocol)) {
      const address = bind ?? WILDCARD_ADDRESS;
      const name = listenerName(address, port);
      if (!plans.has(name)) plans.set(name, { name, kind: 'http', address, port, bindToPort, routeName: String(port) });
      continue;
    }
    for (const svc of el.services) {
      // The listener's services have its port, and only that one (sidecar.go serviceMatchingListenerPort).
      const sp = svc.ports.find((p) => p.port === port);
      if (!sp || sp.protocol === 'UDP') continue;
      const address = bind ?? (svc.address || WILDCARD_ADDRESS);
      const name = listenerName(address, port);
      if (!plans.has(name)) plans.set(name, { name, kind: 'tcp', address, port, service: svc, servicePort: sp.port, bindToPort, virtualServices: el.virtualServices });
    }
  }
  // The catch-all egress listener never adds to a listener a port-specific one built ("locked" in istiod).
  const locked = new Set(plans.keys());
  const tcp: Array<[Service, ServicePort]> = [];
  for (const svc of sc.catchAllServices) {
    for (const p of svc.ports) {
      if (p.protocol === 'UDP') continue;
      if (isHttp(p.protocol)) {
        const name = listenerName(base, p.port);
        if (!plans.has(name)) plans.set(name, { name, kind: 'http', address: base, port: p.port, bindToPort: bindLocal, routeName: String(p.port) });
      } else tcp.push([svc, p]);
    }
  }
  for (const [svc, p] of tcp) {
    // TCP services listen on their ClusterIP so they can share a port with others; without one (or when the
    // proxy binds real ports) they take the wildcard/local address unless an HTTP listener holds it.
    const address = !bindLocal && svc.address ? svc.address : base;
    const name = listenerName(address, p.port);
    if (!bindLocal && !svc.address && (p.protocol === 'TLS' || p.protocol === 'HTTPS') && !locked.has(name)) {
      // TLS without an address on the captured wildcard listener: services share the port by SNI, and connections
      // for anything else pass through (before, the first such service took every connection to the port).
      // Proxies binding real ports (interception NONE) keep one service per port.
      const had = plans.get(name);
      if (!had) plans.set(name, { name, kind: 'tcp', address, port: p.port, service: svc, servicePort: p.port, bindToPort: bindLocal, virtualServices: sc.catchAllVirtualServices, sniServices: [{ service: svc, port: p.port }] });
      else had.sniServices?.push({ service: svc, port: p.port });
      continue;
    }
    if (!plans.has(name) && !locked.has(name)) {
      plans.set(name, { name, kind: 'tcp', address, port: p.port, service: svc, servicePort: p.port, bindToPort: bindLocal, virtualServices: sc.catchAllVirtualServices });
    }
  }
  const out = [...plans.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const inbound = inboundChainConfigs(ctx, scope)
    .filter((cc) => cc.bindToPort)
    .map((cc): ListenerPlan => ({ name: listenerName(cc.bind, cc.targetPort), kind: 'inbound', address: cc.bind, port: cc.targetPort, inbound: cc }))
    .filter((p) => !plans.has(p.name));
  out.push(...inbound);
  if (!bindLocal) {
    out.push({ name: VIRTUAL_OUTBOUND_LISTENER, kind: 'virtualOutbound', address: WILDCARD_ADDRESS, port: VIRTUAL_OUTBOUND_PORT });
    out.push({ name: VIRTUAL_INBOUND_LISTENER, kind: 'virtualInbound', address: WILDCARD_ADDRESS, port: VIRTUAL_INBOUND_PORT });
  }
  return out;
}

function inboundChain(cc: InboundChainConfig): ProtoObject {
  const cluster = cc.cluster;
  const name = listenerName(cc.bind, cc.targetPort);
  if (!isHttp(cc.protocol)) {
    return { name, filter_chain_match: { destination_port: { value: cc.targetPort } }, filters: [tcpProxy(cluster, cluster)] };
  }
  const routeConfig = {
    name: cluster,
    virtual_hosts: [{
      name: `inbound|http|${cc.targetPort}`,
      domains: ['*'],
      routes: [{
        name: 'default',
        match: { prefix: '/' },
        // istiod 1.29 retries an inbound request the workload reset before reading it (a restarting app).
        route: {
          cluster, timeout: duration(0), retry_policy: { retry_on: 'reset-before-request', num_retries: { value: 2 } },
          max_stream_duration: { max_stream_duration: duration(0), grpc_timeout_header_max: duration(0) },
        },
        decorator: { operation: cc.operation },
      }],
    }],
    validate_clusters: { value: false },
  };
  const manager = hcm(`inbound_${name}`, { route_config: routeConfig }, SIDECAR_HTTP_FILTERS);
  // Inbound (istiod buildSidecarInboundHTTPOpts): the server header istio-envoy, and the peer's certificate details
  // appended to x-forwarded-client-cert.
  Object.assign(manager.typed_config as ProtoObject, {
    server_name: 'istio-envoy', forward_client_cert_details: 'APPEND_FORWARD',
    set_current_client_cert_details: { subject: { value: true }, dns: true, uri: true },
  });
  return { name, filter_chain_match: { destination_port: { value: cc.targetPort } }, filters: [manager] };
}

/** One inbound port's chains under PeerAuthentication and AuthorizationPolicy (workers/networking/security). */
function securedChains(ctx: PushContext, scope: ProxyScope, cc: InboundChainConfig): ProtoObject[] {
  return securedInboundChains(ctx, scope.namespace, scope.securityLabels ?? {}, cc.targetPort, inboundChain(cc), scope.sds === true).chains;
}

/**
 * virtualInbound's chains for ports no service declares (istiod buildInboundPassthroughFilterChains), under the
 * workload-wide PeerAuthentication mode and the AuthorizationPolicies: `virtualInbound-catchall-http` (an HCM with
 * the HTTP RBAC filters, routing to InboundPassthroughCluster) for what the http_inspector sees as HTTP, and
 * `virtualInbound` (network RBAC, tcp_proxy) for the rest. Matches as istiod's: plaintext by raw_buffer (and
 * http/1.1 or h2c), Istio mTLS by TLS and the peer's ALPN (istio-http/* for HTTP, istio/istio-peer-exchange for
 * TCP), the application's own TLS passed through unless STRICT.
 */
function passthroughInboundChains(ctx: PushContext, scope: ProxyScope): ProtoObject[] {
  const cc: InboundChainConfig = {
    bind: WILDCARD_ADDRESS, targetPort: 0, protocol: 'HTTP', cluster: INBOUND_PASSTHROUGH_CLUSTER, operation: ':0/*', bindToPort: false,
  };
  const httpBase = { ...inboundChain(cc), name: 'virtualInbound-catchall-http', filter_chain_match: {} };
  const tcpBase = { name: 'virtualInbound', filter_chain_match: {}, filters: [tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER)] };
  const labels = scope.securityLabels ?? {};
  const sds = scope.sds === true;
  const http = securedInboundChains(ctx, scope.namespace, labels, 0, httpBase, sds);
  const tcp = securedInboundChains(ctx, scope.namespace, labels, 0, tcpBase, sds);
  const isMtls = (c: ProtoObject): boolean => c.transport_socket !== undefined;
  const out: ProtoObject[] = [];
  for (const c of http.chains) {
    out.push({ ...c, filter_chain_match: isMtls(c)
      ? { transport_protocol: 'tls', application_protocols: ISTIO_HTTP_ALPN }
      : PLAIN_HTTP_MATCH });
  }
  for (const c of tcp.chains) {
    out.push({ ...c, filter_chain_match: isMtls(c) ? { transport_protocol: 'tls', application_protocols: ['istio-peer-exchange', 'istio'] } : { transport_protocol: 'raw_buffer' } });
  }
  const plainTcp = tcp.chains.find((c) => !isMtls(c));
  if (tcp.mode !== 'STRICT' && plainTcp) out.push({ ...plainTcp, filter_chain_match: { transport_protocol: 'tls' } });
  return out;
}

/**
 * The http_inspector of virtualInbound, off for the ports whose protocol is declared (and 15006 itself), as istiod:
 * it would otherwise wait for a server-first protocol's client to speak.
 */
function inboundHttpInspector(ports: number[]): ProtoObject {
  const ranges = [...new Set(ports)].sort((a, b) => a - b).map((p) => ({ destination_port_range: { start: p, end: p + 1 } }));
  return { ...HTTP_INSPECTOR, filter_disabled: ranges.length === 1 ? ranges[0] : { or_match: { rules: ranges } } };
}

export function buildSidecarListener(ctx: PushContext, scope: ProxyScope, plan: ListenerPlan): ProtoObject {
  const bindToPort = scope.interception === 'NONE';
  switch (plan.kind) {
    case 'virtualOutbound':
      return {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        use_original_dst: { value: true },
        traffic_direction: 'OUTBOUND',
        filter_chains: [
          // Traffic addressed to 15001 itself would loop (istiod's virtualOutbound-blackhole).
          { name: 'virtualOutbound-blackhole', filter_chain_match: { destination_port: { value: plan.port } }, filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] },
          { name: 'virtualOutbound-catchall-tcp', filters: [catchAllTcp(ctx, scope)] },
        ],
        max_connections_to_accept_per_socket_event: { value: 1 },
      };
    case 'virtualInbound': {
      const configs = inboundChainConfigs(ctx, scope).filter((cc) => !cc.bindToPort);
      return {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        traffic_direction: 'INBOUND',
        listener_filters: [
          { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST_TYPE } },
          // PERMISSIVE chains tell Istio mTLS from plaintext by transport protocol and ALPN; not for traffic to
          // 15006 itself (istiod's filter_disabled).
          { ...TLS_INSPECTOR, filter_disabled: { destination_port_range: { start: plan.port, end: plan.port + 1 } } },
          inboundHttpInspector([...configs.map((cc) => cc.targetPort), plan.port]),
        ],
        listener_filters_timeout: duration(0),
        continue_on_listener_filters_timeout: true,
        max_connections_to_accept_per_socket_event: { value: 1 },
        filter_chains: [
          // Traffic addressed to 15006 itself would loop (istiod's virtualInbound-blackhole).
          { name: 'virtualInbound-blackhole', filter_chain_match: { destination_port: { value: plan.port } }, filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] },
          // PeerAuthentication and AuthorizationPolicy shape each port's chains (workers/networking/security).
          ...configs.flatMap((cc) => securedChains(ctx, scope, cc)),
          // Traffic to a port no service declares passes through to the workload — under the same
          // PeerAuthentication and AuthorizationPolicy as the rest (istiod's virtualInbound passthrough chains
          // carry the RBAC filters): before, a DENY policy did not reach connections to undeclared ports.
          ...passthroughInboundChains(ctx, scope),
        ],
      };
    }
    case 'inbound': {
      // A Sidecar ingress listener bound for real (istio inboundCustomListener): no original_dst; the TLS inspector
      // only when a chain tells mTLS from plaintext (PERMISSIVE).
      const chains = securedChains(ctx, scope, plan.inbound!);
      const listener: ProtoObject = {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        traffic_direction: 'INBOUND',
        continue_on_listener_filters_timeout: true,
        filter_chains: chains,
      };
      if (chains.some((c) => (c.filter_chain_match as ProtoObject | undefined)?.transport_protocol === 'tls')) {
        listener.listener_filters = [TLS_INSPECTOR];
      }
      return listener;
    }
    case 'http':
      // istiod 1.29: the HTTP chain only for what the http_inspector sees as HTTP/1.1 or h2c; anything else on
      // the port (a TLS or TCP client of some other destination) goes through the default chain untouched.
      return inspectingListener(ctx, scope, plan, bindToPort, [{
        filter_chain_match: PLAIN_HTTP_MATCH,
        filters: [hcm(`outbound_${plan.name}`, rds(plan.routeName ?? String(plan.port)), SIDECAR_HTTP_FILTERS)],
        transport_socket_connect_timeout: TRANSPORT_SOCKET_CONNECT_TIMEOUT,
      }], HTTP_INSPECTOR);
    case 'tcp': {
      if (plan.sniServices) return sniListener(ctx, scope, plan, bindToPort);
      const cluster = clusterName('outbound', plan.servicePort ?? plan.port, '', plan.service!.hostname);
      const target = tcpRouteTarget(ctx, scope, plan.service!, plan.servicePort ?? plan.port, plan.virtualServices ?? []) ?? [{ cluster, weight: 100 }];
      // TLS ports: VirtualService `tls` routes become SNI-matched filter chains before the default one
      // (istio listener.go buildSidecarOutboundTCPListenerOpts / networkfilter.go).
      const sni = tlsRouteChains(ctx, scope, plan.service!, plan.servicePort ?? plan.port, plan.virtualServices ?? []);
      const listener: ProtoObject = {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        bind_to_port: { value: plan.bindToPort ?? bindToPort },
        traffic_direction: 'OUTBOUND',
        filter_chains: [
          ...sni.map((r) => ({ filter_chain_match: { server_names: r.sniHosts }, filters: [tcpProxyTo(r.target[0]!.cluster, r.target)] })),
          { filters: [tcpProxyTo(target.length === 1 ? target[0]!.cluster : cluster, target)] },
        ],
      };
      if (sni.length) listener.listener_filters = [TLS_INSPECTOR];
      return listener;
    }
  }
}

/**
 * A wildcard listener for TLS services without an address (istiod 1.29): per service, its VirtualService's tls
 * routes and then a chain for its hostname as SNI; the tls_inspector reads the SNI; any other connection on the port
 * goes through the default chain (PassthroughCluster, or BlackHoleCluster under REGISTRY_ONLY). A server name is
 * matched by the first chain that has it (Envoy refuses two chains with the same match).
 */
function sniListener(ctx: PushContext, scope: ProxyScope, plan: ListenerPlan, bindToPort: boolean): ProtoObject {
  const chains: ProtoObject[] = [];
  const used = new Set<string>();
  const chain = (names: string[], target: TcpTarget): void => {
    const fresh = names.filter((n) => !used.has(n));
    if (fresh.length === 0 || target.length === 0) return;
    for (const n of fresh) used.add(n);
    chains.push({ filter_chain_match: { server_names: fresh }, filters: [tcpProxyTo(target[0]!.cluster, target)], transport_socket_connect_timeout: TRANSPORT_SOCKET_CONNECT_TIMEOUT });
  };
  const vss = plan.virtualServices ?? [];
  for (const { service, port } of plan.sniServices!) {
    for (const r of tlsRouteChains(ctx, scope, service, port, vss)) chain(r.sniHosts, r.target);
    const cluster = clusterName('outbound', port, '', service.hostname);
    chain([service.hostname], tcpRouteTarget(ctx, scope, service, port, vss) ?? [{ cluster, weight: 100 }]);
  }
  return inspectingListener(ctx, scope, plan, bindToPort, chains, TLS_INSPECTOR);
}

/**
 * An outbound listener that inspects each connection (istiod 1.29): its matched chains, no timeout on the
 * inspection, and a default chain passing anything unmatched through (PassthroughCluster, or BlackHoleCluster
 * under REGISTRY_ONLY).
 */
function inspectingListener(ctx: PushContext, scope: ProxyScope, plan: ListenerPlan, bindToPort: boolean, chains: ProtoObject[], inspector: ProtoObject): ProtoObject {
  return {
    '@type': LISTENER_TYPE,
    name: plan.name,
    address: socketAddress(plan.address, plan.port),
    bind_to_port: { value: plan.bindToPort ?? bindToPort },
    traffic_direction: 'OUTBOUND',
    filter_chains: chains,
    listener_filters: [inspector],
    listener_filters_timeout: duration(0),
    continue_on_listener_filters_timeout: true,
    default_filter_chain: { filter_chain_match: {}, filters: [catchAllTcp(ctx, scope)], name: 'PassthroughFilterChain' },
  };
}

/** Unmatched outbound TCP: PassthroughCluster, or BlackHoleCluster under REGISTRY_ONLY. */
function catchAllTcp(ctx: PushContext, scope: ProxyScope): ProtoObject {
  const c = sidecarScope(ctx, scope).outboundPolicy === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
  return tcpProxy(c, c);
}

/** Proxyless gRPC: an ApiListener whose HCM fetches route configuration HOST:PORT over ADS. */
export function buildGrpcListener(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject | undefined {
  const hp = parseHostPort(name);
  const svc = hp ? serviceFor(ctx, scope, hp.host) : undefined;
  if (!hp || !svc || !visibleTo(svc, scope.namespace) || !svc.ports.some((p) => p.port === hp.port)) return undefined;
  return {
    '@type': LISTENER_TYPE,
    name,
    api_listener: {
      api_listener: {
        '@type': HCM_TYPE,
        rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name },
        http_filters: GRPC_HTTP_FILTERS,
      },
    },
  };
}
