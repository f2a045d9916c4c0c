/**
 * Schema validation for the Kubernetes / Istio resources consumed by the
 * control plane, as they appear in YAML manifests.
 *
 *   const r = validateResource(YAML.parse(text));
 *   if (!r.ok) for (const e of r.errors) console.error(`${e.path}: ${e.message}`);
 *
 * Istio `spec` objects are strict (unknown fields are errors, as with Istio's
 * structural CRD schemas); Kubernetes core objects and `metadata` pass unknown
 * fields through.
 */
import { z } from "zod";
import { objectMeta } from "./common.js";
import { endpointsBody, namespaceBody, podBody, serviceBody } from "./core.js";
import { endpointSliceBodyObject } from "./discovery.js";
import type { FieldError } from "./errors.js";
import { zodErrorToFieldErrors } from "./errors.js";
import {
  destinationRuleSpec,
  gatewaySpec,
  serviceEntrySpec,
  sidecarSpec,
  virtualServiceSpec,
  workloadEntryResourceSpec,
} from "./networking.js";
import { authorizationPolicySpec, peerAuthenticationSpec, requestAuthenticationSpec } from "./security.js";

export type { FieldError } from "./errors.js";
export { formatPath, zodErrorToFieldErrors } from "./errors.js";

export type ValidationResult<T = unknown> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

export interface KubeResource {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: any;
  [k: string]: unknown;
}

// Re-export schemas and inferred types for the rest of the code base.
export * from "./common.js";
export * from "./core.js";
export * from "./discovery.js";
export * from "./networking.js";
export * from "./security.js";

export const NETWORKING_GROUP = "networking.istio.io";
export const SECURITY_GROUP = "security.istio.io";
export const DISCOVERY_GROUP = "discovery.k8s.io";
export const CORE_GROUP = "";

const NETWORKING_VERSIONS = ["v1", "v1beta1", "v1alpha3"];
const SECURITY_VERSIONS = ["v1", "v1beta1"];

interface KindEntry {
  group: string;
  versions: string[];
  kind: string;
}

export const KNOWN_KINDS: ReadonlyArray<KindEntry> = Object.freeze([
  { group: CORE_GROUP, versions: ["v1"], kind: "Service" },
  { group: CORE_GROUP, versions: ["v1"], kind: "Endpoints" },
  { group: CORE_GROUP, versions: ["v1"], kind: "Pod" },
  { group: CORE_GROUP, versions: ["v1"], kind: "Namespace" },
  { group: DISCOVERY_GROUP, versions: ["v1"], kind: "EndpointSlice" },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: "VirtualService" },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: "DestinationRule" },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: "ServiceEntry" },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: "Gateway" },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: "Sidecar" },
  { group: NETWORKING_GROUP, versions: NETWORKING_VERSIONS, kind: "WorkloadEntry" },
  { group: SECURITY_GROUP, versions: SECURITY_VERSIONS, kind: "PeerAuthentication" },
  { group: SECURITY_GROUP, versions: SECURITY_VERSIONS, kind: "AuthorizationPolicy" },
  { group: SECURITY_GROUP, versions: SECURITY_VERSIONS, kind: "RequestAuthentication" },
].map((e) => Object.freeze(e)));

