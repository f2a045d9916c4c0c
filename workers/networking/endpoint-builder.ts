/**
 * EDS: a ClusterLoadAssignment per cluster, endpoints grouped by locality, each locality weighted by its endpoint
 * count (grpc-js-xds drops localities without load_balancing_weight). Unhealthy endpoints are left out, as istiod
 * does unless PILOT_SEND_UNHEALTHY_ENDPOINTS is set. Follows istio pilot/pkg/xds/endpoints/endpoint_builder.go.
 */
import { endpointTlsMetadata } from './security/tls-context.js';
import type { ProtoObject } from '../../src/proto/encode.js';
import { ENDPOINT_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { localityString, type Endpoint } from '../../src/model/service.js';
import { parseClusterName } from './names.js';
import { scopedDestinationRule, serviceFor } from './sidecar-scope.js';
import { effectivePolicy } from './traffic-policy.js';
import { applyLocalityLb, effectiveLocalityLbSetting, localityLbActive, type LocalityGroup } from './locality-lb.js';

export function subsetLabels(ctx: PushContext, scope: ProxyScope, host: string, subset: string): Record<string, string> | undefined {
  if (!subset) return {};
  const dr = scopedDestinationRule(ctx, scope, host);
  const s = (dr?.spec.subsets ?? []).find((x: any) => x.name === subset);
  return s ? (s.labels ?? {}) : undefined;
}

export function clusterEndpoints(ctx: PushContext, scope: ProxyScope, name: string): Endpoint[] {
  const parts = parseClusterName(name);
  if (!parts || parts.direction !== 'outbound') return [];
  const svc = serviceFor(ctx, scope, parts.host);
  const port = svc?.ports.find((p) => p.port === parts.port);
  if (!svc || !port) return [];
  const labels = subsetLabels(ctx, scope, parts.host, parts.subset);
  if (!labels) return [];
  return ctx.endpointsOf(svc).filter((e) =>
    e.healthy && e.servicePortName === port.name && Object.entries(labels).every(([k, v]) => e.labels[k] === v));
}

export function buildLoadAssignment(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject {
  const byLocality = new Map<string, Endpoint[]>();
  for (const e of clusterEndpoints(ctx, scope, name)) {
    const key = localityString(e.locality);
    let l = byLocality.get(key);
    if (!l) byLocality.set(key, (l = []));
    l.push(e);
  }
  const keys = [...byLocality.keys()].sort();
  let groups: Array<LocalityGroup & { eps: Endpoint[] }> = keys.map((k) => {
    const eps = byLocality.get(k)!;
    return { locality: eps[0]!.locality, weight: eps.length, priority: 0, size: eps.length, eps };
  });
  const parts = parseClusterName(name);
  // istiod 1.29 marks Kubernetes endpoints HEALTHY and leaves a ServiceEntry's unset (UNKNOWN: also used).
  const fromServiceEntry = parts !== undefined && serviceFor(ctx, scope, parts.host)?.registry === 'ServiceEntry';
  if (parts && scope.locality !== undefined) {
    const policy = effectivePolicy(scopedDestinationRule(ctx, scope, parts.host), parts.port, parts.subset);
    const setting = effectiveLocalityLbSetting(ctx.data.mesh.localityLbSetting, policy.loadBalancer?.localityLbSetting);
    if (setting && localityLbActive(setting, policy.outlierDetection)) {
      groups = applyLocalityLb(groups, scope.locality, setting, policy.outlierDetection !== undefined) as typeof groups;
    }
  }
  return {
    '@type': ENDPOINT_TYPE,
    cluster_name: name,
    endpoints: groups.map((g) => ({
      locality: { region: g.locality.region, zone: g.locality.zone, sub_zone: g.locality.subzone },
      lb_endpoints: g.eps.map((e) => ({
        endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
        health_status: fromServiceEntry ? undefined : 'HEALTHY',
        // Auto mTLS picks the transport socket per endpoint by this metadata (Envoy only).
        metadata: scope.generator === 'envoy' ? endpointTlsMetadata(e.labels) : undefined,
        load_balancing_weight: { value: 1 },
      })),
      load_balancing_weight: { value: g.weight },
      priority: g.priority || undefined,
    })),
  };
}
