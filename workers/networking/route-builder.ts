/**
 * RDS: route configurations. Sidecars get one RouteConfiguration per outbound HTTP port (named "PORT") with a
 * virtual host per visible service; proxyless gRPC gets one per HOST:PORT. VirtualService http routes are
 * translated as istio pilot/pkg/networking/core/route/route.go does; without one, a default route with Istio's
 * default retry policy (route/retry/retry.go).
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration } from '../../src/proto/encode.js';
import { ROUTE_TYPE } from '../../src/proto/type-urls.js';
import type { PushContext, ConfigEntry } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service } from '../../src/model/service.js';
import { isHttp } from '../../src/model/protocol.js';
import { parseDurationMs } from '../../src/model/duration.js';
import { ALLOW_ANY_VHOST, PASSTHROUGH_CLUSTER } from '../../src/model/constants.js';
import { clusterName, parseHostPort } from './names.js';
import { visibleServices, visibleTo } from './visibility.js';

const PREVIOUS_HOSTS_TYPE = 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';
const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
const DEFAULT_ATTEMPTS = 2;

function retryPolicy(scope: ProxyScope, retries: any | undefined): ProtoObject | undefined {
  if (retries && retries.attempts === 0) return undefined;
  if (!retries && scope.generator === 'grpc') return undefined;
  const policy: ProtoObject = {
    retry_on: retries?.retryOn ?? DEFAULT_RETRY_ON,
    num_retries: { value: retries?.attempts ?? DEFAULT_ATTEMPTS },
  };
  if (scope.generator === 'envoy') {
    policy.retry_host_predicate = [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': PREVIOUS_HOSTS_TYPE } }];
    policy.host_selection_retry_max_attempts = 5;
    policy.retriable_status_codes = [503];
  }
  if (retries?.perTryTimeout) policy.per_try_timeout = duration(parseDurationMs(retries.perTryTimeout));
  return policy;
}

function stringMatch(m: any): ProtoObject | undefined {
  if (!m) return undefined;
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return undefined;
}

function routeMatch(m: any | undefined): ProtoObject {
  const match: ProtoObject = {};
  const uri = m?.uri;
  if (uri?.exact !== undefined) match.path = uri.exact;
  else if (uri?.prefix !== undefined) match.prefix = uri.prefix;
  else if (uri?.regex !== undefined) match.safe_regex = { regex: uri.regex };
  else match.prefix = '/';
  if (m?.ignoreUriCase) match.case_sensitive = { value: false };
  const headers: ProtoObject[] = [];
  for (const [name, sm] of Object.entries((m?.headers ?? {}) as Record<string, any>)) {
    const string_match = stringMatch(sm);
    headers.push(string_match ? { name, string_match } : { name, present_match: true });
  }
  for (const [name, sm] of Object.entries((m?.withoutHeaders ?? {}) as Record<string, any>)) {
    const string_match = stringMatch(sm);
    headers.push(string_match ? { name, string_match, invert_match: true } : { name, present_match: true, invert_match: true });
  }
  if (m?.method) headers.push({ name: ':method', string_match: stringMatch(m.method) });
  if (m?.authority) headers.push({ name: ':authority', string_match: stringMatch(m.authority) });
  if (headers.length) match.headers = headers;
  const qp = Object.entries((m?.queryParams ?? {}) as Record<string, any>);
  if (qp.length) match.query_parameters = qp.map(([name, sm]) => ({ name, string_match: stringMatch(sm) }));
  return match;
}

/** `dest` is an HTTPRouteDestination's `destination` (host, subset, port). */
function destinationCluster(ctx: PushContext, vs: ConfigEntry, dest: any, listenerPort: number): string {
  const host = ctx.qualify(dest.host, vs.namespace);
  const svc = ctx.service(host);
  const port: number = dest.port?.number ?? (svc?.ports.length === 1 ? svc.ports[0]!.port : listenerPort);
  return clusterName('outbound', port, dest.subset ?? '', host);
}

function appliesToMesh(vs: ConfigEntry, http: any): boolean {
  const gws: string[] = http.match?.some((m: any) => m.gateways) ? http.match.flatMap((m: any) => m.gateways ?? []) : (vs.spec.gateways ?? ['mesh']);
  return gws.length === 0 || gws.includes('mesh');
}

