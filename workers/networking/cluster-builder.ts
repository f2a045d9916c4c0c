/**
 * CDS: outbound clusters per service port and DestinationRule subset, inbound clusters per workload port, and the
 * fixed passthrough/blackhole clusters. Follows istio pilot/pkg/networking/core/cluster_builder.go.
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration, jsonToStruct } from '../../src/proto/encode.js';
import { CARES_DNS_RESOLVER_TYPE, CLUSTER_TYPE, HTTP_PROTOCOL_OPTIONS_TYPE } from '../../src/proto/type-urls.js';
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import type { InboundInstance, ProxyScope } from '../../src/model/scope.js';
import type { Service, ServicePort } from '../../src/model/service.js';
import { isHttp2 } from '../../src/model/protocol.js';
import {
  BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER,
} from '../../src/model/constants.js';
import { clusterName, inboundClusterName } from './names.js';
import { parseDurationMs } from '../../src/model/duration.js';
import { buildLoadAssignment } from './endpoint-builder.js';
import { sidecarScope } from './sidecar-scope.js';
import { applyInboundConnectionPool, NO_CLEANUP, sidecarIngressCluster } from './sidecar-ingress.js';
import { effectiveLocalityLbSetting } from './locality-lb.js';
import { autoMtlsMatches, istioMutualUpstream, serviceIdentities } from './security/tls-context.js';
import {
  MAX_U32, circuitBreakers, effectivePolicy, httpProtocolOptions, isPassthroughLb, loadBalancer, outlierDetection,
  tcpKeepalive, upstreamTls,
} from './traffic-policy.js';

const INBOUND_BIND_ADDRESS = '127.0.0.6';

const ADS_CONFIG_SOURCE = { ads: {}, initial_fetch_timeout: duration(0), resource_api_version: 'V3' };

/**
 * An outbound cluster for a service port (and subset), with the DestinationRule's traffic policy applied
 * (traffic-policy.ts). Discovery type by resolution as istiod: EDS for Kubernetes and STATIC ServiceEntries,
 * STRICT_DNS with inline endpoints for DNS, ORIGINAL_DST for NONE and for loadBalancer PASSTHROUGH.
 */
export function outboundCluster(ctx: PushContext, scope: ProxyScope, svc: Service, port: ServicePort, subset: string): ProtoObject {
  const name = clusterName('outbound', port.port, subset, svc.hostname);
  const dr = ctx.destinationRuleFor(svc.hostname, scope.namespace, svc.namespace, scope.drLabels);
  const policy = effectivePolicy(dr, port.port, subset);
  const cp = policy.connectionPool;
  const cluster: ProtoObject = {
    '@type': CLUSTER_TYPE,
    name,
    connect_timeout: duration(cp?.tcp?.connectTimeout ? parseDurationMs(cp.tcp.connectTimeout) : ctx.data.mesh.connectTimeoutMs),
  };
  const passthrough = svc.resolution === 'NONE' || isPassthroughLb(policy.loadBalancer);
  if (passthrough) {
    cluster.type = 'ORIGINAL_DST';
    cluster.lb_policy = 'CLUSTER_PROVIDED';
  } else if (svc.resolution === 'DNS') {
    cluster.type = 'STRICT_DNS';
    cluster.dns_lookup_family = 'V4_ONLY';
    // istiod 1.29: the mesh's dnsRefreshRate (60 s) unless the records' TTLs say otherwise, through c-ares with at
    // most 100 UDP queries per socket.
    if (scope.generator === 'envoy') {
      cluster.dns_refresh_rate = duration(60_000);
      cluster.respect_dns_ttl = true;
      cluster.typed_dns_resolver_config = { name: 'envoy.network.dns_resolver.cares', typed_config: { '@type': CARES_DNS_RESOLVER_TYPE, udp_max_queries: { value: 100 } } };
    }
    cluster.load_assignment = { ...buildLoadAssignment(ctx, scope, name), '@type': undefined };
    Object.assign(cluster, scope.generator === 'grpc' ? grpcLoadBalancer(policy.loadBalancer) : loadBalancer(policy.loadBalancer, 'LEAST_REQUEST'));
  } else {
    cluster.type = 'EDS';
    cluster.eds_cluster_config = { eds_config: ADS_CONFIG_SOURCE, service_name: name };
    Object.assign(cluster, scope.generator === 'grpc' ? grpcLoadBalancer(policy.loadBalancer) : loadBalancer(policy.loadBalancer, 'LEAST_REQUEST'));
  }
  const od = outlierDetection(policy.outlierDetection);
  if (od) cluster.outlier_detection = od;
  const h2 = isHttp2(port.protocol) || policy.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE';
  if (policy.tls?.mode === 'ISTIO_MUTUAL') {
    // Istio mTLS, for Envoy over SDS and for proxyless gRPC from its certificate providers; peers checked by SAN.
    const sni = scope.generator === 'envoy' ? `outbound_.${port.port}_.${subset}_.${svc.hostname}` : undefined;
    // DestinationRule subjectAltNames override the service's identities, as istiod's ISTIO_MUTUAL does.
    const sans: string[] = policy.tls.subjectAltNames?.length ? policy.tls.subjectAltNames : serviceIdentities(ctx, svc);
    cluster.transport_socket = istioMutualUpstream(scope.generator, sans, sni, h2);
  } else if (!policy.tls && scope.generator === 'envoy' && !svc.meshExternal && ctx.data.mesh.enableAutoMtls !== false) {
    cluster.transport_socket_matches = autoMtlsMatches(serviceIdentities(ctx, svc), `outbound_.${port.port}_.${subset}_.${svc.hostname}`, h2);
  }
  if (scope.generator === 'envoy') {
    cluster.circuit_breakers = circuitBreakers(cp);
    const commonLb: ProtoObject = {};
    // istiod 1.29 disables Envoy's panic threshold (default 50%) on every outbound cluster, or sets it to the
    // outlier detection's minHealthPercent.
    commonLb.healthy_panic_threshold = { value: od ? (policy.outlierDetection.minHealthPercent ?? 0) : 0 };
    // Locality weights only count with locality_weighted_lb_config (istio applyLocalityLoadBalancer).
    const locality = effectiveLocalityLbSetting(ctx.data.mesh.localityLbSetting, policy.loadBalancer?.localityLbSetting);
    if (locality && (locality.distribute?.length || (od && (locality.failover?.length || locality.failoverPriority?.length)))) {
      commonLb.locality_weighted_lb_config = {};
    }
    cluster.common_lb_config = commonLb;
    const hpo = httpProtocolOptions(cp, isHttp2(port.protocol));
    if (hpo) cluster.typed_extension_protocol_options = { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': hpo };
    const keepalive = tcpKeepalive(cp);
    if (keepalive) cluster.upstream_connection_options = keepalive;
    const tls = upstreamTls(policy.tls, svc.meshExternal ? svc.hostname : '');
    if (tls) cluster.transport_socket = tls;
    cluster.metadata = {
      filter_metadata: {
        istio: jsonToStruct({ services: [{ host: svc.hostname, name: svc.name, namespace: svc.namespace }] }),
      },
    };
  }
  return cluster;
}

/**
 * Proxyless gRPC implements ROUND_ROBIN and RING_HASH only (grpc-js-xds NACKs other lb_policy values): consistent
 * hash (ring hash or maglev) becomes RING_HASH, every other policy round robin, as istiod's grpc generator does.
 */
function grpcLoadBalancer(lb: any): ProtoObject {
  if (!lb?.consistentHash) return { lb_policy: 'ROUND_ROBIN' };
  const ch = lb.consistentHash;
  const size = ch.ringHash?.minimumRingSize || ch.minimumRingSize;
  return { lb_policy: 'RING_HASH', ring_hash_lb_config: size ? { minimum_ring_size: { value: size } } : undefined };
}

function originalDstCluster(name: string, ctx: PushContext, bind?: string): ProtoObject {
  const c: ProtoObject = {
    '@type': CLUSTER_TYPE,
    name,
    type: 'ORIGINAL_DST',
    connect_timeout: duration(ctx.data.mesh.connectTimeoutMs),
    lb_policy: 'CLUSTER_PROVIDED',
    circuit_breakers: {
      thresholds: [{ max_connections: { value: MAX_U32 }, max_pending_requests: { value: MAX_U32 }, max_requests: { value: MAX_U32 }, max_retries: { value: MAX_U32 } }],
    },
  };
  if (bind) c.upstream_bind_config = { source_address: { address: bind, port_value: 0 } };
  return c;
}

/**
 * istiod's passthrough clusters speak the downstream's HTTP version upstream and close idle connections after
 * 5 min (buildDefaultPassthroughCluster, passthroughHttpProtocolOptions).
 */
const PASSTHROUGH_HTTP_OPTIONS: ProtoObject = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
    common_http_protocol_options: { idle_timeout: duration(300_000) },
    use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
  },
};

