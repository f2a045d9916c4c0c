/**
 * LDS: sidecar listeners as istiod builds them (istio pilot/pkg/networking/core/listener*.go):
 * `virtualOutbound` (15001) and `virtualInbound` (15006) when traffic is captured; an outbound listener per HTTP
 * port (`0.0.0.0_PORT`, RDS route "PORT") and per TCP service (`CLUSTERIP_PORT`, tcp_proxy). With interception
 * mode NONE, outbound listeners bind their real port on 127.0.0.1 and there are no virtual listeners.
 * Proxyless gRPC gets an ApiListener per requested HOST:PORT (pilot/pkg/networking/grpcgen/lds.go).
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration } from '../../src/proto/encode.js';
import {
  CORS_TYPE, FAULT_TYPE, HCM_TYPE, LISTENER_TYPE, ORIGINAL_DST_TYPE, ROUTER_TYPE, TCP_PROXY_TYPE, TLS_INSPECTOR_TYPE,
} from '../../src/proto/type-urls.js';
import { CORS_FILTER, FAULT_FILTER } from './http-route.js';
import { sidecarScope } from './sidecar-scope.js';
import { tcpRouteTarget, tlsRouteChains, type TcpTarget } from './tcp-route.js';
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope, InboundInstance } from '../../src/model/scope.js';
import type { Service, ServicePort } from '../../src/model/service.js';
import { isHttp } from '../../src/model/protocol.js';
import {
  BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, LOCALHOST_ADDRESS, PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND_LISTENER,
  VIRTUAL_INBOUND_PORT, VIRTUAL_OUTBOUND_LISTENER, VIRTUAL_OUTBOUND_PORT, WILDCARD_ADDRESS,
} from '../../src/model/constants.js';
import { clusterName, inboundClusterName, listenerName, parseHostPort } from './names.js';
import { visibleServices, visibleTo } from './visibility.js';
import { securedInboundChains } from './security/inbound-mtls.js';

const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const FAULT_HTTP_FILTER = { name: FAULT_FILTER, typed_config: { '@type': FAULT_TYPE } };
const CORS_HTTP_FILTER = { name: CORS_FILTER, typed_config: { '@type': CORS_TYPE } };
/** Outbound HCM filters as istiod orders them (cors, fault, router); per-route configs switch cors and fault on. */
export const OUTBOUND_HTTP_FILTERS = [CORS_HTTP_FILTER, FAULT_HTTP_FILTER, ROUTER_FILTER];
/** Proxyless gRPC implements the fault filter (grpc-js-xds), not CORS. */
const GRPC_HTTP_FILTERS = [FAULT_HTTP_FILTER, ROUTER_FILTER];

export interface ListenerPlan {
  name: string;
  kind: 'http' | 'tcp' | 'virtualOutbound' | 'virtualInbound';
  address: string;
  port: number;
  /** For tcp listeners: the service the listener proxies to. */
  service?: Service;
}

function socketAddress(address: string, port: number): ProtoObject {
  return { socket_address: { address, port_value: port } };
}

