/**
 * Shared schema building blocks: durations, ports, labels, StringMatch,
 * selectors, IP/CIDR checks, RE2-ish regex checks and small helpers used by
 * the per-API-group schema files.
 */
import { isIP } from "node:net";
import { z } from "zod";

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/** A strict object: unknown keys are reported as `unknown field "x"`. */
export function strictObject<T extends z.ZodRawShape>(shape: T) {
  return z.object(shape).strict();
}

/** Passthrough object: unknown keys are kept (used for k8s core objects). */
export function looseObject<T extends z.ZodRawShape>(shape: T) {
  return z.object(shape).passthrough();
}

/** Returns true when the value is "set" in the proto3 sense for oneof checks. */
export function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/**
 * Report an error when more than one of `keys` is set on `obj`
 * (protobuf `oneof` semantics). The issue is attached to the second key found.
 */
export function atMostOneOf(
  ctx: z.RefinementCtx,
  obj: Record<string, unknown>,
  keys: readonly string[],
  what?: string,
): void {
  const present = keys.filter((k) => isSet(obj[k]));
  if (present.length > 1) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: [present[1]!],
      message: `only one of ${what ?? keys.join(", ")} may be set (got ${present.join(" and ")})`,
    });
  }
}

export function customIssue(ctx: z.RefinementCtx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: z.ZodIssueCode.custom, path, message });
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

export const int32 = z
  .number()
  .int()
  .min(-2147483648, "must fit in int32")
  .max(2147483647, "must fit in int32");

export const uint32 = z
  .number()
  .int()
  .min(0, "must be >= 0")
  .max(4294967295, "must fit in uint32");

export const portNumber = z
  .number()
  .int()
  .min(1, "port number must be between 1 and 65535")
  .max(65535, "port number must be between 1 and 65535");

/** Percentage as used by Istio's `Percent` message: `{ value: 0..100 }`. */
export const percent = strictObject({
  value: z
    .number()
    .min(0, "percentage must be between 0 and 100")
    .max(100, "percentage must be between 0 and 100")
    .optional(),
});
export type Percent = z.infer<typeof percent>;

/** Kubernetes IntOrString. */
export const intOrString = z.union([z.number().int(), z.string()], {
  errorMap: () => ({ message: "expected integer or string" }),
});

/** IntOrString where the integer form must be a valid port (Service targetPort). */
export const portOrName = z
  .union([z.number().int(), z.string().min(1, "port name must not be empty")], {
    errorMap: (issue, ctx) =>
      issue.code === z.ZodIssueCode.invalid_union ? { message: "expected port number or port name" } : { message: ctx.defaultError },
  })
  .superRefine((v, ctx) => {
    if (typeof v === "number" && (v < 1 || v > 65535)) {
      customIssue(ctx, [], "port number must be between 1 and 65535");
    }
  });

// ---------------------------------------------------------------------------
// Durations (Go time.ParseDuration syntax, as accepted by Istio's CRDs)
// ---------------------------------------------------------------------------

const DURATION_RE = /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$/;
const DURATION_PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3,
  "\u03bcs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parse a Go-style duration ("100ms", "1.5s", "1h30m", "0") into milliseconds.
 * Returns undefined when the string is not a valid duration.
 */
export function parseDurationMs(s: string): number | undefined {
  if (s === "0" || s === "+0" || s === "-0") return 0;
  if (!DURATION_RE.test(s)) return undefined;
  const sign = s.startsWith("-") ? -1 : 1;
  let total = 0;
  for (const m of s.matchAll(DURATION_PART_RE)) {
    total += parseFloat(m[1]!) * UNIT_MS[m[2]!]!;
  }
  return sign * total;
}

/** A non-negative Go-style duration string such as "10s", "100ms", "1h", "1.5s". */
export const duration = z.string().superRefine((s, ctx) => {
  const ms = parseDurationMs(s);
  if (ms === undefined) {
    customIssue(ctx, [], `invalid duration "${s}": expected a Go-style duration such as "100ms", "10s", "1.5s", "1h"`);
  } else if (ms < 0) {
    customIssue(ctx, [], `invalid duration "${s}": must not be negative`);
  }
});

// ---------------------------------------------------------------------------
// Names, labels, selectors
// ---------------------------------------------------------------------------

export const DNS1123_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const labels = z.record(z.string(), z.string());
export type Labels = z.infer<typeof labels>;

/** networking.istio.io WorkloadSelector: `{ labels: {...} }`. */
export const networkingWorkloadSelector = strictObject({
  labels: labels.optional(),
});

/** istio.type.v1beta1.WorkloadSelector: `{ matchLabels: {...} }`. */
export const typeWorkloadSelector = strictObject({
  matchLabels: labels.optional(),
});

/** istio.type.v1beta1.PolicyTargetReference. */
export const policyTargetReference = strictObject({
  group: z.string().optional(),
  kind: z.string().min(1, "kind must not be empty"),
  name: z.string().min(1, "name must not be empty"),
  namespace: z.string().optional(),
});

export const exportTo = z.array(z.string());

export const stringList = z.array(z.string());

// ---------------------------------------------------------------------------
// IPs / CIDRs
// ---------------------------------------------------------------------------

export function isIPAddress(s: string): boolean {
  return isIP(s) !== 0;
}