export function passthroughCluster(ctx: PushContext): ProtoObject {
  return { ...originalDstCluster(PASSTHROUGH_CLUSTER, ctx), typed_extension_protocol_options: PASSTHROUGH_HTTP_OPTIONS };
}

export function inboundPassthroughCluster(ctx: PushContext): ProtoObject {
  return { ...originalDstCluster(INBOUND_PASSTHROUGH_CLUSTER, ctx, INBOUND_BIND_ADDRESS), typed_extension_protocol_options: PASSTHROUGH_HTTP_OPTIONS };
}

/**
 * Inbound clusters deliver to the original destination (the workload's own IP:port), from 127.0.0.6 as istiod does;
 * a Sidecar ingress listener's cluster delivers to its defaultEndpoint instead (sidecar-ingress.ts).
 */
export function inboundCluster(ctx: PushContext, scope: ProxyScope, targetPort: number): ProtoObject {
  const ingress = sidecarScope(ctx, scope).ingress.find((l) => l.port.number === targetPort);
  if (ingress) return sidecarIngressCluster(ctx, scope, ingress);
  const inst = scope.inbound.find((i) => i.targetPort === targetPort);
  const cluster = originalDstCluster(inboundClusterName(targetPort), ctx, INBOUND_BIND_ADDRESS);
  cluster.cleanup_interval = NO_CLEANUP;
  cluster.common_lb_config = {};
  // istiod buildInboundClusterForPortOrUDS: the connection pool of the service's DestinationRule (port-level
  // settings of the service port; nothing else of it applies inbound), unless the Sidecar sets one.
  const pool = inst && effectivePolicy(inboundDestinationRule(ctx, scope, inst), inst.servicePort, '').connectionPool;
  return applyInboundConnectionPool(ctx, scope, cluster, targetPort, inst?.protocol ?? 'TCP', pool);
}

/** The DestinationRule an inbound port's cluster reads (its connection pool only; istiod's inbound lookup ignores workloadSelectors). */
export function inboundDestinationRule(ctx: PushContext, scope: ProxyScope, inst: InboundInstance): ConfigEntry | undefined {
  return ctx.destinationRuleFor(inst.hostname, scope.namespace);
}

export function blackholeCluster(ctx: PushContext): ProtoObject {
  return {
    '@type': CLUSTER_TYPE,
    name: BLACKHOLE_CLUSTER,
    type: 'STATIC',
    connect_timeout: duration(ctx.data.mesh.connectTimeoutMs),
  };
}
