/**
 * One entry point per xDS type: plan (which resources a scope gets, each with a cache key derived from the inputs
 * it depends on) and build (the resource itself). Both are pure functions of (PushContext, ProxyScope); plan is
 * cheap and runs on the main thread to look up the cache, build runs in a worker only for cache misses.
 */
import { createHash } from 'node:crypto';
import { encodeAny, encodeAnyBytes, type ProtoObject } from '../../src/proto/encode.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { meshDigest, type PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER } from '../../src/model/constants.js';
import {
  blackholeCluster, inboundCluster, inboundDestinationRule, inboundPassthroughCluster, outboundCluster, passthroughCluster,
} from './cluster-builder.js';
import { buildLoadAssignment } from './endpoint-builder.js';
import { buildGrpcListener, buildSidecarListener, planSidecarListeners } from './listener-builder.js';
import { buildGrpcInboundListener, isGrpcInboundName } from './security/grpc-inbound.js';
import { securityInputsKey } from './security/policy-select.js';
import { serviceIdentities, usesIstioMutual } from './security/tls-context.js';
import { buildRouteConfiguration, encodeSidecarRouteConfiguration, hostRouteInputs, sidecarVirtualHostInputs, sidecarVirtualHosts } from './route-builder.js';
import { clusterName, dnsSrvSubsetKey, inboundClusterName, parseClusterName, parseDnsSrvSubsetKey, parseHostPort } from './names.js';
import { hasAutoPassthrough, sniDnatCluster, sniDnatLoadAssignment } from './sni-dnat.js';
import { visibleServices, visibleTo } from './visibility.js';
import type { Service } from '../../src/model/service.js';
import { scopeIncludes, serviceFor, sidecarScope } from './sidecar-scope.js';
import { effectivePolicy, isPassthroughLb } from './traffic-policy.js';
import { tcpRouteDependencies } from './tcp-route.js';
import {
  buildGatewayListener, buildGatewayRoute, planGatewayListeners, planGatewayRoutes,
} from './gateway-builder.js';

export interface PlanItem { name: string; key: string }

function digest(parts: string[]): string {
  return createHash('sha1').update(parts.join('\n')).digest('base64url').slice(0, 20);
}

function wants(requested: readonly string[] | undefined, name: string): boolean {
  return requested === undefined || requested.includes(name);
}

/** EDS serves only clusters of discovery type EDS (not DNS, not ORIGINAL_DST ones). */
function usesEds(ctx: PushContext, scope: ProxyScope, svc: Service, port: number, subset: string): boolean {
  if (svc.resolution === 'DNS' || svc.resolution === 'NONE') return false;
  return !isPassthroughLb(effectivePolicy(ctx.destinationRuleFor(svc.hostname, scope.namespace, svc.namespace, scope.drLabels), port, subset).loadBalancer);
}

/**
 * The outbound part of a CDS plan reads everything in the scope except the proxy's own inbound ports, so every
 * workload of a namespace (same Sidecar) shares it: memoised per PushContext, keyed by the rest of the scope.
 */
const outboundPlans = new WeakMap<PushContext, Map<string, PlanItem[]>>();

function planClusters(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  let perCtx = outboundPlans.get(ctx);
  if (!perCtx) outboundPlans.set(ctx, (perCtx = new Map()));
  const memoKey = `${JSON.stringify({ ...scope, inbound: undefined })}|${requested === undefined ? '*' : requested.join(',')}`;
  let outbound = perCtx.get(memoKey);
  if (!outbound) { outbound = planOutboundClusters(ctx, scope, requested); perCtx.set(memoKey, outbound); }
  const out = [...outbound];
  const ct = ctx.data.mesh.connectTimeoutMs;
  if (scope.generator === 'envoy' && scope.type === 'sidecar') {
    // A Sidecar with ingress listeners owns the inbound clusters (their defaultEndpoints), in any interception mode.
    const { ingress, inboundConnectionPool } = sidecarScope(ctx, scope);
    const pool = JSON.stringify(inboundConnectionPool ?? null);
    if (scope.interception !== 'NONE' && wants(requested, INBOUND_PASSTHROUGH_CLUSTER)) out.push({ name: INBOUND_PASSTHROUGH_CLUSTER, key: `${INBOUND_PASSTHROUGH_CLUSTER}|${ct}` });
    if (ingress.length > 0) {
      for (const l of ingress) {
        const name = inboundClusterName(l.port.number);
        if (wants(requested, name)) out.push({ name, key: `${name}|${ct}|${JSON.stringify(l)}|${pool}|${scope.instanceIp ?? ''}` });
      }
    } else if (scope.interception !== 'NONE') {
      for (const inst of scope.inbound) {
        const name = inboundClusterName(inst.targetPort);
        // The service's DestinationRule lends its connection pool.
        const dr = inboundDestinationRule(ctx, scope, inst);
        if (wants(requested, name)) out.push({ name, key: `${name}|${ct}|${inst.protocol}|${pool}|${dr?.version ?? ''}` });
      }
    }
  }
  return out;
}