export function hcm(statPrefix: string, route: ProtoObject, filters: ProtoObject[] = [ROUTER_FILTER]): ProtoObject {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM_TYPE,
      stat_prefix: statPrefix,
      ...route,
      http_filters: filters,
      use_remote_address: { value: false },
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

/** Which listeners a sidecar gets; cheap, so the planner can derive cache keys without building anything. */
export function planSidecarListeners(ctx: PushContext, scope: ProxyScope): ListenerPlan[] {
  const bindLocal = scope.interception === 'NONE';
  const base = bindLocal ? LOCALHOST_ADDRESS : WILDCARD_ADDRESS;
  const plans = new Map<string, ListenerPlan>();
  const tcp: Array<[Service, ServicePort]> = [];
  for (const svc of visibleServices(ctx, scope)) {
    for (const p of svc.ports) {
      if (p.protocol === 'UDP') continue;
      if (isHttp(p.protocol)) {
        const name = listenerName(base, p.port);
        if (!plans.has(name)) plans.set(name, { name, kind: 'http', address: base, port: p.port });
      } else tcp.push([svc, p]);
    }
  }
  for (const [svc, p] of tcp) {
    // TCP services listen on their ClusterIP so they can share a port with others; without one (or when the
    // proxy binds real ports) they take the wildcard/local address unless an HTTP listener holds it.
    const address = !bindLocal && svc.address ? svc.address : base;
    const name = listenerName(address, p.port);
    if (!plans.has(name)) plans.set(name, { name, kind: 'tcp', address, port: p.port, service: svc });
  }
  const out = [...plans.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  if (!bindLocal) {
    out.push({ name: VIRTUAL_OUTBOUND_LISTENER, kind: 'virtualOutbound', address: WILDCARD_ADDRESS, port: VIRTUAL_OUTBOUND_PORT });
    out.push({ name: VIRTUAL_INBOUND_LISTENER, kind: 'virtualInbound', address: WILDCARD_ADDRESS, port: VIRTUAL_INBOUND_PORT });
  }
  return out;
}

function inboundChain(inst: InboundInstance): ProtoObject {
  const cluster = inboundClusterName(inst.targetPort);
  const name = listenerName(WILDCARD_ADDRESS, inst.targetPort);
  if (!isHttp(inst.protocol)) {
    return { name, filter_chain_match: { destination_port: { value: inst.targetPort } }, filters: [tcpProxy(cluster, cluster)] };
  }
  const routeConfig = {
    name: cluster,
    virtual_hosts: [{
      name: `inbound|http|${inst.targetPort}`,
      domains: ['*'],
      routes: [{
        name: 'default',
        match: { prefix: '/' },
        route: { cluster, timeout: duration(0), max_stream_duration: { max_stream_duration: duration(0), grpc_timeout_header_max: duration(0) } },
        decorator: { operation: `${inst.hostname}:${inst.servicePort}/*` },
      }],
    }],
    validate_clusters: { value: false },
  };
  return {
    name,
    filter_chain_match: { destination_port: { value: inst.targetPort } },
    filters: [hcm(`inbound_0.0.0.0_${inst.targetPort}`, { route_config: routeConfig })],
  };
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
        filter_chains: [{ name: 'virtualOutbound-catchall-tcp', filters: [catchAllTcp(ctx, scope)] }],
      };
    case 'virtualInbound':
      return {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        traffic_direction: 'INBOUND',
        listener_filters: [
          { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST_TYPE } },
          // PERMISSIVE chains tell Istio mTLS from plaintext by transport protocol and ALPN.
          { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR_TYPE } },
        ],
        filter_chains: [
          // PeerAuthentication and AuthorizationPolicy shape each port's chains (workers/networking/security).
          ...scope.inbound.flatMap((inst) => securedInboundChains(ctx, scope.namespace, scope.securityLabels ?? {}, inst.targetPort, inboundChain(inst), scope.sds === true).chains),
          { name: 'virtualInbound-catchall-tcp', filters: [tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER)] },
        ],
      };
    case 'http':
      return {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        bind_to_port: { value: bindToPort },
        traffic_direction: 'OUTBOUND',
        filter_chains: [{ filters: [hcm(`outbound_${plan.name}`, rds(String(plan.port)), OUTBOUND_HTTP_FILTERS)] }],
      };
    case 'tcp': {
      const cluster = clusterName('outbound', plan.port, '', plan.service!.hostname);
      const target = tcpRouteTarget(ctx, scope, plan.service!, plan.port) ?? [{ cluster, weight: 100 }];
      // TLS ports: VirtualService `tls` routes become SNI-matched filter chains before the default one
      // (istio listener.go buildSidecarOutboundTCPListenerOpts / networkfilter.go).
      const sni = tlsRouteChains(ctx, scope, plan.service!, plan.port);
      const listener: ProtoObject = {
        '@type': LISTENER_TYPE,
        name: plan.name,
        address: socketAddress(plan.address, plan.port),
        bind_to_port: { value: bindToPort },
        traffic_direction: 'OUTBOUND',
        filter_chains: [
          ...sni.map((r) => ({ filter_chain_match: { server_names: r.sniHosts }, filters: [tcpProxyTo(r.target[0]!.cluster, r.target)] })),
          { filters: [tcpProxyTo(target.length === 1 ? target[0]!.cluster : cluster, target)] },
        ],
      };
      if (sni.length) listener.listener_filters = [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR_TYPE } }];
      return listener;
    }
  }
}

/** Unmatched outbound TCP: PassthroughCluster, or BlackHoleCluster under REGISTRY_ONLY. */
function catchAllTcp(ctx: PushContext, scope: ProxyScope): ProtoObject {
  const c = sidecarScope(ctx, scope).outboundPolicy === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
  return tcpProxy(c, c);
}

/** Proxyless gRPC: an ApiListener whose HCM fetches route configuration HOST:PORT over ADS. */
export function buildGrpcListener(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject | undefined {
  const hp = parseHostPort(name);
  const svc = hp ? ctx.service(hp.host) : undefined;
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
