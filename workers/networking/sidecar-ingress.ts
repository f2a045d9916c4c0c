/**
 * The inbound cluster of a Sidecar ingress listener, `inbound|PORT||` (istio cluster.go
 * buildInboundClustersFromSidecar + cluster_builder.go buildInboundCluster). Its endpoint is the listener's
 * defaultEndpoint:
 *
 * - `127.0.0.1:PORT` / `[::1]:PORT` → a STATIC cluster to localhost;
 * - `0.0.0.0:PORT` / `[::]:PORT` → a STATIC cluster to the instance IP (localhost when the proxy has none);
 * - `unix:///path` → a STATIC cluster to the unix domain socket;
 * - unset → ORIGINAL_DST (whatever address the connection was captured for).
 *
 * Every endpoint that is not localhost is reached from 127.0.0.6, the bind iptables lets through without capturing
 * the proxy's own traffic again. The Sidecar's connection pool (the ingress listener's `connectionPool`, else
 * `inboundConnectionPool`) sets the circuit breakers and HTTP options of every inbound cluster, as istiod's
 * buildInboundCluster does with InboundConnectionPoolForPort.
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration } from '../../src/proto/encode.js';
import { CLUSTER_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { LOCALHOST_ADDRESS } from '../../src/model/constants.js';
import { inboundClusterName } from './names.js';
import { MAX_U32, circuitBreakers, httpProtocolOptions, tcpKeepalive } from './traffic-policy.js';
import { parseDurationMs } from '../../src/model/duration.js';
import { isHttp2, type Protocol } from '../../src/model/protocol.js';
import { inboundConnectionPoolForPort, sidecarScope, type IngressListener } from './sidecar-scope.js';

const INBOUND_PASSTHROUGH_BIND = '127.0.0.6';
const UNIX_PREFIX = 'unix://';
/** ORIGINAL_DST inbound clusters never clean up their hosts: the interval istiod 1.29 sends (Go's largest Duration, in whole seconds). */
export const NO_CLEANUP = { seconds: 9_223_372_035 };

export type IngressEndpoint = { pipe: string } | { address: string; port: number } | undefined;

/** Where an ingress listener's traffic goes; undefined = the original destination. */
export function ingressEndpoint(l: IngressListener, instanceIp: string | undefined): IngressEndpoint {
  const ep = l.defaultEndpoint;
  if (!ep) return undefined;
  if (ep.startsWith(UNIX_PREFIX)) return { pipe: ep.slice(UNIX_PREFIX.length) };
  const i = ep.lastIndexOf(':');
  const host = ep.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(ep.slice(i + 1));
  if (host === '0.0.0.0') return { address: instanceIp && !instanceIp.includes(':') ? instanceIp : LOCALHOST_ADDRESS, port };
  if (host === '::') return { address: instanceIp && instanceIp.includes(':') ? instanceIp : '::1', port };
  // '127.0.0.1', '::1' or empty (`:PORT`, localhost as istiod's validation allows).
  return { address: host || LOCALHOST_ADDRESS, port };
}

export function sidecarIngressCluster(ctx: PushContext, scope: ProxyScope, l: IngressListener): ProtoObject {
  const name = inboundClusterName(l.port.number);
  const ep = ingressEndpoint(l, scope.instanceIp);
  const cluster: ProtoObject = {
    '@type': CLUSTER_TYPE,
    name,
    connect_timeout: duration(ctx.data.mesh.connectTimeoutMs),
    circuit_breakers: {
      thresholds: [{ max_connections: { value: MAX_U32 }, max_pending_requests: { value: MAX_U32 }, max_requests: { value: MAX_U32 }, max_retries: { value: MAX_U32 } }],
    },
  };
  if (!ep) {
    cluster.type = 'ORIGINAL_DST';
    cluster.lb_policy = 'CLUSTER_PROVIDED';
    cluster.cleanup_interval = NO_CLEANUP;
  } else {
    cluster.type = 'STATIC';
    const address = 'pipe' in ep ? { pipe: { path: ep.pipe } } : { socket_address: { address: ep.address, port_value: ep.port } };
    cluster.load_assignment = { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] };
  }
  const local = ep !== undefined && ('pipe' in ep || ep.address === LOCALHOST_ADDRESS || ep.address === '::1');
  if (!local) cluster.upstream_bind_config = { source_address: { address: INBOUND_PASSTHROUGH_BIND, port_value: 0 } };
  return applyInboundConnectionPool(ctx, scope, cluster, l.port.number, l.port.protocol);
}

/** The Sidecar's inbound connection pool for a port, applied to an inbound cluster (unchanged without one). */
export function applyInboundConnectionPool(ctx: PushContext, scope: ProxyScope, cluster: ProtoObject, port: number, protocol: Protocol, fallback?: any): ProtoObject {
  const cp = inboundConnectionPoolForPort(sidecarScope(ctx, scope), port) ?? fallback;
  if (!cp) return cluster;
  cluster.circuit_breakers = circuitBreakers(cp);
  if (cp.tcp?.connectTimeout) cluster.connect_timeout = duration(parseDurationMs(cp.tcp.connectTimeout));
  const hpo = httpProtocolOptions(cp, isHttp2(protocol));
  if (hpo) cluster.typed_extension_protocol_options = { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': hpo };
  const keepalive = tcpKeepalive(cp);
  if (keepalive) cluster.upstream_connection_options = keepalive;
  return cluster;
}
