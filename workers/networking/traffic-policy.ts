/**
 * DestinationRule traffic policy → Envoy cluster fields, as istio pilot/pkg/networking/core/cluster_traffic_policy.go
 * (connection pool, outlier detection, load balancer incl. consistent hash) and cluster_tls.go (SIMPLE / MUTUAL).
 * The effective policy merges the rule's top level, its portLevelSettings for the port, then the subset's policy
 * and the subset's portLevelSettings (istio pilot/pkg/networking/util MergeTrafficPolicy).
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration } from '../../src/proto/encode.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE, UPSTREAM_TLS_CONTEXT_TYPE } from '../../src/proto/type-urls.js';
import type { ConfigEntry } from '../../src/model/push-context.js';
import { parseDurationMs } from '../../src/model/duration.js';

/** Envoy's max uint32, which istiod uses to lift the default circuit-breaker limits. */
export const MAX_U32 = 4294967295;
/** What istiod's agent resolves the CA "system" to (ClientTLSSettings without caCertificates). */
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const SDS_PREFIX = 'kubernetes://';
const ADS_SDS_CONFIG = { ads: {}, resource_api_version: 'V3' };

export interface TrafficPolicy {
  connectionPool?: any;
  outlierDetection?: any;
  loadBalancer?: any;
  tls?: any;
}

const COMPONENTS = ['connectionPool', 'outlierDetection', 'loadBalancer', 'tls'] as const;

function overlay(base: TrafficPolicy, over: any, port: number): TrafficPolicy {
  const out: TrafficPolicy = { ...base };
  if (!over) return out;
  for (const c of COMPONENTS) if (over[c] !== undefined) out[c] = over[c];
  const pls = ((over.portLevelSettings ?? []) as any[]).find((p) => p.port?.number === port);
  if (pls) for (const c of COMPONENTS) if (pls[c] !== undefined) out[c] = pls[c];
  return out;
}

export function effectivePolicy(dr: ConfigEntry | undefined, port: number, subset: string): TrafficPolicy {
  if (!dr) return {};
  let p = overlay({}, dr.spec.trafficPolicy, port);
  if (subset) p = overlay(p, ((dr.spec.subsets ?? []) as any[]).find((s) => s.name === subset)?.trafficPolicy, port);
  return p;
}

function ms(d: string | undefined): ProtoObject | undefined {
  return d === undefined ? undefined : duration(parseDurationMs(d));
}

/** Circuit breaker thresholds: istiod's defaults (all max) with the connection pool's limits. */
export function circuitBreakers(cp: any): ProtoObject {
  const t: ProtoObject = {
    max_connections: { value: cp?.tcp?.maxConnections > 0 ? cp.tcp.maxConnections : MAX_U32 },
    max_pending_requests: { value: cp?.http?.http1MaxPendingRequests > 0 ? cp.http.http1MaxPendingRequests : MAX_U32 },
    max_requests: { value: cp?.http?.http2MaxRequests > 0 ? cp.http.http2MaxRequests : MAX_U32 },
    max_retries: { value: cp?.http?.maxRetries > 0 ? cp.http.maxRetries : MAX_U32 },
  };
  return { thresholds: [t] };
}

/**
 * HttpProtocolOptions for the cluster, or undefined: HTTP/2 for h2 ports (or h2UpgradePolicy UPGRADE), the
 * downstream protocol with useClientProtocol, and idle timeout / max requests per connection / max connection
 * duration / max concurrent streams from the connection pool.
 */
