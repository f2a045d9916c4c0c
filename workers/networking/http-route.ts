/**
 * VirtualService `http` routes → Envoy routes, as istio pilot/pkg/networking/core/route/route.go
 * (BuildHTTPRoutesForVirtualService, translateRoute, TranslateRouteMatch, applyHTTPRouteDestination, ApplyRedirect,
 * ApplyDirectResponse, TranslateFault, TranslateCORSPolicy, consistentHashToHashPolicy) and route/retry/retry.go.
 * Delegate VirtualServices are merged into their root as istiod's mergeHTTPRoute does.
 */
import type { ProtoObject } from '../../src/proto/encode.js';
import { duration, jsonToStruct } from '../../src/proto/encode.js';
import {
  CORS_POLICY_TYPE, FAULT_TYPE, PREVIOUS_HOSTS_TYPE, PREVIOUS_PRIORITIES_TYPE,
} from '../../src/proto/type-urls.js';
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import { parseDurationMs } from '../../src/model/duration.js';
import { clusterName, parseClusterName } from './names.js';
import { effectivePolicy } from './traffic-policy.js';
import { scopedDestinationRule, serviceFor } from './sidecar-scope.js';

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';
const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
const DEFAULT_ATTEMPTS = 2;

/** gRPC status names Istio accepts in fault.abort.grpcStatus (istio pkg/config/protocol/grpc SupportedGRPCStatus). */
const GRPC_STATUS: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

const REDIRECT_CODES: Record<number, string> = {
  301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT',
};

/** Everything a route translation reads besides the VirtualService itself. */
export interface RouteContext {
  ctx: PushContext;
  scope: ProxyScope;
  /** The port the route configuration serves (for destinations without a port and match.port). */
  port: number;
  /** `mesh` for sidecars; the `NAMESPACE/NAME` of the proxy's gateways for routers. */
  gatewayNames: ReadonlySet<string>;
  /** Routes on a TLS-terminating server (redirect scheme defaults to https). */
  isTls?: boolean;
}

// ---------------------------------------------------------------------------
// Retries (route/retry/retry.go)
// ---------------------------------------------------------------------------

function parseRetryOn(retryOn: string): { on: string; codes: number[] } {
  const codes: number[] = [];
  const rest: string[] = [];
  for (const raw of retryOn.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const n = Number(part);
    if (Number.isInteger(n) && n >= 100 && n <= 599) codes.push(n); else rest.push(part);
  }
  return { on: rest.join(','), codes };
}