function planOutboundClusters(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  const out: PlanItem[] = [];
  const ct = ctx.data.mesh.connectTimeoutMs;
  // gRPC names what it wants (any service it can see); otherwise the scope's services, which it decided on (a
  // VirtualService destination of the proxy's own namespace is imported even when not exported to it).
  const named = requested !== undefined && scope.generator === 'grpc';
  const services = named
    ? requested.flatMap((n) => { const p = parseClusterName(n); const svc = p && serviceFor(ctx, scope, p.host); return svc && visibleTo(svc, scope.namespace) ? [svc] : []; })
    : visibleServices(ctx, scope);
  const seen = new Set<string>();
  // A router with an AUTO_PASSTHROUGH server also gets the SNI-DNAT twin of each mesh-internal cluster (sni-dnat.ts).
  const sniDnat = hasAutoPassthrough(ctx, scope);
  const sniItems: PlanItem[] = [];
  for (const svc of services) {
    if (seen.has(svc.hostname)) continue;
    seen.add(svc.hostname);
    const dr = ctx.destinationRuleFor(svc.hostname, scope.namespace, svc.namespace, scope.drLabels);
    const subsets: string[] = ['', ...((dr?.spec.subsets ?? []) as any[]).map((s) => s.name as string)];
    // DNS clusters carry their endpoints inline; Istio mTLS (ISTIO_MUTUAL, and auto mTLS for Envoy) matches the
    // endpoints' identities (SANs), which change far less often than the endpoints.
    const eps = (svc.resolution === 'DNS' ? ctx.endpointVersion(svc.hostname) : '')
      + (usesIstioMutual(dr) || (scope.generator === 'envoy' && !svc.meshExternal) ? `|${serviceIdentities(ctx, svc).join(',')}` : '');
    for (const p of svc.ports) {
      if (p.protocol === 'UDP') continue;
      for (const subset of subsets) {
        const name = clusterName('outbound', p.port, subset, svc.hostname);
        if (wants(requested, name)) out.push({ name, key: `${scope.generator}|${name}|${svc.version}|${dr?.version ?? ''}|${ct}|${eps}` });
        const sni = sniDnat && !svc.meshExternal ? dnsSrvSubsetKey(p.port, subset, svc.hostname) : undefined;
        if (sni && wants(requested, sni)) sniItems.push({ name: sni, key: `sni-dnat|${sni}|${svc.version}|${dr?.version ?? ''}|${ct}|${eps}` });
      }
    }
  }
  out.push(...sniItems);
  if (scope.generator === 'envoy') {
    // Gateways have no PassthroughCluster (istiod: nothing of theirs forwards to an original destination).
    const fixed = scope.type === 'router' ? [BLACKHOLE_CLUSTER] : [BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER];
    for (const name of fixed) if (wants(requested, name)) out.push({ name, key: `${name}|${ct}` });
  }
  return out;
}

function planEndpoints(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  // EDS is always requested by name; a wildcard EDS request means "every outbound cluster we send".
  const names = requested ?? planClusters(ctx, scope).map((c) => c.name).filter((n) => n.startsWith('outbound|') || n.startsWith('outbound_.'));
  const out: PlanItem[] = [];
  for (const name of names) {
    const parts = parseClusterName(name) ?? parseDnsSrvSubsetKey(name);
    const svc = parts ? serviceFor(ctx, scope, parts.host) : undefined;
    if (!parts || !svc || parts.direction !== 'outbound' || !(visibleTo(svc, scope.namespace) || scopeIncludes(ctx, scope, svc))) continue;
    if (!usesEds(ctx, scope, svc, parts.port, parts.subset)) continue;
    const dr = ctx.destinationRuleFor(parts.host, scope.namespace, svc.namespace, scope.drLabels);
    // Locality load balancing reads the DestinationRule and the proxy's locality.
    const loc = scope.locality !== undefined ? `|${dr?.version ?? ''}|${scope.locality}` : '';
    out.push({ name, key: `eds|${name}|${svc.version}|${ctx.endpointVersion(parts.host)}|${parts.subset ? (dr?.version ?? '') : ''}${loc}` });
  }
  return out;
}

