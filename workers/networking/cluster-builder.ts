/**
 * CDS: outbound clusters per service port and DestinationRule subset, inbound clusters per workload port, and the
 * fixed passthrough/blackhole clusters. Follows istio pilot/pkg/networking/core/cluster_builder.go.
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration, jsonToStruct } from '../../src/proto/encode.js';
import { CLUSTER_TYPE, HTTP_PROTOCOL_OPTIONS_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext, ConfigEntry } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service, ServicePort } from '../../src/model/service.js';
import { isHttp2 } from '../../src/model/protocol.js';
import {
  BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER,
} from '../../src/model/constants.js';
import { clusterName, inboundClusterName } from './names.js';

/** Envoy's max uint32, which istiod uses to lift the default circuit-breaker limits. */
const MAX_U32 = 4294967295;
const INBOUND_BIND_ADDRESS = '127.0.0.6';

const ADS_CONFIG_SOURCE = { ads: {}, initial_fetch_timeout: duration(0), resource_api_version: 'V3' };

function lbPolicy(dr: ConfigEntry | undefined, scope: ProxyScope, subset?: string): string {
  const subsetPolicy = subset ? (dr?.spec.subsets ?? []).find((s: any) => s.name === subset)?.trafficPolicy : undefined;
  const simple: string | undefined = subsetPolicy?.loadBalancer?.simple ?? dr?.spec.trafficPolicy?.loadBalancer?.simple;
  // gRPC clients implement ROUND_ROBIN (and ring hash); istiod's grpc generator defaults to it.
  if (scope.generator === 'grpc') return 'ROUND_ROBIN';
  switch (simple) {
    case 'ROUND_ROBIN': return 'ROUND_ROBIN';
    case 'RANDOM': return 'RANDOM';
    default: return 'LEAST_REQUEST';
  }
}

export function outboundCluster(ctx: PushContext, scope: ProxyScope, svc: Service, port: ServicePort, subset: string): ProtoObject {
  const name = clusterName('outbound', port.port, subset, svc.hostname);
  const dr = ctx.destinationRuleFor(svc.hostname, scope.namespace);
  const cluster: ProtoObject = {
    '@type': CLUSTER_TYPE,
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_CONFIG_SOURCE, service_name: name },
    connect_timeout: duration(ctx.data.mesh.connectTimeoutMs),
    lb_policy: lbPolicy(dr, scope, subset || undefined),
  };
  if (scope.generator === 'envoy') {
    cluster.circuit_breakers = {
      thresholds: [{ max_connections: { value: MAX_U32 }, max_pending_requests: { value: MAX_U32 }, max_requests: { value: MAX_U32 }, max_retries: { value: MAX_U32 }, track_remaining: true }],
    };
    cluster.common_lb_config = {};
    if (isHttp2(port.protocol)) {
      cluster.typed_extension_protocol_options = {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
          explicit_http_config: { http2_protocol_options: {} },
        },
      };
    }
    cluster.metadata = {
      filter_metadata: {
        istio: jsonToStruct({ services: [{ host: svc.hostname, name: svc.name, namespace: svc.namespace }] }),
      },
    };
  }
  return cluster;
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

export function passthroughCluster(ctx: PushContext): ProtoObject {
  return originalDstCluster(PASSTHROUGH_CLUSTER, ctx);
}

export function inboundPassthroughCluster(ctx: PushContext): ProtoObject {
  return originalDstCluster(INBOUND_PASSTHROUGH_CLUSTER, ctx, INBOUND_BIND_ADDRESS);
}

/** Inbound clusters deliver to the original destination (the workload's own IP:port), from 127.0.0.6 as istiod does. */
export function inboundCluster(ctx: PushContext, targetPort: number): ProtoObject {
  return originalDstCluster(inboundClusterName(targetPort), ctx, INBOUND_BIND_ADDRESS);
}

export function blackholeCluster(ctx: PushContext): ProtoObject {
  return {
    '@type': CLUSTER_TYPE,
    name: BLACKHOLE_CLUSTER,
    type: 'STATIC',
    connect_timeout: duration(ctx.data.mesh.connectTimeoutMs),
  };
}