export function httpProtocolOptions(cp: any, http2: boolean): ProtoObject | undefined {
  const upgrade = cp?.http?.h2UpgradePolicy;
  const h2 = upgrade === 'UPGRADE' ? true : upgrade === 'DO_NOT_UPGRADE' ? false : http2;
  const opts: ProtoObject = { '@type': HTTP_PROTOCOL_OPTIONS_TYPE };
  const common: ProtoObject = {};
  const idle = cp?.http?.idleTimeout ?? cp?.tcp?.idleTimeout;
  if (idle !== undefined) common.idle_timeout = ms(idle);
  if (cp?.http?.maxRequestsPerConnection > 0) common.max_requests_per_connection = { value: cp.http.maxRequestsPerConnection };
  if (cp?.tcp?.maxConnectionDuration !== undefined) common.max_connection_duration = ms(cp.tcp.maxConnectionDuration);
  if (Object.keys(common).length > 0) opts.common_http_protocol_options = common;
  if (cp?.http?.useClientProtocol) {
    opts.use_downstream_protocol_config = { http_protocol_options: {}, http2_protocol_options: {} };
  } else if (h2) {
    const h2opts: ProtoObject = {};
    if (cp?.http?.maxConcurrentStreams > 0) h2opts.max_concurrent_streams = { value: cp.http.maxConcurrentStreams };
    opts.explicit_http_config = { http2_protocol_options: h2opts };
  } else if (opts.common_http_protocol_options) {
    // Envoy requires an upstream protocol once HttpProtocolOptions exist: HTTP/1.1, as istiod sets.
    opts.explicit_http_config = { http_protocol_options: {} };
  }
  return Object.keys(opts).length > 1 ? opts : undefined;
}

export function tcpKeepalive(cp: any): ProtoObject | undefined {
  const k = cp?.tcp?.tcpKeepalive;
  if (!k) return undefined;
  const ka: ProtoObject = {};
  if (k.probes !== undefined) ka.keepalive_probes = { value: k.probes };
  if (k.time !== undefined) ka.keepalive_time = { value: Math.floor(parseDurationMs(k.time) / 1000) };
  if (k.interval !== undefined) ka.keepalive_interval = { value: Math.floor(parseDurationMs(k.interval) / 1000) };
  return { tcp_keepalive: ka };
}

/** OutlierDetection as istiod writes it: success-rate ejection off, consecutive errors enforced at 100%. */
export function outlierDetection(od: any): ProtoObject | undefined {
  if (!od) return undefined;
  const out: ProtoObject = { enforcing_success_rate: { value: 0 } };
  const c5xx = od.consecutive5xxErrors ?? od.consecutiveErrors;
  if (c5xx !== undefined) {
    out.consecutive_5xx = { value: c5xx };
    out.enforcing_consecutive_5xx = { value: c5xx > 0 ? 100 : 0 };
  }
  if (od.consecutiveGatewayErrors !== undefined) {
    out.consecutive_gateway_failure = { value: od.consecutiveGatewayErrors };
    out.enforcing_consecutive_gateway_failure = { value: od.consecutiveGatewayErrors > 0 ? 100 : 0 };
  }
  if (od.interval !== undefined) out.interval = ms(od.interval);
  if (od.baseEjectionTime !== undefined) out.base_ejection_time = ms(od.baseEjectionTime);
  if (od.maxEjectionPercent > 0) out.max_ejection_percent = { value: od.maxEjectionPercent };
  if (od.splitExternalLocalOriginErrors) {
    out.split_external_local_origin_errors = true;
    if (od.consecutiveLocalOriginFailures > 0) {
      out.consecutive_local_origin_failure = { value: od.consecutiveLocalOriginFailures };
      out.enforcing_consecutive_local_origin_failure = { value: 100 };
    }
    out.enforcing_local_origin_success_rate = { value: 0 };
  }
  return out;
}

export interface LbFields { lb_policy: string; ring_hash_lb_config?: ProtoObject; maglev_lb_config?: ProtoObject; round_robin_lb_config?: ProtoObject; least_request_lb_config?: ProtoObject }

