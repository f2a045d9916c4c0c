/**
 * MeshConfig (istio.io/api mesh/v1alpha1), the YAML istiod reads from `--meshConfig` or the `mesh` key of the
 * `istio` ConfigMap. Only the fields meshpilot honours are typed; istiod accepts unknown fields (protomarshal
 * retries with AllowUnknownFields), so the top level passes them through and src/model/mesh-config.ts reports them
 * as ignored. Extension providers follow istiod's validation (pkg/config/validation ValidateExtensionProvider*).
 */
import { z } from "zod";
import { customIssue, duration, exportTo, looseObject, strictObject, uint32 } from "./common.js";
import { localityLbSetting } from "./networking.js";

/** Envoy's envoy.type.v3.StatusCode values: ext_authz's status_on_error accepts only these (defined_only). */
export const ENVOY_STATUS_CODES: ReadonlySet<number> = new Set([
  100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403,
  404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 426, 428, 429, 431,
  500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

const statusOnError = z.string().superRefine((s, ctx) => {
  if (!/^\d+$/.test(s) || !ENVOY_STATUS_CODES.has(Number(s))) {
    customIssue(ctx, [], `unsupported statusOnError "${s}": expected an HTTP status code Envoy knows (e.g. "403", "503")`);
  }
});

/** Header name patterns: exact, `prefix*` or `*suffix`; a lone `*` is refused, as istiod does. */
const headerPatterns = z.array(z.string().min(1)).superRefine((l, ctx) => {
  l.forEach((h, i) => {
    if (h === "*") customIssue(ctx, [i], 'a single wildcard ("*") is not supported, use a prefix or suffix match');
  });
});

const providerPort = uint32.refine((p) => p >= 1 && p <= 65535, { message: "port must be in the range [1, 65535]" });

const requestBody = strictObject({
  maxRequestBytes: uint32.optional(),
  allowPartialMessage: z.boolean().optional(),
  packAsBytes: z.boolean().optional(),
});

export const envoyExtAuthzHttpProvider = strictObject({
  service: z.string().min(1),
  port: providerPort,
  timeout: duration.optional(),
  pathPrefix: z.string().regex(/^\//, "pathPrefix must begin with /").optional(),
  failOpen: z.boolean().optional(),
  clearRouteCache: z.boolean().optional(),
  statusOnError: statusOnError.optional(),
  includeRequestHeadersInCheck: headerPatterns.optional(),
  includeHeadersInCheck: headerPatterns.optional(),
  includeAdditionalHeadersInCheck: z.record(z.string(), z.string()).optional(),
  includeRequestBodyInCheck: requestBody.optional(),
  headersToUpstreamOnAllow: headerPatterns.optional(),
  headersToDownstreamOnDeny: headerPatterns.optional(),
  headersToDownstreamOnAllow: headerPatterns.optional(),
});
export type EnvoyExtAuthzHttpProvider = z.infer<typeof envoyExtAuthzHttpProvider>;

export const envoyExtAuthzGrpcProvider = strictObject({
  service: z.string().min(1),
  port: providerPort,
  timeout: duration.optional(),
  failOpen: z.boolean().optional(),
  clearRouteCache: z.boolean().optional(),
  statusOnError: statusOnError.optional(),
  includeRequestBodyInCheck: requestBody.optional(),
});
export type EnvoyExtAuthzGrpcProvider = z.infer<typeof envoyExtAuthzGrpcProvider>;

/** Other provider kinds (tracing, access logs, …) pass through: istiod's authz builder skips them too. */
const extensionProvider = looseObject({
  name: z.string().min(1, "extension provider name must not be empty"),
  envoyExtAuthzHttp: envoyExtAuthzHttpProvider.optional(),
  envoyExtAuthzGrpc: envoyExtAuthzGrpcProvider.optional(),
}).superRefine((p, ctx) => {
  if (p.envoyExtAuthzHttp && p.envoyExtAuthzGrpc) customIssue(ctx, ["envoyExtAuthzGrpc"], "only one provider kind may be set (got envoyExtAuthzHttp and envoyExtAuthzGrpc)");
});

export const meshConfigSchema = looseObject({
  rootNamespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label").optional(),
  trustDomain: z.string().min(1).optional(),
  connectTimeout: duration.refine((d) => d !== "0" && !/^[-+]?0+(\.0*)?[a-zµμ]+$/.test(d), { message: "must be greater than 0" }).optional(),
  outboundTrafficPolicy: strictObject({ mode: z.enum(["ALLOW_ANY", "REGISTRY_ONLY"]).optional() }).optional(),
  localityLbSetting: localityLbSetting.optional(),
  enableAutoMtls: z.boolean().optional(),
  defaultServiceExportTo: exportTo.optional(),
  defaultVirtualServiceExportTo: exportTo.optional(),
  defaultDestinationRuleExportTo: exportTo.optional(),
  extensionProviders: z.array(extensionProvider).optional(),
}).superRefine((m, ctx) => {
  const seen = new Set<string>();
  m.extensionProviders?.forEach((p, i) => {
    if (seen.has(p.name)) customIssue(ctx, ["extensionProviders", i, "name"], `extension provider name must be unique, found duplicate: ${p.name}`);
    seen.add(p.name);
  });
});
export type MeshConfigInput = z.infer<typeof meshConfigSchema>;
