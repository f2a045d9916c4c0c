/**
 * RequestAuthentication → Envoy's jwt_authn HTTP filter (istiod's pilot/pkg/security/authn/policy_applier.go):
 * one provider per jwtRule of every RequestAuthentication that selects the workload, and one requirement "any of
 * the providers, or no token at all" — a request without a token passes (AuthorizationPolicy decides), a request
 * with an invalid token gets 401.
 *
 * JWKS: inline `jwks` as given; `jwksUri` is fetched and cached by Envoy itself (istiod's JWT_FETCH_MODE=Envoy)
 * through the mesh cluster of the URI's host, so the host must be a service of the mesh.
 *
 * The verified payload is written to dynamic metadata `envoy.filters.http.jwt_authn` / `payload`, where the RBAC
 * rules for request.auth.* look (upstream Envoy has no istio_authn filter).
 */
import type { ProtoObject } from '../../../src/proto/encode.js';
import type { PushContext } from '../../../src/model/push-context.js';
import { duration } from '../../../src/proto/encode.js';
import { policiesFor } from './policy-select.js';

export const JWT_AUTHN_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
export const JWT_PAYLOAD_KEY = 'payload';
/** How long Envoy caches a fetched JWKS (istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL default is 20 minutes). */
const JWKS_CACHE_MS = 20 * 60_000;

export interface JwtBuild { filter?: ProtoObject; skipped: string[] }

function remoteJwks(ctx: PushContext, uri: string, timeoutMs: number): ProtoObject | string {
  const u = new URL(uri);
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  const svc = ctx.service(u.hostname);
  if (!svc?.ports.some((p) => p.port === port)) return `jwksUri ${uri}: ${u.hostname}:${port} is not a service of the mesh`;
  return {
    http_uri: { uri, cluster: `outbound|${port}||${svc.hostname}`, timeout: duration(timeoutMs) },
    cache_duration: duration(JWKS_CACHE_MS),
  };
}

export function buildJwtFilter(ctx: PushContext, namespace: string, labels: Record<string, string>): JwtBuild {
  const policies = policiesFor(ctx, ctx.data.requestAuthentications, namespace, labels);
  const providers: Record<string, ProtoObject> = {};
  const skipped: string[] = [];
  for (const p of policies) {
    ((p.spec.jwtRules ?? []) as any[]).forEach((rule, i) => {
      const name = `origins-${p.namespace}-${p.name}-${i}`;
      const provider: ProtoObject = {
        issuer: rule.issuer,
        payload_in_metadata: JWT_PAYLOAD_KEY,
        forward: rule.forwardOriginalToken === true,
      };
      if (rule.audiences?.length) provider.audiences = rule.audiences;
      if (rule.jwks) provider.local_jwks = { inline_string: rule.jwks };
      else if (rule.jwksUri) {
        const r = remoteJwks(ctx, rule.jwksUri, rule.timeout ? Number.parseFloat(rule.timeout) * 1000 || 5000 : 5000);
        if (typeof r === 'string') { skipped.push(`${p.namespace}/${p.name}: ${r}`); return; }
        provider.remote_jwks = r;
      } else { skipped.push(`${p.namespace}/${p.name}: jwtRules[${i}] has neither jwks nor jwksUri`); return; }
      if (rule.fromHeaders?.length) provider.from_headers = rule.fromHeaders.map((h: any) => ({ name: h.name, value_prefix: h.prefix ?? '' }));
      if (rule.fromParams?.length) provider.from_params = rule.fromParams;
      if (rule.fromCookies?.length) provider.from_cookies = rule.fromCookies;
      if (rule.outputPayloadToHeader) provider.forward_payload_header = rule.outputPayloadToHeader;
      if (rule.outputClaimToHeaders?.length) {
        provider.claim_to_headers = rule.outputClaimToHeaders.map((c: any) => ({ header_name: c.header, claim_name: c.claim }));
      }
      providers[name] = provider;
    });
  }
  const names = Object.keys(providers);
  if (names.length === 0) return { skipped };
  const requirements = [...names.map((provider_name) => ({ provider_name })), { allow_missing: {} }];
  return {
    skipped,
    filter: {
      name: JWT_AUTHN_FILTER,
      typed_config: {
        '@type': JWT_AUTHN_TYPE,
        providers,
        rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements } } }],
      },
    },
  };
}

/** The authentication and authorization HTTP filters of a workload, in istiod's order: jwt_authn, then RBAC. */
export function securityHttpFilters(ctx: PushContext, namespace: string, labels: Record<string, string>, rbac: ProtoObject[]): ProtoObject[] {
  const jwt = buildJwtFilter(ctx, namespace, labels).filter;
  return jwt ? [jwt, ...rbac] : rbac;
}