/** retry.ConvertPolicy: Istio's default without `retries`, none with attempts 0. */
export function retryPolicy(scope: ProxyScope, retries: any | undefined, consistentHash: boolean): ProtoObject | undefined {
  // Proxyless gRPC gets no default retry policy (istio pilot/pkg/networking/grpcgen).
  if (!retries && scope.generator === 'grpc') return undefined;
  if (retries && !(retries.attempts > 0)) return undefined;
  const envoy = scope.generator === 'envoy';
  const policy: ProtoObject = { retry_on: DEFAULT_RETRY_ON, num_retries: { value: retries?.attempts ?? DEFAULT_ATTEMPTS } };
  // istiod 1.29's default (retry.DefaultPolicy) lists retriable-status-codes in retry_on but no codes.
  let codes: number[] = [];
  if (retries?.retryOn) {
    const parsed = parseRetryOn(retries.retryOn);
    policy.retry_on = parsed.on;
    codes = parsed.codes;
    if (codes.length > 0 && !parsed.on.includes('retriable-status-codes')) {
      policy.retry_on = parsed.on ? `${parsed.on},retriable-status-codes` : 'retriable-status-codes';
    }
  }
  if (retries?.perTryTimeout) policy.per_try_timeout = duration(parseDurationMs(retries.perTryTimeout));
  if (!envoy) return policy;
  let previousHosts = !consistentHash;
  if (retries?.retryIgnorePreviousHosts !== undefined && retries.retryIgnorePreviousHosts !== null) previousHosts = retries.retryIgnorePreviousHosts;
  if (previousHosts) policy.retry_host_predicate = [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': PREVIOUS_HOSTS_TYPE } }];
  policy.host_selection_retry_max_attempts = 5;
  if (codes.length > 0) policy.retriable_status_codes = codes;
  if (retries?.retryRemoteLocalities) {
    policy.retry_priority = { name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': PREVIOUS_PRIORITIES_TYPE, update_frequency: 2 } };
  }
  if (retries?.backoff) policy.retry_back_off = { base_interval: duration(parseDurationMs(retries.backoff)) };
  return policy;
}

// ---------------------------------------------------------------------------
// Matches
// ---------------------------------------------------------------------------

function stringMatch(m: any): ProtoObject | undefined {
  if (!m) return undefined;
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return undefined;
}

/** An empty StringMatch, or regex `*`, means "present" (istio canBeConvertedToPresentMatch). */
function isPresentMatch(m: any): boolean {
  return !m || (m.exact === undefined && m.prefix === undefined && m.regex === undefined) || m.regex === '*';
}

function headerMatcher(name: string, m: any): ProtoObject {
  return isPresentMatch(m) ? { name, present_match: true } : { name, string_match: stringMatch(m) };
}

export function translateRouteMatch(m: any | undefined): ProtoObject {
  const match: ProtoObject = { prefix: '/' };
  if (!m) return match;
  const headers: ProtoObject[] = [];
  for (const [name, sm] of Object.entries((m.headers ?? {}) as Record<string, any>)) headers.push(headerMatcher(name, sm));
  for (const [name, sm] of Object.entries((m.withoutHeaders ?? {}) as Record<string, any>)) {
    const h = headerMatcher(name, sm);
    h.invert_match = true;
    if (!isPresentMatch(sm)) h.treat_missing_header_as_empty = true;
    headers.push(h);
  }
  headers.sort((a, b) => ((a.name as string) < (b.name as string) ? -1 : (a.name as string) > (b.name as string) ? 1 : 0));
  const uri = m.uri;
  if (uri?.exact !== undefined) { delete match.prefix; match.path = uri.exact; }
  else if (uri?.prefix !== undefined) match.prefix = uri.prefix;
  else if (uri?.regex !== undefined) { delete match.prefix; match.safe_regex = { regex: uri.regex }; }
  match.case_sensitive = { value: !m.ignoreUriCase };
  if (m.method) headers.push(headerMatcher(':method', m.method));
  if (m.authority) headers.push(headerMatcher(':authority', m.authority));
  if (m.scheme) headers.push(headerMatcher(':scheme', m.scheme));
  if (headers.length) match.headers = headers;
  const qp = Object.entries((m.queryParams ?? {}) as Record<string, any>);
  if (qp.length) {
    match.query_parameters = qp.map(([name, sm]) => (isPresentMatch(sm) ? { name, present_match: true } : { name, string_match: stringMatch(sm) }));
  }
  return match;
}

/** sourceMatchHTTP: a match's gateways, or else its sourceLabels and sourceNamespace, must fit the proxy. */
function sourceMatches(m: any | undefined, rc: RouteContext, vs: ConfigEntry): boolean {
  if (!m) return true;
  // Gateway names in a match resolve like the VirtualService's own `gateways`: short names in its namespace.
  if (m.gateways?.length) return (m.gateways as string[]).some((g) => rc.gatewayNames.has(g === 'mesh' || g.includes('/') ? g : `${vs.namespace}/${g}`));
  const labels = (m.sourceLabels ?? {}) as Record<string, string>;
  if (!Object.entries(labels).every(([k, v]) => rc.scope.labels[k] === v)) return false;
  return !m.sourceNamespace || m.sourceNamespace === rc.scope.namespace;
}

export function isCatchAll(r: ProtoObject): boolean {
  const m = r.match as ProtoObject;
  const pathAll = m.prefix === '/' || (m.safe_regex as any)?.regex === '.*';
  return pathAll && !m.headers && !m.query_parameters;
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

function headerOptions(map: Record<string, string> | undefined, append: boolean): { opts: ProtoObject[]; authority: string } {
  let authority = '';
  const opts: ProtoObject[] = [];
  for (const [key, value] of Object.entries(map ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (key.toLowerCase() === ':authority' || key.toLowerCase() === 'host') authority = value;
    if (key.startsWith(':') || key.toLowerCase() === 'host') continue;
    opts.push({ header: { key, value }, append_action: append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  return { opts, authority };
}

interface HeaderOps { reqAdd: ProtoObject[]; reqRemove: string[]; respAdd: ProtoObject[]; respRemove: string[]; authority: string }

function headerOps(h: any): HeaderOps {
  const set = headerOptions(h?.request?.set, false);
  const add = headerOptions(h?.request?.add, true);
  const dropInternal = (l: string[] | undefined): string[] => (l ?? []).filter((k) => !k.startsWith(':') && k.toLowerCase() !== 'host');
  return {
    reqAdd: [...set.opts, ...add.opts],
    respAdd: [...headerOptions(h?.response?.set, false).opts, ...headerOptions(h?.response?.add, true).opts],
    reqRemove: dropInternal(h?.request?.remove),
    respRemove: dropInternal(h?.response?.remove),
    authority: set.authority || add.authority,
  };
}

function applyHeaderOps(target: ProtoObject, ops: HeaderOps): void {
  const push = (field: string, values: unknown[]): void => {
    if (values.length === 0) return;
    target[field] = [...((target[field] as unknown[]) ?? []), ...values];
  };
  push('request_headers_to_add', ops.reqAdd);
  push('request_headers_to_remove', ops.reqRemove);
  push('response_headers_to_add', ops.respAdd);
  push('response_headers_to_remove', ops.respRemove);
}

/**
 * GetDestinationCluster: the destination's port, else the service's only port, else the listener port. An Envoy
 * sidecar's routes look the service up among those with the route configuration's port only (istiod
 * BuildSidecarOutboundVirtualHosts' servicesByName, trimmed to that port): a destination without a port then
 * always takes the listener port — also for a single-port service on another port, whose cluster
 * `outbound|LISTENER_PORT||HOST` does not exist (istiod 1.29 does the same: such a route answers 503 until the
 * VirtualService names the port). Gateways and proxyless gRPC look among every service.
 */
export function destinationCluster(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry, dest: any, listenerPort: number): string {
  const host = ctx.qualify(dest.host, vs.namespace);
  const sidecar = scope.type === 'sidecar' && scope.generator === 'envoy';
  const svc = sidecar ? undefined : serviceFor(ctx, scope, host);
  const port: number = dest.port?.number ?? (svc?.ports.length === 1 ? svc.ports[0]!.port : listenerPort);
  return clusterName('outbound', port, dest.subset ?? '', host);
}

function fractionalPercent(p: { value?: number } | undefined, fallbackInt?: number): ProtoObject {
  if (p) return { numerator: Math.round((p.value ?? 0) * 10000), denominator: 'MILLION' };
  return { numerator: fallbackInt ?? 0, denominator: 'HUNDRED' };
}

/** hashForHTTPDestination + consistentHashToHashPolicy: the destination's DestinationRule consistent hash key. */
export function hashPolicyFor(ctx: PushContext, scope: ProxyScope, host: string, port: number, subset: string): ProtoObject | undefined {
  const dr = scopedDestinationRule(ctx, scope, host);
  const ch = effectivePolicy(dr, port, subset).loadBalancer?.consistentHash;
  if (!ch) return undefined;
  if (ch.httpHeaderName) return { header: { header_name: ch.httpHeaderName } };
  if (ch.httpCookie) {
    const cookie: ProtoObject = { name: ch.httpCookie.name };
    if (ch.httpCookie.ttl) cookie.ttl = duration(parseDurationMs(ch.httpCookie.ttl));
    if (ch.httpCookie.path) cookie.path = ch.httpCookie.path;
    return { cookie };
  }
  if (ch.useSourceIp) return { connection_properties: { source_ip: true } };
  if (ch.httpQueryParameterName) return { query_parameter: { name: ch.httpQueryParameterName } };
  return undefined;
}

function hashPolicy(rc: RouteContext, vs: ConfigEntry, dest: any): ProtoObject | undefined {
  const cluster = parseClusterName(destinationCluster(rc.ctx, rc.scope, vs, dest, rc.port))!;
  return hashPolicyFor(rc.ctx, rc.scope, cluster.host, cluster.port, cluster.subset);
}

function mirrorPolicy(rc: RouteContext, vs: ConfigEntry, dest: any, pct: { value?: number } | undefined): ProtoObject | undefined {
  if (pct && !(pct.value! > 0)) return undefined; // an explicit 0% disables the mirror
  return {
    cluster: destinationCluster(rc.ctx, rc.scope, vs, dest, rc.port),
    runtime_fraction: { default_value: pct ? fractionalPercent(pct) : { numerator: 100, denominator: 'HUNDRED' } },
    trace_sampled: { value: false },
    // istiod 1.29: the mirrored request keeps its Host (Envoy would append "-shadow").
    disable_shadow_host_suffix_append: true,
  };
}

function routeAction(rc: RouteContext, vs: ConfigEntry, http: any, out: ProtoObject, authorityIn: string): void {
  const envoy = rc.scope.generator === 'envoy';
  const action: ProtoObject = {};
  const timeout = duration(http.timeout ? parseDurationMs(http.timeout) : 0);
  const dests: any[] = http.route ?? [];
  let authority = authorityIn;
  const hashes: ProtoObject[] = [];
  let consistentHash = false;
  if (dests.length === 1) {
    const d = dests[0];
    action.cluster = destinationCluster(rc.ctx, rc.scope, vs, d.destination, rc.port);
    if (d.headers) {
      const ops = headerOps(d.headers);
      applyHeaderOps(out, ops);
      if (ops.authority && !authority && !http.rewrite?.authority) authority = ops.authority;
    }
    const h = hashPolicy(rc, vs, d.destination);
    if (h) { hashes.push(h); consistentHash = true; }
  } else {
    const clusters: ProtoObject[] = [];
    for (const d of dests) {
      if (!d.weight) continue; // 0-weight destinations are dropped when there are others
      const cw: ProtoObject = { name: destinationCluster(rc.ctx, rc.scope, vs, d.destination, rc.port), weight: { value: d.weight } };
      if (d.headers) {
        const ops = headerOps(d.headers);
        applyHeaderOps(cw, ops);
        if (ops.authority) cw.host_rewrite_literal = ops.authority;
      }
      clusters.push(cw);
      const h = hashPolicy(rc, vs, d.destination);
      if (h) hashes.push(h);
    }
    action.weighted_clusters = { clusters };
  }
  if (http.rewrite) {
    const rw = http.rewrite;
    if (rw.uriRegexRewrite) action.regex_rewrite = { pattern: { regex: rw.uriRegexRewrite.match }, substitution: rw.uriRegexRewrite.rewrite ?? '' };
    else if (rw.uri) action.prefix_rewrite = rw.uri;
    if (rw.authority) authority = rw.authority;
  }
  if (authority) action.host_rewrite_literal = authority;
  action.timeout = timeout;
  const retry = retryPolicy(rc.scope, http.retries, consistentHash);
  if (retry) action.retry_policy = retry;
  const mirrors: ProtoObject[] = [];
  if (http.mirror) {
    const pct = http.mirrorPercentage ?? (http.mirrorPercent !== undefined ? { value: http.mirrorPercent } : undefined);
    const m = mirrorPolicy(rc, vs, http.mirror, pct);
    if (m) mirrors.push(m);
  }
  for (const mp of (http.mirrors ?? []) as any[]) {
    const m = mirrorPolicy(rc, vs, mp.destination, mp.percentage);
    if (m) mirrors.push(m);
  }
  if (mirrors.length) action.request_mirror_policies = mirrors;
  if (hashes.length) action.hash_policy = hashes;
  // Envoy: istiod 1.29 sets the deprecated max_grpc_timeout (its comment: the replacement max_stream_duration
  // "has some regressions"); proxyless gRPC reads max_stream_duration.
  if (envoy) action.max_grpc_timeout = timeout;
  else action.max_stream_duration = { max_stream_duration: timeout };
  out.route = action;
}

function redirectAction(rc: RouteContext, r: any, out: ProtoObject): boolean {
  const code = REDIRECT_CODES[r.redirectCode ?? 301];
  if (!code) return false;
  const redirect: ProtoObject = { response_code: code };
  if (r.authority) redirect.host_redirect = r.authority;
  if (r.uri) redirect.path_redirect = r.uri;
  if (r.scheme) redirect.scheme_redirect = r.scheme;
  let port = 0;
  if (r.port) port = r.port;
  else if (r.derivePort === 'FROM_REQUEST_PORT') port = rc.port;
  if (r.port || r.derivePort) {
    const scheme = r.scheme || (rc.isTls ? 'https' : 'http');
    if ((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https')) port = 0;
  }
  if (port) redirect.port_redirect = port;
  out.redirect = redirect;
  return true;
}

export function translateFault(f: any): ProtoObject | undefined {
  if (!f) return undefined;
  const out: ProtoObject = { '@type': FAULT_TYPE };
  if (f.delay?.fixedDelay) {
    out.delay = {
      fixed_delay: duration(parseDurationMs(f.delay.fixedDelay)),
      percentage: fractionalPercent(f.delay.percentage, f.delay.percent),
    };
  }
  if (f.abort) {
    const abort: ProtoObject = {};
    if (f.abort.percentage) abort.percentage = fractionalPercent(f.abort.percentage);
    if (f.abort.httpStatus !== undefined) abort.http_status = f.abort.httpStatus;
    else if (f.abort.grpcStatus !== undefined) abort.grpc_status = GRPC_STATUS[f.abort.grpcStatus] ?? Number(f.abort.grpcStatus);
    else return out.delay ? out : undefined;
    out.abort = abort;
  }
  return out.delay || out.abort ? out : undefined;
}

function translateCors(c: any): ProtoObject {
  const out: ProtoObject = {
    '@type': CORS_POLICY_TYPE,
    forward_not_matching_preflights: { value: c.unmatchedPreflights !== 'IGNORE' },
    filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
  };
  if (c.allowOrigins) out.allow_origin_string_match = (c.allowOrigins as any[]).map(stringMatch).filter(Boolean);
  else if (c.allowOrigin) out.allow_origin_string_match = (c.allowOrigin as string[]).map((o) => ({ exact: o }));
  if (c.allowCredentials !== undefined && c.allowCredentials !== null) out.allow_credentials = { value: c.allowCredentials };
  if (c.allowHeaders?.length) out.allow_headers = c.allowHeaders.join(',');
  if (c.allowMethods?.length) out.allow_methods = c.allowMethods.join(',');
  if (c.exposeHeaders?.length) out.expose_headers = c.exposeHeaders.join(',');
  if (c.maxAge) out.max_age = String(Math.floor(parseDurationMs(c.maxAge) / 1000));
  return out;
}

/** GetRouteOperation: HOST:PORT/path for one destination cluster, else VSNAME:PORT/path. */
function operation(route: ProtoObject, vsName: string, port: number): string {
  const m = route.match as any;
  const path = m.prefix !== undefined ? `${m.prefix}*` : m.path !== undefined ? m.path : m.safe_regex ? m.safe_regex.regex : '/*';
  const c = (route.route as any)?.cluster as string | undefined;
  const parts = c ? parseClusterName(c) : undefined;
  return parts ? `${parts.host}:${parts.port}${path}` : `${vsName}:${port}${path}`;
}

function translateRoute(rc: RouteContext, vs: ConfigEntry, http: any, m: any | undefined): ProtoObject | undefined {
  if (m?.port && m.port !== rc.port) return undefined;
  if (!sourceMatches(m, rc, vs)) return undefined;
  const envoy = rc.scope.generator === 'envoy';
  const out: ProtoObject = {};
  const name = [http.name, m?.name].filter(Boolean).join('.');
  if (name) out.name = name;
  out.match = translateRouteMatch(m);
  if (envoy) {
    out.metadata = { filter_metadata: { istio: jsonToStruct({ config: `/apis/networking.istio.io/v1/namespaces/${vs.namespace}/virtual-service/${vs.name}` }) } };
  }
  let authority = '';
  if (http.headers) {
    const ops = headerOps(http.headers);
    applyHeaderOps(out, ops);
    authority = ops.authority;
  }
  if (http.redirect) {
    if (!redirectAction(rc, http.redirect, out)) return undefined;
  } else if (http.directResponse) {
    const dr: ProtoObject = { status: http.directResponse.status };
    const body = http.directResponse.body;
    if (body?.string !== undefined) dr.body = { inline_string: body.string };
    else if (body?.bytes !== undefined) dr.body = { inline_bytes: body.bytes };
    out.direct_response = dr;
  } else if (http.route?.length) {
    routeAction(rc, vs, http, out, authority);
  } else {
    return undefined;
  }
  if (envoy) out.decorator = { operation: operation(out, vs.name, rc.port) };
  const perFilter: ProtoObject = {};
  const fault = translateFault(http.fault);
  if (fault) perFilter[FAULT_FILTER] = fault;
  if (http.corsPolicy && envoy) perFilter[CORS_FILTER] = translateCors(http.corsPolicy);
  if (Object.keys(perFilter).length) out.typed_per_filter_config = perFilter;
  return out;
}

// ---------------------------------------------------------------------------
// Delegates (istio pilot/pkg/model/virtualservice.go mergeVirtualServicesIfNeeded / mergeHTTPRoute)
// ---------------------------------------------------------------------------

function mergeMatch(root: any | undefined, del: any | undefined): any | null {
  if (!root) return del;
  if (!del) return root;
  const out: any = { ...root, ...del };
  if (root.uri && del.uri) {
    const rootPrefix = root.uri.prefix ?? root.uri.exact;
    const delPath = del.uri.prefix ?? del.uri.exact;
    if (rootPrefix === undefined || delPath === undefined || !delPath.startsWith(rootPrefix)) return null; // conflict
    out.uri = del.uri;
  } else out.uri = del.uri ?? root.uri;
  for (const k of ['headers', 'queryParams', 'withoutHeaders', 'sourceLabels']) {
    if (root[k] || del[k]) out[k] = { ...(root[k] ?? {}), ...(del[k] ?? {}) };
  }
  if (root.name && del.name) out.name = `${root.name}-${del.name}`;
  return out;
}

const INHERITED = ['rewrite', 'directResponse', 'timeout', 'retries', 'fault', 'mirror', 'corsPolicy', 'headers'] as const;

/** The http routes of a VirtualService with every `delegate` replaced by the delegate's merged routes. */
export function expandDelegates(ctx: PushContext, vs: ConfigEntry): any[] {
  const out: any[] = [];
  for (const http of (vs.spec.http ?? []) as any[]) {
    if (!http.delegate) { out.push(http); continue; }
    const del = ctx.virtualService(http.delegate.namespace ?? vs.namespace, http.delegate.name);
    if (!del || (del.spec.hosts ?? []).length > 0) continue; // a delegate must not have hosts (istiod ignores it)
    for (const dh of (del.spec.http ?? []) as any[]) {
      const rootMatches: any[] = http.match ?? [undefined];
      const delMatches: any[] = dh.match ?? [undefined];
      const merged: any[] = [];
      for (const rm of rootMatches) for (const dm of delMatches) {
        const mm = mergeMatch(rm, dm);
        if (mm !== null) merged.push(mm);
      }
      if (merged.length === 0) continue;
      const r: any = { ...dh, match: merged.every((x) => x === undefined) ? undefined : merged.filter((x) => x !== undefined) };
      r.name = dh.name ? (http.name ? `${http.name}-${dh.name}` : dh.name) : http.name;
      for (const k of INHERITED) if (r[k] === undefined && http[k] !== undefined) r[k] = http[k];
      // Delegate destinations resolve short names in the delegate's namespace.
      if (r.route) r.route = (r.route as any[]).map((d) => ({ ...d, destination: { ...d.destination, host: ctx.qualify(d.destination.host, del.namespace) } }));
      out.push(r);
    }
  }
  return out;
}

/** Names of the delegate VirtualServices a root uses, for cache keys. */
export function delegatesOf(ctx: PushContext, vs: ConfigEntry): ConfigEntry[] {
  return ((vs.spec.http ?? []) as any[]).flatMap((h) => {
    if (!h.delegate) return [];
    const d = ctx.virtualService(h.delegate.namespace ?? vs.namespace, h.delegate.name);
    return d ? [d] : [];
  });
}

/** BuildHTTPRoutesForVirtualService: translated routes, stopping after the first catch-all. */
export function buildHttpRoutes(rc: RouteContext, vs: ConfigEntry): ProtoObject[] {
  const out: ProtoObject[] = [];
  for (const http of expandDelegates(rc.ctx, vs)) {
    let catchAll = false;
    if (!http.match?.length) {
      const r = translateRoute(rc, vs, http, undefined);
      if (r) out.push(r);
      catchAll = true;
    } else {
      for (const m of http.match as any[]) {
        const r = translateRoute(rc, vs, http, m);
        if (!r) continue;
        out.push(r);
        if (isCatchAll(r)) { catchAll = true; break; }
      }
    }
    if (catchAll) break;
  }
  return out;
}

/** Every host:port-independent input of a VirtualService's routes, for cache keys (destinations, mirrors, DRs). */
export function routeDependencies(ctx: PushContext, scope: ProxyScope, vs: ConfigEntry): string[] {
  const parts: string[] = [`${vs.namespace}/${vs.name}@${vs.version}`];
  for (const d of delegatesOf(ctx, vs)) parts.push(`delegate ${d.namespace}/${d.name}@${d.version}`);
  for (const http of expandDelegates(ctx, vs)) {
    const dests = [...((http.route ?? []) as any[]).map((d) => d.destination), ...(http.mirror ? [http.mirror] : []), ...((http.mirrors ?? []) as any[]).map((m) => m.destination)];
    for (const d of dests) {
      if (!d?.host) continue;
      const host = ctx.qualify(d.host, vs.namespace);
      parts.push(`${host}@${serviceFor(ctx, scope, host)?.version ?? 'missing'}@${scopedDestinationRule(ctx, scope, host)?.version ?? ''}`);
    }
  }
  return parts;
}
