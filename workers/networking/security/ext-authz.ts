/**
 * MeshConfig extension providers → Envoy ext_authz filter configs (istio pilot/pkg/security/authz/builder/extauthz.go).
 * envoyExtAuthzHttp becomes an `envoy.filters.http.ext_authz` with an http_service to the provider's
 * `outbound|PORT||HOST` cluster (HTTP only: istiod ignores it on TCP chains); envoyExtAuthzGrpc becomes an HTTP
 * ext_authz with a grpc_service and an `envoy.filters.network.ext_authz` for TCP. Both are enabled only by the
 * dynamic metadata the CUSTOM policy's shadow RBAC rules leave (`istio_ext_authz_shadow_effective_policy_id`
 * starting `istio-ext-authz`), so the authorization service is called only for requests the policy matches.
 */
import type { PushContext } from '../../../src/model/push-context.js';
import type { ExtensionProvider } from '../../../src/model/mesh-config.js';
import type { ProtoObject } from '../../../src/proto/encode.js';
import { duration } from '../../../src/proto/encode.js';
import { parseDurationMs } from '../../../src/model/duration.js';
import { clusterName } from '../names.js';

export const EXT_AUTHZ_HTTP_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
export const EXT_AUTHZ_NETWORK_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz';
export const EXT_AUTHZ_HTTP_FILTER = 'envoy.filters.http.ext_authz';
export const EXT_AUTHZ_NETWORK_FILTER = 'envoy.filters.network.ext_authz';
/** RBAC policy names of CUSTOM rules start with this; ext_authz runs only when the matched one does. */
export const EXT_AUTHZ_MATCH_PREFIX = 'istio-ext-authz';
/** The CUSTOM shadow rules' stat prefix, which Envoy also puts in front of the dynamic metadata keys. */
export const EXT_AUTHZ_SHADOW_STAT_PREFIX = 'istio_ext_authz_';
/** istiod's default ext_authz timeout when the provider sets none. */
const DEFAULT_TIMEOUT_MS = 600_000;

export interface BuiltExtAuthz { http: ProtoObject; tcp?: ProtoObject }

/**
 * The provider's service (`NAMESPACE/HOSTNAME` or `HOSTNAME`, as istiod's extensionproviders.LookupCluster; a short
 * name is qualified in the given namespace) → its hostname, or an error.
 */
export function resolveProviderService(ctx: PushContext, service: string): { hostname: string } | { error: string } {
  const parts = service.split('/');
  if (parts.length === 2) {
    const [ns, name] = parts as [string, string];
    const host = name.includes('.') ? name : ctx.qualify(name, ns);
    const svc = ctx.servicesFor(host).find((s) => s.namespace === ns);
    return svc ? { hostname: svc.hostname } : { error: `could not find service ${name} in namespace ${ns}` };
  }
  if (parts.length > 2) return { error: `service ${service} is not HOSTNAME or NAMESPACE/HOSTNAME` };
  const svc = ctx.service(service);
  return svc ? { hostname: svc.hostname } : { error: `could not find hostname ${service}` };
}

function headerMatchers(headers: readonly string[] | undefined): ProtoObject | undefined {
  if (!headers?.length) return undefined;
  return {
    patterns: headers.map((h) => {
      if (h.startsWith('*')) return { suffix: h.slice(1), ignore_case: true };
      if (h.endsWith('*')) return { prefix: h.slice(0, -1), ignore_case: true };
      return { exact: h, ignore_case: true };
    }),
  };
}

function enabledBy(rbacFilter: string): ProtoObject {
  return {
    filter: rbacFilter,
    path: [{ key: `${EXT_AUTHZ_SHADOW_STAT_PREFIX}shadow_effective_policy_id` }],
    value: { string_match: { prefix: EXT_AUTHZ_MATCH_PREFIX } },
  };
}

function timeout(t: string | undefined): ProtoObject {
  return duration(t ? (parseDurationMs(t) ?? DEFAULT_TIMEOUT_MS) : DEFAULT_TIMEOUT_MS);
}

function requestBody(b: { maxRequestBytes?: number; allowPartialMessage?: boolean; packAsBytes?: boolean } | undefined): ProtoObject | undefined {
  if (!b) return undefined;
  return { max_request_bytes: b.maxRequestBytes ?? 0, allow_partial_message: b.allowPartialMessage ?? false, pack_as_bytes: b.packAsBytes ?? false };
}