/** applyLoadBalancer: simple policies, warmup (slow start), consistent hash → RING_HASH (default) or MAGLEV. */
export function loadBalancer(lb: any, defaultPolicy: 'LEAST_REQUEST' | 'ROUND_ROBIN'): LbFields {
  const slowStart = lb?.warmupDurationSecs !== undefined ? { slow_start_config: { slow_start_window: ms(lb.warmupDurationSecs) } } : undefined;
  let out: LbFields;
  switch (lb?.simple) {
    case 'ROUND_ROBIN': out = { lb_policy: 'ROUND_ROBIN', round_robin_lb_config: slowStart }; break;
    case 'RANDOM': out = { lb_policy: 'RANDOM' }; break;
    case 'LEAST_CONN': case 'LEAST_REQUEST': out = { lb_policy: 'LEAST_REQUEST', least_request_lb_config: slowStart }; break;
    default: out = defaultPolicy === 'ROUND_ROBIN'
      ? { lb_policy: 'ROUND_ROBIN', round_robin_lb_config: slowStart }
      : { lb_policy: 'LEAST_REQUEST', least_request_lb_config: slowStart };
  }
  const ch = lb?.consistentHash;
  if (ch) {
    if (ch.maglev) {
      out = { lb_policy: 'MAGLEV', maglev_lb_config: ch.maglev.tableSize ? { table_size: { value: ch.maglev.tableSize } } : undefined };
    } else if (ch.ringHash) {
      out = { lb_policy: 'RING_HASH', ring_hash_lb_config: ch.ringHash.minimumRingSize ? { minimum_ring_size: { value: ch.ringHash.minimumRingSize } } : undefined };
    } else {
      out = { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: ch.minimumRingSize || 1024 } } };
    }
  }
  return out;
}

/** True when the policy's load balancer is PASSTHROUGH: the cluster becomes ORIGINAL_DST. */
export function isPassthroughLb(lb: any): boolean {
  return lb?.simple === 'PASSTHROUGH';
}

/**
 * ClientTLSSettings SIMPLE / MUTUAL → an UpstreamTlsContext transport socket. credentialName is served over SDS
 * (`kubernetes://NAME`, CA `kubernetes://NAME-cacert`); file paths are given to Envoy directly (there is no agent
 * here to turn them into SDS secrets). DISABLE and unset give no transport socket; ISTIO_MUTUAL belongs to the
 * security builder.
 */
export function upstreamTls(tls: any, defaultSni: string): ProtoObject | undefined {
  if (!tls || (tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL')) return undefined;
  const common: ProtoObject = {};
  const sans: string[] = tls.subjectAltNames ?? [];
  const sanMatchers = sans.length ? { match_typed_subject_alt_names: sans.map((s) => ({ san_type: 'DNS', matcher: { exact: s } })) } : {};
  if (tls.credentialName) {
    const name = SDS_PREFIX + tls.credentialName;
    if (tls.mode === 'MUTUAL') common.tls_certificate_sds_secret_configs = [{ name, sds_config: ADS_SDS_CONFIG }];
    if (!tls.insecureSkipVerify) {
      common.combined_validation_context = {
        default_validation_context: sanMatchers,
        validation_context_sds_secret_config: { name: `${name}-cacert`, sds_config: ADS_SDS_CONFIG },
      };
    }
  } else {
    if (tls.mode === 'MUTUAL' && tls.clientCertificate && tls.privateKey) {
      common.tls_certificates = [{ certificate_chain: { filename: tls.clientCertificate }, private_key: { filename: tls.privateKey } }];
    }
    if (!tls.insecureSkipVerify) {
      common.validation_context = { trusted_ca: { filename: tls.caCertificates || SYSTEM_CA_BUNDLE }, ...sanMatchers };
    }
  }
  const ctx: ProtoObject = { '@type': UPSTREAM_TLS_CONTEXT_TYPE, common_tls_context: common };
  const sni = tls.sni ?? defaultSni;
  if (sni) ctx.sni = sni;
  return { name: 'envoy.transport_sockets.tls', typed_config: ctx };
}
