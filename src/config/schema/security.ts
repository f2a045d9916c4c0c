/**
 * security.istio.io schemas (v1 / v1beta1), following istio.io/api
 * security/v1beta1/{peer_authentication,authorization,request_authentication}.proto.
 */
import { z } from "zod";
import {
  customIssue,
  duration,
  ipOrCidr,
  isSet,
  policyTargetReference,
  strictObject,
  stringList,
  typeWorkloadSelector,
} from "./common.js";

/** Selector vs targetRef(s) are mutually exclusive on all security policies. */
function checkTargeting(
  ctx: z.RefinementCtx,
  p: { selector?: unknown; targetRef?: unknown; targetRefs?: unknown[] | undefined },
): void {
  const hasSelector = isSet(p.selector);
  const hasTargetRef = isSet(p.targetRef);
  const hasTargetRefs = (p.targetRefs?.length ?? 0) > 0;
  if (hasTargetRef && hasTargetRefs) customIssue(ctx, ["targetRefs"], "only one of targetRef or targetRefs can be set");
  if (hasSelector && (hasTargetRef || hasTargetRefs)) {
    customIssue(ctx, [hasTargetRef ? "targetRef" : "targetRefs"], "only one of targetRefs or selector can be set");
  }
}

// ---------------------------------------------------------------------------
// PeerAuthentication
// ---------------------------------------------------------------------------

const mtlsMode = z.enum(["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]);
export const mutualTLS = strictObject({
  mode: mtlsMode.optional(),
});

export const peerAuthenticationSpec = strictObject({
  selector: typeWorkloadSelector.optional(),
  mtls: mutualTLS.optional(),
  portLevelMtls: z.record(z.string(), mutualTLS).optional(),
}).superRefine((pa, ctx) => {
  if (pa.portLevelMtls) {
    for (const key of Object.keys(pa.portLevelMtls)) {
      const n = /^\d+$/.test(key) ? Number(key) : NaN;
      if (!(n >= 1 && n <= 65535)) customIssue(ctx, ["portLevelMtls", key], `port "${key}" must be a number between 1 and 65535`);
    }
    if (Object.keys(pa.portLevelMtls).length > 0 && Object.keys(pa.selector?.matchLabels ?? {}).length === 0) {
      customIssue(ctx, ["portLevelMtls"], "portLevelMtls requires a workload selector");
    }
  }
});
export type PeerAuthenticationSpec = z.infer<typeof peerAuthenticationSpec>;

// ---------------------------------------------------------------------------
// AuthorizationPolicy
// ---------------------------------------------------------------------------

export const authzSource = strictObject({
  principals: stringList.optional(),
  notPrincipals: stringList.optional(),
  requestPrincipals: stringList.optional(),
  notRequestPrincipals: stringList.optional(),
  namespaces: stringList.optional(),
  notNamespaces: stringList.optional(),
  serviceAccounts: stringList.optional(),
  notServiceAccounts: stringList.optional(),
  ipBlocks: z.array(ipOrCidr).optional(),
  notIpBlocks: z.array(ipOrCidr).optional(),
  remoteIpBlocks: z.array(ipOrCidr).optional(),
  notRemoteIpBlocks: z.array(ipOrCidr).optional(),
}).superRefine((s, ctx) => {
  if (Object.values(s).every((v) => !isSet(v) || (Array.isArray(v) && v.length === 0))) {
    customIssue(ctx, [], "source must not be empty");
  }
});

const portString = z.string().superRefine((p, ctx) => {
  const n = /^\d+$/.test(p) ? Number(p) : NaN;
  if (!(n >= 1 && n <= 65535)) customIssue(ctx, [], `port "${p}" must be a number between 1 and 65535`);
});

export const authzOperation = strictObject({
  hosts: stringList.optional(),
  notHosts: stringList.optional(),
  ports: z.array(portString).optional(),
  notPorts: z.array(portString).optional(),
  methods: stringList.optional(),
  notMethods: stringList.optional(),
  paths: stringList.optional(),
  notPaths: stringList.optional(),
}).superRefine((o, ctx) => {
  if (Object.values(o).every((v) => !isSet(v) || (Array.isArray(v) && v.length === 0))) {
    customIssue(ctx, [], "operation must not be empty");
  }
});

export const authzCondition = strictObject({
  key: z.string().min(1, "condition key must not be empty"),
  values: stringList.optional(),
  notValues: stringList.optional(),
}).superRefine((c, ctx) => {
  if ((c.values?.length ?? 0) === 0 && (c.notValues?.length ?? 0) === 0) {
    customIssue(ctx, ["values"], "at least one of values or notValues must be set for key " + JSON.stringify(c.key));
  }
});

export const authzRule = strictObject({
  from: z.array(strictObject({ source: authzSource })).optional(),
  to: z.array(strictObject({ operation: authzOperation })).optional(),
  when: z.array(authzCondition).optional(),
});
export type AuthorizationRule = z.infer<typeof authzRule>;

export const authorizationPolicySpec = strictObject({
  selector: typeWorkloadSelector.optional(),
  targetRef: policyTargetReference.optional(),
  targetRefs: z.array(policyTargetReference).optional(),
  rules: z.array(authzRule).optional(),
  action: z.enum(["ALLOW", "DENY", "AUDIT", "CUSTOM"]).optional(),
  provider: strictObject({ name: z.string().min(1, "provider name must not be empty") }).optional(),
}).superRefine((ap, ctx) => {
  checkTargeting(ctx, ap);
  if (ap.action === "CUSTOM" && !isSet(ap.provider)) {
    customIssue(ctx, ["provider"], "must specify provider when using CUSTOM action");
  }
  if (ap.action !== "CUSTOM" && isSet(ap.provider)) {
    customIssue(ctx, ["provider"], "provider can only be used with CUSTOM action");
  }
});
export type AuthorizationPolicySpec = z.infer<typeof authorizationPolicySpec>;

// ---------------------------------------------------------------------------
// RequestAuthentication
// ---------------------------------------------------------------------------

export const jwtRule = strictObject({
  issuer: z.string().min(1, "issuer must be set"),
  audiences: stringList.optional(),
  jwksUri: z
    .string()
    .superRefine((u, ctx) => {
      let ok = false;
      try {
        const url = new URL(u);
        ok = url.protocol === "http:" || url.protocol === "https:";
      } catch {
        ok = false;
      }
      if (!ok) customIssue(ctx, [], `jwksUri "${u}" must be an http(s) URL`);
    })
    .optional(),
  jwks: z.string().optional(),
  fromHeaders: z.array(strictObject({ name: z.string().min(1, "header name must not be empty"), prefix: z.string().optional() })).optional(),
  fromParams: stringList.optional(),
  fromCookies: stringList.optional(),
  outputPayloadToHeader: z.string().optional(),
  forwardOriginalToken: z.boolean().optional(),
  outputClaimToHeaders: z
    .array(
      strictObject({
        header: z.string().min(1, "header must not be empty"),
        claim: z.string().min(1, "claim must not be empty"),
      }),
    )
    .optional(),
  timeout: duration.optional(),
});
export type JWTRule = z.infer<typeof jwtRule>;

export const requestAuthenticationSpec = strictObject({
  selector: typeWorkloadSelector.optional(),
  targetRef: policyTargetReference.optional(),
  targetRefs: z.array(policyTargetReference).optional(),
  jwtRules: z.array(jwtRule).optional(),
}).superRefine((ra, ctx) => checkTargeting(ctx, ra));
export type RequestAuthenticationSpec = z.infer<typeof requestAuthenticationSpec>;