/** The filter configs of one provider, or why it cannot be used (the CUSTOM policies then deny what they match). */
export function buildExtAuthz(ctx: PushContext, p: ExtensionProvider, httpRbacFilter: string, networkRbacFilter: string): BuiltExtAuthz | { error: string } {
  const cfg = p.envoyExtAuthzHttp ?? p.envoyExtAuthzGrpc;
  if (!cfg) return { error: `extension provider ${p.name} is not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider` };
  const svc = resolveProviderService(ctx, cfg.service);
  if ('error' in svc) return { error: `extension provider ${p.name}: ${svc.error}` };
  const cluster = clusterName('outbound', cfg.port, '', svc.hostname);
  const status = cfg.statusOnError ? { code: Number(cfg.statusOnError) } : undefined;
  if (p.envoyExtAuthzHttp) {
    const h = p.envoyExtAuthzHttp;
    const allowed = headerMatchers(h.includeRequestHeadersInCheck?.length ? h.includeRequestHeadersInCheck : h.includeHeadersInCheck);
    const add = Object.keys(h.includeAdditionalHeadersInCheck ?? {}).sort().map((k) => ({ key: k, value: h.includeAdditionalHeadersInCheck![k] }));
    const service: ProtoObject = {
      // The URI is required but unused: the cluster carries the request.
      server_uri: { uri: `http://${svc.hostname}`, cluster, timeout: timeout(h.timeout) },
      path_prefix: h.pathPrefix,
    };
    if (allowed || add.length) service.authorization_request = { allowed_headers: allowed, headers_to_add: add.length ? add : undefined };
    if (h.headersToUpstreamOnAllow?.length || h.headersToDownstreamOnDeny?.length || h.headersToDownstreamOnAllow?.length) {
      service.authorization_response = {
        allowed_upstream_headers: headerMatchers(h.headersToUpstreamOnAllow),
        allowed_client_headers: headerMatchers(h.headersToDownstreamOnDeny),
        allowed_client_headers_on_success: headerMatchers(h.headersToDownstreamOnAllow),
      };
    }
    return {
      http: {
        '@type': EXT_AUTHZ_HTTP_TYPE,
        status_on_error: status,
        failure_mode_allow: h.failOpen ?? false,
        transport_api_version: 'V3',
        http_service: service,
        filter_enabled_metadata: enabledBy(httpRbacFilter),
        with_request_body: requestBody(h.includeRequestBodyInCheck),
        clear_route_cache: h.clearRouteCache,
      },
    };
  }
  const g = p.envoyExtAuthzGrpc!;
  // `|` is not valid in an HTTP/2 authority: istiod replaces it (otherwise the cluster name would be the authority).
  const grpcService = { envoy_grpc: { cluster_name: cluster, authority: cluster.replaceAll('|', '_.') }, timeout: timeout(g.timeout) };
  return {
    http: {
      '@type': EXT_AUTHZ_HTTP_TYPE,
      status_on_error: status,
      failure_mode_allow: g.failOpen ?? false,
      transport_api_version: 'V3',
      grpc_service: grpcService,
      filter_enabled_metadata: enabledBy(httpRbacFilter),
      with_request_body: requestBody(g.includeRequestBodyInCheck),
      clear_route_cache: g.clearRouteCache,
    },
    tcp: {
      '@type': EXT_AUTHZ_NETWORK_TYPE,
      stat_prefix: 'tcp.',
      failure_mode_allow: g.failOpen ?? false,
      transport_api_version: 'V3',
      grpc_service: grpcService,
      filter_enabled_metadata: enabledBy(networkRbacFilter),
    },
  };
}

/**
 * What ext_authz config reads besides the policies and the mesh: whether each provider's service resolves. Part of
 * the security inputs key, so a provider service appearing or going away regenerates the listeners that use it.
 */
export function extAuthzInputsKey(ctx: PushContext): string {
  const providers = ctx.data.mesh.extensionProviders ?? [];
  if (providers.length === 0) return '';
  return providers.map((p) => {
    const cfg = p.envoyExtAuthzHttp ?? p.envoyExtAuthzGrpc;
    const r = cfg ? resolveProviderService(ctx, cfg.service) : undefined;
    return `${p.name}>${r && 'hostname' in r ? r.hostname : '-'}`;
  }).join(',');
}