function vsRoutes(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, svc: Service, port: number): ProtoObject[] {
  const out: ProtoObject[] = [];
  for (const http of (vs.spec.http ?? []) as any[]) {
    if (!appliesToMesh(vs, http)) continue;
    const matches: any[] = (http.match ?? [undefined]).filter((m: any) => !m?.port || m.port === port);
    if (matches.length === 0) continue;
    const dests: any[] = http.route ?? [];
    const action: ProtoObject = {};
    if (dests.length === 1) action.cluster = destinationCluster(ctx, vs, dests[0].destination, port);
    else if (dests.length > 1) {
      action.weighted_clusters = {
        clusters: dests.map((d) => ({ name: destinationCluster(ctx, vs, d.destination, port), weight: { value: d.weight ?? 0 } })),
      };
    }
    if (dests.length === 0) continue; // redirects, direct responses, delegates: the traffic issue
    action.timeout = duration(http.timeout ? parseDurationMs(http.timeout) : 0);
    const retry = retryPolicy(scope, http.retries);
    if (retry) action.retry_policy = retry;
    if (scope.generator === 'envoy') action.max_stream_duration = { max_stream_duration: duration(0), grpc_timeout_header_max: duration(0) };
    for (const m of matches) {
      const r: ProtoObject = { match: routeMatch(m), route: action };
      if (http.name || m?.name) r.name = [http.name, m?.name].filter(Boolean).join('.');
      if (scope.generator === 'envoy') r.decorator = { operation: `${svc.hostname}:${port}/*` };
      out.push(r);
    }
  }
  return out;
}

function defaultRoute(scope: ProxyScope, svc: Service, port: number): ProtoObject {
  const action: ProtoObject = { cluster: clusterName('outbound', port, '', svc.hostname), timeout: duration(0) };
  const retry = retryPolicy(scope, undefined);
  if (retry) action.retry_policy = retry;
  if (scope.generator === 'envoy') action.max_stream_duration = { max_stream_duration: duration(0), grpc_timeout_header_max: duration(0) };
  const r: ProtoObject = { name: 'default', match: { prefix: '/' }, route: action };
  if (scope.generator === 'envoy') r.decorator = { operation: `${svc.hostname}:${port}/*` };
  return r;
}

/** The VirtualService that decides routing for a host, as seen from a proxy's namespace (first visible wins). */
export function virtualServiceFor(ctx: PushContext, scope: ProxyScope, host: string): ConfigEntry | undefined {
  return ctx.virtualServicesFor(host).find((vs) => {
    const exportTo: string[] = vs.spec.exportTo ?? ['*'];
    return exportTo.some((e) => e === '*' || (e === '.' ? vs.namespace === scope.namespace : e === scope.namespace));
  });
}

/** Domains istiod generates for a service's virtual host (route/route.go generateVirtualHostDomains). */
export function virtualHostDomains(svc: Service, port: number, proxyNamespace: string): string[] {
  const names = [svc.hostname];
  const parts = svc.hostname.split('.');
  if (svc.hostname.endsWith('.svc.' + parts.slice(3).join('.')) && parts.length > 3) {
    if (svc.namespace === proxyNamespace) names.push(parts[0]!);
    names.push(`${parts[0]}.${parts[1]}.svc`, `${parts[0]}.${parts[1]}`);
  }
  if (svc.address) names.push(svc.address);
  return names.flatMap((n) => [n, `${n}:${port}`]);
}

export function virtualHost(ctx: PushContext, scope: ProxyScope, svc: Service, port: number, domains: string[]): ProtoObject {
  const vs = virtualServiceFor(ctx, scope, svc.hostname);
  const routes = vs ? vsRoutes(ctx, scope, vs, svc, port) : [defaultRoute(scope, svc, port)];
  return { name: `${svc.hostname}:${port}`, domains, routes, include_request_attempt_count: scope.generator === 'envoy' ? true : undefined };
}

export function sidecarRouteServices(ctx: PushContext, scope: ProxyScope, port: number): Service[] {
  return visibleServices(ctx, scope).filter((s) => s.ports.some((p) => p.port === port && isHttp(p.protocol)));
}

export function buildRouteConfiguration(ctx: PushContext, scope: ProxyScope, name: string): ProtoObject | undefined {
  if (scope.generator === 'grpc') {
    const hp = parseHostPort(name);
    const svc = hp ? ctx.service(hp.host) : undefined;
    if (!hp || !svc || !visibleTo(svc, scope.namespace)) return undefined;
    return {
      '@type': ROUTE_TYPE,
      name,
      virtual_hosts: [virtualHost(ctx, scope, svc, hp.port, [svc.hostname, `${svc.hostname}:${hp.port}`])],
    };
  }
  const port = Number(name);
  if (!Number.isInteger(port)) return undefined;
  const vhosts = sidecarRouteServices(ctx, scope, port).map((svc) =>
    virtualHost(ctx, scope, svc, port, virtualHostDomains(svc, port, scope.namespace)));
  vhosts.push({
    name: ALLOW_ANY_VHOST,
    domains: ['*'],
    routes: [{ name: ALLOW_ANY_VHOST, match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: duration(0) } }],
  });
  return { '@type': ROUTE_TYPE, name, virtual_hosts: vhosts, validate_clusters: { value: false } };
}