/** Split "group/version" (or "v1" for the core group) into its parts. */
export function parseApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.lastIndexOf("/");
  if (slash < 0) return { group: "", version: apiVersion };
  return { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** Find the KNOWN_KINDS entry for an apiVersion + kind, if served. */
export function lookupKind(apiVersion: string, kind: string): KindEntry | undefined {
  const { group, version } = parseApiVersion(apiVersion);
  return KNOWN_KINDS.find((k) => k.group === group && k.kind === kind && k.versions.includes(version));
}

/** Body schemas (everything except apiVersion/kind/metadata) keyed by kind. */
const istioBody = (spec: z.ZodTypeAny) => z.object({ spec, status: z.unknown().optional() }).passthrough();

const BODY_SCHEMAS: Record<string, { schema: z.ZodTypeAny; specOptional: boolean }> = {
  Service: { schema: z.object(serviceBody).passthrough(), specOptional: true },
  Endpoints: { schema: z.object(endpointsBody).passthrough(), specOptional: true },
  Pod: { schema: z.object(podBody).passthrough(), specOptional: true },
  Namespace: { schema: z.object(namespaceBody).passthrough(), specOptional: true },
  EndpointSlice: { schema: endpointSliceBodyObject, specOptional: true },
  VirtualService: { schema: istioBody(virtualServiceSpec), specOptional: false },
  DestinationRule: { schema: istioBody(destinationRuleSpec), specOptional: false },
  ServiceEntry: { schema: istioBody(serviceEntrySpec), specOptional: false },
  Gateway: { schema: istioBody(gatewaySpec), specOptional: false },
  Sidecar: { schema: istioBody(sidecarSpec), specOptional: false },
  WorkloadEntry: { schema: istioBody(workloadEntryResourceSpec), specOptional: false },
  // An empty spec is meaningful for security policies (e.g. allow-nothing).
  PeerAuthentication: { schema: istioBody(peerAuthenticationSpec), specOptional: true },
  AuthorizationPolicy: { schema: istioBody(authorizationPolicySpec), specOptional: true },
  RequestAuthentication: { schema: istioBody(requestAuthenticationSpec), specOptional: true },
};

const ISTIO_GROUPS = new Set([NETWORKING_GROUP, SECURITY_GROUP]);

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function fail(errors: FieldError[]): ValidationResult<never> {
  return { ok: false, errors };
}

/**
 * Validate one parsed YAML document.
 *
 * - Unknown or mismatched apiVersion → error at path "apiVersion";
 *   unknown kind → error at path "kind".
 * - `metadata.name` is required; `metadata.namespace` is optional.
 * - Errors carry dotted paths with `[i]` indexes, e.g. `spec.http[0].route[1].weight`.
 * - A document-level type error (not a mapping) is reported with path "".
 */
export function validateResource(doc: unknown): ValidationResult<KubeResource> {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return fail([{ path: "", message: `expected a mapping (object), got ${typeName(doc)}` }]);
  }
  const obj = doc as Record<string, unknown>;

  // --- apiVersion / kind -----------------------------------------------------
  const { apiVersion, kind } = obj;
  const headErrors: FieldError[] = [];
  if (apiVersion === undefined || apiVersion === null) headErrors.push({ path: "apiVersion", message: `missing required field "apiVersion"` });
  else if (typeof apiVersion !== "string") headErrors.push({ path: "apiVersion", message: `expected string, got ${typeName(apiVersion)}` });
  if (kind === undefined || kind === null) headErrors.push({ path: "kind", message: `missing required field "kind"` });
  else if (typeof kind !== "string") headErrors.push({ path: "kind", message: `expected string, got ${typeName(kind)}` });
  if (headErrors.length > 0) return fail(headErrors);
  const av = apiVersion as string;
  const k = kind as string;

  const { group, version } = parseApiVersion(av);
  const sameKind = KNOWN_KINDS.filter((e) => e.kind === k);
  const entry = sameKind.find((e) => e.group === group && e.versions.includes(version));
  if (!entry) {
    if (sameKind.length === 0) {
      const groupKnown = KNOWN_KINDS.some((e) => e.group === group && e.versions.includes(version));
      if (groupKnown) return fail([{ path: "kind", message: `unknown kind "${k}" for apiVersion "${av}"` }]);
      return fail([
        { path: "apiVersion", message: `unknown apiVersion "${av}"` },
        { path: "kind", message: `unknown kind "${k}"` },
      ]);
    }
    const expected = sameKind.flatMap((e) => e.versions.map((v) => (e.group ? `${e.group}/${v}` : v)));
    return fail([
      {
        path: "apiVersion",
        message: `apiVersion "${av}" does not serve kind "${k}"; expected one of ${expected.join(", ")}`,
      },
    ]);
  }

  // --- metadata ---------------------------------------------------------------
  const errors: FieldError[] = [];
  const metaInput = obj.metadata === undefined || obj.metadata === null ? {} : obj.metadata;
  const meta = objectMeta.safeParse(metaInput);
  if (!meta.success) errors.push(...zodErrorToFieldErrors(meta.error, "metadata"));

  // --- body ---------------------------------------------------------------------
  const body = BODY_SCHEMAS[entry.kind]!;
  let bodyInput: Record<string, unknown> = obj;
  if (ISTIO_GROUPS.has(entry.group) && (obj.spec === undefined || obj.spec === null)) {
    if (body.specOptional) bodyInput = { ...obj, spec: {} };
    else errors.push({ path: "spec", message: `missing required field "spec"` });
  }
  let bodyValue: Record<string, unknown> | undefined;
  if (!errors.some((e) => e.path === "spec")) {
    const parsed = body.schema.safeParse(bodyInput);
    if (!parsed.success) errors.push(...zodErrorToFieldErrors(parsed.error));
    else bodyValue = parsed.data as Record<string, unknown>;
  }

  if (errors.length > 0 || !meta.success || bodyValue === undefined) return fail(errors);

  const value = { ...bodyValue, apiVersion: av, kind: k, metadata: meta.data } as KubeResource;
  return { ok: true, value };
}

/** Validate many documents; returns one result per input (same order). */
export function validateResources(docs: readonly unknown[]): ValidationResult<KubeResource>[] {
  return docs.map((d) => validateResource(d));
}
