/**
 * One entry point per xDS type: plan (which resources a scope gets, each with a cache key derived from the inputs
 * it depends on) and build (the resource itself). Both are pure functions of (PushContext, ProxyScope); plan is
 * cheap and runs on the main thread to look up the cache, build runs in a worker only for cache misses.
 */
import { createHash } from 'node:crypto';
import type { ProtoObject } from '../../src/proto/encode.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { isHttp } from '../../src/model/protocol.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER } from '../../src/model/constants.js';
import {
  blackholeCluster, inboundCluster, inboundPassthroughCluster, outboundCluster, passthroughCluster,
} from './cluster-builder.js';
import { buildLoadAssignment } from './endpoint-builder.js';
import { buildGrpcListener, buildSidecarListener, planSidecarListeners } from './listener-builder.js';
import { buildRouteConfiguration, sidecarRouteServices, virtualServiceFor } from './route-builder.js';
import { clusterName, inboundClusterName, parseClusterName, parseHostPort } from './names.js';
import { visibleServices, visibleTo } from './visibility.js';

export interface PlanItem { name: string; key: string }

function digest(parts: string[]): string {
  return createHash('sha1').update(parts.join('\n')).digest('base64url').slice(0, 20);
}

function wants(requested: readonly string[] | undefined, name: string): boolean {
  return requested === undefined || requested.includes(name);
}

function planClusters(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  const out: PlanItem[] = [];
  const ct = ctx.data.mesh.connectTimeoutMs;
  const services = requested && scope.generator === 'grpc'
    ? requested.map((n) => parseClusterName(n)).flatMap((p) => (p && ctx.service(p.host) ? [ctx.service(p.host)!] : []))
    : visibleServices(ctx, scope);
  const seen = new Set<string>();
  for (const svc of services) {
    if (!visibleTo(svc, scope.namespace) || seen.has(svc.hostname)) continue;
    seen.add(svc.hostname);
    const dr = ctx.destinationRuleFor(svc.hostname, scope.namespace);
    const subsets: string[] = ['', ...((dr?.spec.subsets ?? []) as any[]).map((s) => s.name as string)];
    for (const p of svc.ports) {
      if (p.protocol === 'UDP') continue;
      for (const subset of subsets) {
        const name = clusterName('outbound', p.port, subset, svc.hostname);
        if (wants(requested, name)) out.push({ name, key: `${scope.generator}|${name}|${svc.version}|${dr?.version ?? ''}|${ct}` });
      }
    }
  }
  if (scope.generator === 'envoy') {
    for (const name of [BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER]) if (wants(requested, name)) out.push({ name, key: `${name}|${ct}` });
    if (scope.interception !== 'NONE') {
      if (wants(requested, INBOUND_PASSTHROUGH_CLUSTER)) out.push({ name: INBOUND_PASSTHROUGH_CLUSTER, key: `${INBOUND_PASSTHROUGH_CLUSTER}|${ct}` });
      for (const inst of scope.inbound) {
        const name = inboundClusterName(inst.targetPort);
        if (wants(requested, name)) out.push({ name, key: `${name}|${ct}` });
      }
    }
  }
  return out;
}

function planEndpoints(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  // EDS is always requested by name; a wildcard EDS request means "every outbound cluster we send".
  const names = requested ?? planClusters(ctx, scope).map((c) => c.name).filter((n) => n.startsWith('outbound|'));
  const out: PlanItem[] = [];
  for (const name of names) {
    const parts = parseClusterName(name);
    const svc = parts ? ctx.service(parts.host) : undefined;
    if (!parts || !svc || parts.direction !== 'outbound' || !visibleTo(svc, scope.namespace)) continue;
    const dr = parts.subset ? ctx.destinationRuleFor(parts.host, scope.namespace) : undefined;
    out.push({ name, key: `eds|${name}|${svc.version}|${ctx.endpointVersion(parts.host)}|${dr?.version ?? ''}` });
  }
  return out;
}