function planListeners(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  if (scope.generator === 'grpc') {
    return (requested ?? []).flatMap((name) => {
      // A gRPC server's own listener (XdsServer): its security config is its only input.
      if (isGrpcInboundName(name)) return [{ name, key: `grpc-lds-in|${name}|${securityInputsKey(ctx, scope.namespace, scope.securityLabels ?? {})}` }];
      const hp = parseHostPort(name);
      const svc = hp ? serviceFor(ctx, scope, hp.host) : undefined;
      return svc && visibleTo(svc, scope.namespace) && svc.ports.some((p) => p.port === hp!.port)
        ? [{ name, key: `grpc-lds|${name}` }] : [];
    });
  }
  if (scope.type === 'router') {
    return planGatewayListeners(ctx, scope).filter((p) => wants(requested, p.name)).map((p) => ({ name: p.name, key: `gw-lds|${p.name}|${p.key}|${securityInputsKey(ctx, scope.namespace, scope.securityLabels ?? {})}` }));
  }
  const sc = sidecarScope(ctx, scope);
  const policy = sc.outboundPolicy;
  // Inbound chains also read whether the proxy gets SDS secrets from us (mTLS chains only then).
  const security = (): string => `${securityInputsKey(ctx, scope.namespace, scope.securityLabels ?? {})}|${scope.sds === true ? 'sds' : ''}`;
  return planSidecarListeners(ctx, scope).filter((p) => wants(requested, p.name)).map((p) => {
    switch (p.kind) {
      // Inbound chains come from the service ports or the Sidecar's ingress listeners (binds, instance IP).
      case 'virtualInbound': return { name: p.name, key: `lds|${p.name}|${digest(scope.inbound.map((i) => JSON.stringify(i)))}|${sc.ingress.length > 0 ? scope.sidecar : ''}|${sc.listenersKey}|${scope.instanceIp ?? ''}|${security()}` };
      case 'inbound': return { name: p.name, key: `lds|${p.name}|${JSON.stringify(p.inbound)}|${security()}` };
      case 'virtualOutbound': return { name: p.name, key: `lds|${p.name}|${policy}` };
      case 'tcp': if (p.sniServices) {
        // Every service of the SNI listener, its VirtualServices, and the default chain's outbound policy.
        const deps = p.sniServices.map(({ service: s, port }) => `${port}|${s.hostname}@${s.version}|${tcpRouteDependencies(ctx, s, p.virtualServices ?? [])}`);
        return { name: p.name, key: `lds|${p.name}|sni|${scope.interception}|${p.bindToPort}|${scope.namespace}|${JSON.stringify(scope.labels)}|${policy}|${deps.join(';')}` };
      } else return {
        name: p.name,
        key: `lds|${p.name}|${scope.interception}|${p.bindToPort}|${p.servicePort}|${p.service!.hostname}@${p.service!.version}|${scope.namespace}|${JSON.stringify(scope.labels)}|${tcpRouteDependencies(ctx, p.service!, p.virtualServices ?? [])}`,
      };
      // HTTP: the default chain for what is not HTTP reads the outbound policy.
      default: return { name: p.name, key: `lds|${p.name}|${scope.interception}|${p.bindToPort}|${p.routeName}|${policy}` };
    }
  });
}

/**
 * Everything a proxyless route configuration for these services reads: the proxy's namespace (domains,
 * exportTo, DestinationRule choice) and route-relevant labels, each service, its VirtualService with delegates,
 * every destination and mirror with its DestinationRule (hash policies), the service's own DestinationRule (hash
 * policy on the default route), and the catch-all policy.
 */
function routeInputs(ctx: PushContext, scope: ProxyScope, hosts: string[], port: number): string {
  const parts: string[] = [scope.generator, scope.namespace, JSON.stringify(scope.labels), sidecarScope(ctx, scope).outboundPolicy];
  for (const host of hosts) parts.push(hostRouteInputs(ctx, scope, host, port));
  return digest(parts);
}

function planRoutes(ctx: PushContext, scope: ProxyScope, requested?: readonly string[]): PlanItem[] {
  if (scope.generator === 'grpc') {
    return (requested ?? []).flatMap((name) => {
      const hp = parseHostPort(name);
      const svc = hp ? serviceFor(ctx, scope, hp.host) : undefined;
      return svc && visibleTo(svc, scope.namespace) ? [{ name, key: `grpc-rds|${name}|${routeInputs(ctx, scope, [svc.hostname], hp!.port)}` }] : [];
    });
  }
  if (scope.type === 'router') {
    return planGatewayRoutes(ctx, scope).filter((p) => wants(requested, p.name)).map((p) => ({ name: p.name, key: `gw-rds|${p.name}|${p.key}` }));
  }
  // One route configuration per HTTP listener's route name (service ports and Sidecar egress ports).
  const ports = new Set<number>();
  for (const p of planSidecarListeners(ctx, scope)) if (p.kind === 'http') ports.add(Number(p.routeName ?? p.port));
  const out: PlanItem[] = [];
  for (const port of [...ports].sort((a, b) => a - b)) {
    const name = String(port);
    if (!wants(requested, name)) continue;
    // Each virtual host's inputs (a service's, or a VirtualService host's) and its domains, in order.
    const parts: string[] = [scope.generator, scope.namespace, JSON.stringify(scope.labels), sidecarScope(ctx, scope).outboundPolicy];
    for (const v of sidecarVirtualHosts(ctx, scope, port)) parts.push(`${v.svc ? 'svc' : 'vs'} ${v.host}`, sidecarVirtualHostInputs(ctx, scope, v, port));
    out.push({ name, key: `rds|${name}|${digest(parts)}` });
  }
  return out;
}