export function isCIDR(s: string): boolean {
  const slash = s.indexOf("/");
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return false;
  const fam = isIP(ip);
  if (fam === 0) return false;
  const n = Number(bits);
  return fam === 4 ? n <= 32 : n <= 128;
}

/** An IP address or CIDR block. */
export const ipOrCidr = z.string().superRefine((s, ctx) => {
  if (!isIPAddress(s) && !isCIDR(s)) customIssue(ctx, [], `"${s}" is not a valid IP address or CIDR block`);
});

export const ipAddress = z.string().superRefine((s, ctx) => {
  if (!isIPAddress(s)) customIssue(ctx, [], `"${s}" is not a valid IP address`);
});

// ---------------------------------------------------------------------------
// Regular expressions
// ---------------------------------------------------------------------------

/**
 * Check that a regex (Envoy / Istio use Google RE2 syntax) compiles.
 *
 * We approximate RE2 with JavaScript's RegExp:
 *  - RE2 named groups `(?P<name>...)` are rewritten to JS `(?<name>...)`.
 *  - A leading RE2 flag group such as `(?i)` / `(?s)` is stripped (JS only
 *    supports flags outside the pattern in Node 20).
 *  - RE2 does NOT support backreferences (`\1`) or lookaround (`(?=`, `(?!`,
 *    `(?<=`, `(?<!`), which JS accepts; those are rejected explicitly.
 *  - Remaining differences (e.g. RE2 `\pN`, `\C`, `\Q...\E`, possessive
 *    quantifier rules, program-size limits) are not modelled: a few patterns
 *    valid in RE2 may be rejected here and vice versa.
 * Returns an error message, or undefined when the pattern looks valid.
 */
export function checkRE2(pattern: string): string | undefined {
  // Scan for RE2-unsupported constructs outside character classes.
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      const n = pattern[i + 1];
      if (!inClass && n !== undefined && n >= "1" && n <= "9") {
        return "backreferences are not supported by RE2";
      }
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      // A ']' right after '[' or '[^' is literal.
      if (pattern[i + 1] === "^") i++;
      if (pattern[i + 1] === "]") i++;
      continue;
    }
    if (c === "(" && pattern[i + 1] === "?") {
      const rest = pattern.slice(i + 2, i + 4);
      if (rest.startsWith("=") || rest.startsWith("!") || rest === "<=" || rest === "<!") {
        return "lookahead/lookbehind assertions are not supported by RE2";
      }
    }
  }
  let js = pattern.replace(/\(\?P</g, "(?<");
  let flags = "";
  const lead = /^\(\?([imsU]+)\)/.exec(js);
  if (lead) {
    js = js.slice(lead[0].length);
    if (lead[1]!.includes("i")) flags += "i";
    if (lead[1]!.includes("m")) flags += "m";
    if (lead[1]!.includes("s")) flags += "s";
  }
  // RE2 scoped flag groups `(?i:...)` and mid-pattern `(?i)` are not supported
  // by Node 20's RegExp; neutralise them for the syntax check only.
  js = js.replace(/\(\?[imsU-]+:/g, "(?:").replace(/\(\?[imsU-]+\)/g, "");
  try {
    new RegExp(js, flags);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^Invalid regular expression: /, "");
  }
}

export const regexString = z.string().superRefine((s, ctx) => {
  const err = checkRE2(s);
  if (err !== undefined) customIssue(ctx, [], `invalid regex "${s}": ${err}`);
});

// ---------------------------------------------------------------------------
// StringMatch (oneof exact | prefix | regex)
// ---------------------------------------------------------------------------

export const stringMatch = strictObject({
  exact: z.string().optional(),
  prefix: z.string().optional(),
  regex: regexString.optional(),
}).superRefine((m, ctx) => atMostOneOf(ctx, m, ["exact", "prefix", "regex"]));
export type StringMatch = z.infer<typeof stringMatch>;

// ---------------------------------------------------------------------------
// Kubernetes ObjectMeta (extra fields pass through)
// ---------------------------------------------------------------------------

export const objectMeta = looseObject({
  name: z.string().superRefine((n, ctx) => {
    if (n.length === 0) customIssue(ctx, [], "name must not be empty");
    else if (n.length > 253 || !DNS1123_SUBDOMAIN_RE.test(n)) {
      customIssue(ctx, [], `invalid name "${n}": must be a lowercase RFC 1123 subdomain`);
    }
  }),
  namespace: z
    .string()
    .superRefine((n, ctx) => {
      if (n.length > 63 || !DNS1123_LABEL_RE.test(n)) customIssue(ctx, [], `invalid namespace "${n}": must be a lowercase RFC 1123 label`);
    })
    .optional(),
  labels: labels.nullable().optional(),
  annotations: z.record(z.string(), z.string()).nullable().optional(),
});
export type ObjectMeta = z.infer<typeof objectMeta>;

/** Kubernetes ObjectReference (targetRef of Endpoints / EndpointSlice). */
export const objectReference = looseObject({
  kind: z.string().optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  apiVersion: z.string().optional(),
  resourceVersion: z.string().optional(),
  fieldPath: z.string().optional(),
});
export type ObjectReference = z.infer<typeof objectReference>;

export const k8sProtocol = z.enum(["TCP", "UDP", "SCTP"]);