function planListeners(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  if (scope.generator === 'grpc') {
    return (requested ?? []).flatMap((name) => {
      const hp = parseHostPort(name);
      const svc = hp ? ctx.service(hp.host) : undefined;
      return svc && visibleTo(svc, scope.namespace) && svc.ports.some((p) => p.port === hp!.port)
        ? [{ name, key: `grpc-lds|${name}` }] : [];
    });
  }
  if (scope.type !== 'sidecar') return [];
  return planSidecarListeners(ctx, scope).filter((p) => wants(requested, p.name)).map((p) => {
    switch (p.kind) {
      case 'virtualInbound': return { name: p.name, key: `lds|${p.name}|${digest(scope.inbound.map((i) => JSON.stringify(i)))}` };
      case 'tcp': return { name: p.name, key: `lds|${p.name}|${scope.interception}|${p.service!.hostname}` };
      default: return { name: p.name, key: `lds|${p.name}|${scope.interception}` };
    }
  });
}

/** Everything a route configuration for these services reads: services, their VirtualServices, their destinations. */
function routeInputs(ctx: PushContext, scope: ProxyScope, hosts: string[]): string {
  const parts: string[] = [scope.generator, scope.namespace];
  for (const host of hosts) {
    const svc = ctx.service(host);
    const vs = virtualServiceFor(ctx, scope, host);
    parts.push(`${host}|${svc?.version}|${vs ? `${vs.namespace}/${vs.name}@${vs.version}` : ''}`);
    for (const http of (vs?.spec.http ?? []) as any[]) {
      for (const d of (http.route ?? []) as any[]) {
        const dh = ctx.qualify(d.destination.host, vs!.namespace);
        parts.push(`${dh}@${ctx.service(dh)?.version ?? 'missing'}`);
      }
    }
  }
  return digest(parts);
}

function planRoutes(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  if (scope.generator === 'grpc') {
    return (requested ?? []).flatMap((name) => {
      const hp = parseHostPort(name);
      const svc = hp ? ctx.service(hp.host) : undefined;
      return svc && visibleTo(svc, scope.namespace) ? [{ name, key: `grpc-rds|${name}|${routeInputs(ctx, scope, [svc.hostname])}` }] : [];
    });
  }
  if (scope.type !== 'sidecar') return [];
  const ports = new Set<number>();
  for (const svc of visibleServices(ctx, scope)) for (const p of svc.ports) if (isHttp(p.protocol)) ports.add(p.port);
  const out: PlanItem[] = [];
  for (const port of [...ports].sort((a, b) => a - b)) {
    const name = String(port);
    if (!wants(requested, name)) continue;
    const hosts = sidecarRouteServices(ctx, scope, port).map((s) => s.hostname);
    out.push({ name, key: `rds|${name}|${routeInputs(ctx, scope, hosts)}` });
  }
  return out;
}

/** `requested` undefined means a wildcard subscription. */
export function planResources(ctx: PushContext, scope: ProxyScope, typeUrl: string, requested?: readonly string[]): PlanItem[] {
  switch (typeUrl) {
    case CLUSTER_TYPE: return planClusters(ctx, scope, requested);
    case ENDPOINT_TYPE: return planEndpoints(ctx, scope, requested);
    case LISTENER_TYPE: return planListeners(ctx, scope, requested);
    case ROUTE_TYPE: return planRoutes(ctx, scope, requested);
    default: return [];
  }
}

export function buildResource(ctx: PushContext, scope: ProxyScope, typeUrl: string, name: string): ProtoObject | undefined {
  switch (typeUrl) {
    case CLUSTER_TYPE: {
      if (name === BLACKHOLE_CLUSTER) return blackholeCluster(ctx);
      if (name === PASSTHROUGH_CLUSTER) return passthroughCluster(ctx);
      if (name === INBOUND_PASSTHROUGH_CLUSTER) return inboundPassthroughCluster(ctx);
      const parts = parseClusterName(name);
      if (!parts) return undefined;
      if (parts.direction === 'inbound') return inboundCluster(ctx, parts.port);
      const svc = ctx.service(parts.host);
      const port = svc?.ports.find((p) => p.port === parts.port);
      return svc && port ? outboundCluster(ctx, scope, svc, port, parts.subset) : undefined;
    }
    case ENDPOINT_TYPE:
      return buildLoadAssignment(ctx, scope, name);
    case LISTENER_TYPE: {
      if (scope.generator === 'grpc') return buildGrpcListener(ctx, scope, name);
      const plan = planSidecarListeners(ctx, scope).find((p) => p.name === name);
      return plan ? buildSidecarListener(ctx, scope, plan) : undefined;
    }
    case ROUTE_TYPE:
      return buildRouteConfiguration(ctx, scope, name);
    default:
      return undefined;
  }
}