function planByType(ctx: PushContext, scope: ProxyScope, typeUrl: string, requested?: readonly string[]): PlanItem[] {
  switch (typeUrl) {
    case CLUSTER_TYPE: return planClusters(ctx, scope, requested);
    case ENDPOINT_TYPE: return planEndpoints(ctx, scope, requested);
    case LISTENER_TYPE: return planListeners(ctx, scope, requested);
    case ROUTE_TYPE: return planRoutes(ctx, scope, requested);
    default: return [];
  }
}

/**
 * `requested` undefined means a wildcard subscription. Every key ends with the mesh config's digest: a mesh change
 * (outbound policy, locality LB, auto mTLS, exportTo defaults, extension providers…) regenerates everything, as
 * istiod clears its XDS cache on a mesh change.
 */
export function planResources(ctx: PushContext, scope: ProxyScope, typeUrl: string, requested?: readonly string[]): PlanItem[] {
  const mesh = `|mesh:${meshDigest(ctx.data.mesh)}`;
  return planByType(ctx, scope, typeUrl, requested).map((p) => ({ name: p.name, key: p.key + mesh }));
}

/**
 * A resource as encoded google.protobuf.Any bytes, or null when it does not exist for this scope. Sidecar route
 * configurations are assembled from cached encoded virtual hosts (same bytes as encoding buildResource's object).
 */
export function encodeResource(ctx: PushContext, scope: ProxyScope, typeUrl: string, name: string): Uint8Array | null {
  if (typeUrl === ROUTE_TYPE && scope.type !== 'router' && scope.generator === 'envoy') {
    const rc = encodeSidecarRouteConfiguration(ctx, scope, name);
    return rc ? encodeAnyBytes(ROUTE_TYPE, rc) : null;
  }
  const obj = buildResource(ctx, scope, typeUrl, name);
  return obj ? encodeAny(obj as typeof obj & { '@type': string }) : null;
}

export function buildResource(ctx: PushContext, scope: ProxyScope, typeUrl: string, name: string): ProtoObject | undefined {
  switch (typeUrl) {
    case CLUSTER_TYPE: {
      if (name === BLACKHOLE_CLUSTER) return blackholeCluster(ctx);
      if (name === PASSTHROUGH_CLUSTER) return passthroughCluster(ctx);
      if (name === INBOUND_PASSTHROUGH_CLUSTER) return inboundPassthroughCluster(ctx);
      const sni = parseDnsSrvSubsetKey(name);
      if (sni) {
        const svc = serviceFor(ctx, scope, sni.host);
        const port = svc?.ports.find((p) => p.port === sni.port);
        return svc && port ? sniDnatCluster(ctx, scope, svc, port, sni.subset) : undefined;
      }
      const parts = parseClusterName(name);
      if (!parts) return undefined;
      if (parts.direction === 'inbound') return inboundCluster(ctx, scope, parts.port);
      const svc = serviceFor(ctx, scope, parts.host);
      const port = svc?.ports.find((p) => p.port === parts.port);
      return svc && port ? outboundCluster(ctx, scope, svc, port, parts.subset) : undefined;
    }
    case ENDPOINT_TYPE: {
      const sni = parseDnsSrvSubsetKey(name);
      return sni ? sniDnatLoadAssignment(ctx, scope, sni) : buildLoadAssignment(ctx, scope, name);
    }
    case LISTENER_TYPE: {
      if (scope.generator === 'grpc') {
        return isGrpcInboundName(name) ? buildGrpcInboundListener(ctx, scope.namespace, scope.securityLabels ?? {}, name) : buildGrpcListener(ctx, scope, name);
      }
      if (scope.type === 'router') return buildGatewayListener(ctx, scope, name);
      const plan = planSidecarListeners(ctx, scope).find((p) => p.name === name);
      return plan ? buildSidecarListener(ctx, scope, plan) : undefined;
    }
    case ROUTE_TYPE:
      if (scope.type === 'router' && scope.generator === 'envoy') return buildGatewayRoute(ctx, scope, name);
      return buildRouteConfiguration(ctx, scope, name);
    default:
      return undefined;
  }
}
