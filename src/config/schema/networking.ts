/**
 * networking.istio.io schemas (v1 / v1beta1 / v1alpha3 share one schema).
 *
 * Field names follow the JSON (camelCase) form of istio.io/api
 * networking/v1alpha3/{virtual_service,destination_rule,service_entry,
 * gateway,sidecar,workload_entry}.proto. Spec objects are `.strict()`:
 * unknown fields are rejected like Istio's structural CRD schemas do.
 * Cheap semantic checks from Istio's validation webhook
 * (pkg/config/validation) are implemented as refinements.
 */
import { z } from "zod";
import {
  atMostOneOf,
  customIssue,
  DNS1123_LABEL_RE,
  duration,
  exportTo,
  int32,
  ipOrCidr,
  isCIDR,
  isIPAddress,
  isSet,
  labels,
  networkingWorkloadSelector,
  percent,
  portNumber,
  regexString,
  strictObject,
  stringList,
  stringMatch,
  uint32,
} from "./common.js";

const nonEmptyString = (what: string) => z.string().min(1, `${what} must not be empty`);

// ---------------------------------------------------------------------------
// Shared networking pieces
// ---------------------------------------------------------------------------

/** PortSelector: `{ number }`. */
export const portSelector = strictObject({
  number: portNumber.optional(),
});

/** Destination: host, subset, port.number. */
export const destination = strictObject({
  host: nonEmptyString("destination host"),
  subset: z.string().optional(),
  port: portSelector.optional(),
});
export type Destination = z.infer<typeof destination>;

const headerOperations = strictObject({
  set: z.record(z.string(), z.string()).optional(),
  add: z.record(z.string(), z.string()).optional(),
  remove: stringList.optional(),
});

/** Headers: request/response manipulation. */
export const headers = strictObject({
  request: headerOperations.optional(),
  response: headerOperations.optional(),
});
export type Headers = z.infer<typeof headers>;

/** Port used by ServiceEntry, Gateway servers and Sidecar listeners. */
const PROTOCOLS = ["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP", "TLS", "UDP", "THRIFT"];
const protocolName = z.string().superRefine((p, ctx) => {
  // Istio accepts protocol names case-insensitively; unknown names are treated as
  // TCP by the proxy but rejected by validation ("unrecognized protocol").
  if (!PROTOCOLS.includes(p.toUpperCase())) {
    customIssue(ctx, [], `unrecognized protocol "${p}"; expected one of ${PROTOCOLS.join(", ")}`);
  }
});

const portNameLabel = z.string().superRefine((n, ctx) => {
  if (n.length === 0) customIssue(ctx, [], "port name must not be empty");
});

export const servicePort = strictObject({
  number: portNumber,
  protocol: protocolName.optional(),
  name: portNameLabel,
  targetPort: portNumber.optional(),
});
export type ServicePort = z.infer<typeof servicePort>;

// ---------------------------------------------------------------------------
// VirtualService
// ---------------------------------------------------------------------------

export const httpMatchRequest = strictObject({
  name: z.string().optional(),
  uri: stringMatch.optional(),
  scheme: stringMatch.optional(),
  method: stringMatch.optional(),
  authority: stringMatch.optional(),
  headers: z.record(z.string(), stringMatch).optional(),
  port: portNumber.optional(),
  sourceLabels: labels.optional(),
  gateways: stringList.optional(),
  queryParams: z.record(z.string(), stringMatch).optional(),
  ignoreUriCase: z.boolean().optional(),
  withoutHeaders: z.record(z.string(), stringMatch).optional(),
  sourceNamespace: z.string().optional(),
  statPrefix: z.string().optional(),
});
export type HTTPMatchRequest = z.infer<typeof httpMatchRequest>;

const routeWeight = z
  .number()
  .int()
  .min(0, "weight must be between 0 and 100")
  .max(100, "weight must be between 0 and 100");

export const httpRouteDestination = strictObject({
  destination: destination,
  weight: routeWeight.optional(),
  headers: headers.optional(),
});
export type HTTPRouteDestination = z.infer<typeof httpRouteDestination>;

/** RouteDestination used by TCP and TLS routes. */
export const routeDestination = strictObject({
  destination: destination,
  weight: routeWeight.optional(),
});
export type RouteDestination = z.infer<typeof routeDestination>;

export const httpRedirect = strictObject({
  uri: z.string().optional(),
  authority: z.string().optional(),
  port: portNumber.optional(),
  derivePort: z.enum(["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]).optional(),
  scheme: z.string().optional(),
  redirectCode: uint32.optional(),
}).superRefine((r, ctx) => {
  atMostOneOf(ctx, r, ["port", "derivePort"]);
  if (r.redirectCode !== undefined && r.redirectCode !== 0 && (r.redirectCode < 300 || r.redirectCode > 399)) {
    customIssue(ctx, ["redirectCode"], `redirect code ${r.redirectCode} must be between 300 and 399`);
  }
});

export const regexRewrite = strictObject({
  match: regexString.optional(),
  rewrite: z.string().optional(),
});

export const httpRewrite = strictObject({
  uri: z.string().optional(),
  authority: z.string().optional(),
  uriRegexRewrite: regexRewrite.optional(),
}).superRefine((r, ctx) => atMostOneOf(ctx, r, ["uri", "uriRegexRewrite"]));

export const httpBody = strictObject({
  string: z.string().optional(),
  bytes: z.string().optional(), // base64 in JSON form
}).superRefine((b, ctx) => atMostOneOf(ctx, b, ["string", "bytes"]));

export const httpDirectResponse = strictObject({
  status: uint32,
  body: httpBody.optional(),
}).superRefine((d, ctx) => {
  if (d.status < 200 || d.status > 599) {
    customIssue(ctx, ["status"], `directResponse status ${d.status} must be between 200 and 599`);
  }
});

export const delegate = strictObject({
  name: nonEmptyString("delegate name"),
  namespace: z.string().optional(),
});

export const httpRetry = strictObject({
  attempts: int32.min(0, "retry attempts must be >= 0").optional(),
  perTryTimeout: duration.optional(),
  retryOn: z.string().optional(),
  retryRemoteLocalities: z.boolean().optional(),
  retryIgnorePreviousHosts: z.boolean().optional(),
  backoff: duration.optional(),
});

const faultDelay = strictObject({
  percent: int32.min(0).max(100).optional(), // deprecated
  fixedDelay: duration.optional(),
  exponentialDelay: duration.optional(),
  percentage: percent.optional(),
}).superRefine((d, ctx) => {
  atMostOneOf(ctx, d, ["fixedDelay", "exponentialDelay"]);
  if (!isSet(d.fixedDelay) && !isSet(d.exponentialDelay)) {
    customIssue(ctx, ["fixedDelay"], "delay must specify fixedDelay");
  }
});

const faultAbort = strictObject({
  httpStatus: int32.optional(),
  grpcStatus: z.string().optional(),
  http2Error: z.string().optional(),
  percentage: percent.optional(),
}).superRefine((a, ctx) => {
  atMostOneOf(ctx, a, ["httpStatus", "grpcStatus", "http2Error"]);
  if (!isSet(a.httpStatus) && !isSet(a.grpcStatus) && !isSet(a.http2Error)) {
    customIssue(ctx, ["httpStatus"], "abort must specify httpStatus or grpcStatus");
  }
  if (a.httpStatus !== undefined && (a.httpStatus < 200 || a.httpStatus > 599)) {
    customIssue(ctx, ["httpStatus"], `abort httpStatus ${a.httpStatus} must be between 200 and 599`);
  }
});

export const httpFaultInjection = strictObject({
  delay: faultDelay.optional(),
  abort: faultAbort.optional(),
}).superRefine((f, ctx) => {
  if (!isSet(f.delay) && !isSet(f.abort)) customIssue(ctx, [], "fault must specify delay or abort (or both)");
});
export type HTTPFaultInjection = z.infer<typeof httpFaultInjection>;

export const httpMirrorPolicy = strictObject({
  destination: destination,
  percentage: percent.optional(),
});

export const corsPolicy = strictObject({
  allowOrigin: stringList.optional(), // deprecated
  allowOrigins: z.array(stringMatch).optional(),
  allowMethods: stringList.optional(),
  allowHeaders: stringList.optional(),
  exposeHeaders: stringList.optional(),
  maxAge: duration.optional(),
  allowCredentials: z.boolean().optional(),
  unmatchedPreflights: z.enum(["UNSPECIFIED", "FORWARD", "IGNORE"]).optional(),
});
export type CorsPolicy = z.infer<typeof corsPolicy>;

/** Weights 0..100 each; with more than one destination they must sum to 100. */
function checkWeights(ctx: z.RefinementCtx, routes: ReadonlyArray<{ weight?: number | undefined }> | undefined, path: string): void {
  if (!routes || routes.length <= 1) return;
  const total = routes.reduce((s, r) => s + (r.weight ?? 0), 0);
  if (total !== 100) customIssue(ctx, [path], `total destination weight ${total} != 100`);
}

export const httpRoute = strictObject({
  name: z.string().optional(),
  match: z.array(httpMatchRequest).optional(),
  route: z.array(httpRouteDestination).optional(),
  redirect: httpRedirect.optional(),
  directResponse: httpDirectResponse.optional(),
  delegate: delegate.optional(),
  rewrite: httpRewrite.optional(),
  timeout: duration.optional(),
  retries: httpRetry.optional(),
  fault: httpFaultInjection.optional(),
  mirror: destination.optional(),
  mirrors: z.array(httpMirrorPolicy).optional(),
  mirrorPercent: uint32.optional(), // deprecated
  mirrorPercentage: percent.optional(),
  mirror_percent: uint32.optional(), // deprecated legacy spelling still in the CRD
  corsPolicy: corsPolicy.optional(),
  headers: headers.optional(),
}).superRefine((r, ctx) => {
  const hasRoute = (r.route?.length ?? 0) > 0;
  if (!hasRoute && !isSet(r.redirect) && !isSet(r.directResponse) && !isSet(r.delegate)) {
    customIssue(ctx, ["route"], "HTTP route, redirect, directResponse or delegate is required");
  }
  if (hasRoute && isSet(r.redirect)) customIssue(ctx, ["redirect"], "HTTP route cannot contain both route and redirect");
  if (hasRoute && isSet(r.directResponse)) customIssue(ctx, ["directResponse"], "HTTP route cannot contain both route and directResponse");
  if (isSet(r.redirect) && isSet(r.directResponse)) customIssue(ctx, ["directResponse"], "HTTP route cannot contain both redirect and directResponse");
  if (isSet(r.redirect) && isSet(r.rewrite)) customIssue(ctx, ["rewrite"], "HTTP route rule cannot contain both rewrite and redirect");
  if (isSet(r.delegate) && (hasRoute || isSet(r.redirect) || isSet(r.directResponse))) {
    customIssue(ctx, ["delegate"], "HTTP route cannot contain both delegate and route/redirect/directResponse");
  }
  if (isSet(r.mirror) && (r.mirrors?.length ?? 0) > 0) customIssue(ctx, ["mirrors"], "cannot specify both mirror and mirrors");
  checkWeights(ctx, r.route, "route");
});
export type HTTPRoute = z.infer<typeof httpRoute>;

export const tlsMatchAttributes = strictObject({
  sniHosts: z.array(z.string()).min(1, "TLS match must have at least one SNI host"),
  destinationSubnets: z.array(ipOrCidr).optional(),
  port: portNumber.optional(),
  sourceLabels: labels.optional(),
  gateways: stringList.optional(),
  sourceNamespace: z.string().optional(),
});

export const l4MatchAttributes = strictObject({
  destinationSubnets: z.array(ipOrCidr).optional(),
  port: portNumber.optional(),
  sourceSubnet: z.string().optional(),
  sourceLabels: labels.optional(),
  gateways: stringList.optional(),
  sourceNamespace: z.string().optional(),
});

export const tlsRoute = strictObject({
  match: z.array(tlsMatchAttributes).min(1, "TLS route must have at least one match condition"),
  route: z.array(routeDestination).min(1, "TLS route is required"),
}).superRefine((r, ctx) => checkWeights(ctx, r.route, "route"));
export type TLSRoute = z.infer<typeof tlsRoute>;

export const tcpRoute = strictObject({
  match: z.array(l4MatchAttributes).optional(),
  route: z.array(routeDestination).min(1, "TCP route is required"),
}).superRefine((r, ctx) => checkWeights(ctx, r.route, "route"));
export type TCPRoute = z.infer<typeof tcpRoute>;

export const virtualServiceSpec = strictObject({
  hosts: z.array(nonEmptyString("host")).optional(),
  gateways: stringList.optional(),
  http: z.array(httpRoute).optional(),
  tls: z.array(tlsRoute).optional(),
  tcp: z.array(tcpRoute).optional(),
  exportTo: exportTo.optional(),
}).superRefine((vs, ctx) => {
  if ((vs.hosts?.length ?? 0) === 0) {
    // Istio treats a host-less VirtualService as a *delegate* (referenced from
    // another VirtualService's `delegate`). Delegates may only carry http routes
    // and no gateways; anything else needs at least one host.
    const delegateShaped =
      (vs.http?.length ?? 0) > 0 && (vs.gateways?.length ?? 0) === 0 && (vs.tls?.length ?? 0) === 0 && (vs.tcp?.length ?? 0) === 0;
    if (!delegateShaped) customIssue(ctx, ["hosts"], "virtual service must have at least one host");
  }
  if ((vs.http?.length ?? 0) === 0 && (vs.tls?.length ?? 0) === 0 && (vs.tcp?.length ?? 0) === 0) {
    customIssue(ctx, ["http"], "http, tcp or tls must be provided in virtual service");
  }
});
export type VirtualServiceSpec = z.infer<typeof virtualServiceSpec>;

// ---------------------------------------------------------------------------
// DestinationRule
// ---------------------------------------------------------------------------

const httpCookie = strictObject({
  name: nonEmptyString("cookie name"),
  path: z.string().optional(),
  ttl: duration.optional(),
  attributes: z.array(strictObject({ name: nonEmptyString("cookie attribute name"), value: z.string().optional() })).optional(),
});

const consistentHashLB = strictObject({
  httpHeaderName: z.string().optional(),
  httpCookie: httpCookie.optional(),
  useSourceIp: z.boolean().optional(),
  httpQueryParameterName: z.string().optional(),
  ringHash: strictObject({ minimumRingSize: z.number().int().min(0).optional() }).optional(),
  maglev: strictObject({ tableSize: z.number().int().min(0).optional() }).optional(),
  minimumRingSize: z.number().int().min(0).optional(), // deprecated
}).superRefine((c, ctx) => {
  atMostOneOf(ctx, c, ["httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"]);
  atMostOneOf(ctx, c, ["ringHash", "maglev"]);
  if (isSet(c.minimumRingSize) && (isSet(c.ringHash) || isSet(c.maglev))) {
    customIssue(ctx, ["minimumRingSize"], "minimumRingSize cannot be combined with ringHash or maglev");
  }
});

/** Also MeshConfig.localityLbSetting (src/config/schema/mesh.ts). */
export const localityLbSetting = strictObject({
  distribute: z
    .array(
      strictObject({
        from: z.string().optional(),
        to: z.record(z.string(), uint32).optional(),
      }),
    )
    .optional(),
  failover: z.array(strictObject({ from: z.string().optional(), to: z.string().optional() })).optional(),
  failoverPriority: stringList.optional(),
  enabled: z.boolean().nullable().optional(),
}).superRefine((l, ctx) => {
  if ((l.distribute?.length ?? 0) > 0 && (l.failover?.length ?? 0) > 0) {
    customIssue(ctx, ["failover"], "can not simultaneously specify 'distribute' and 'failover'");
  }
  l.distribute?.forEach((d, i) => {
    if (!d.to) return;
    const total = Object.values(d.to).reduce((s, w) => s + w, 0);
    if (total !== 100) customIssue(ctx, ["distribute", i, "to"], `total locality distribute weight ${total} != 100`);
  });
});

export const loadBalancerSettings = strictObject({
  simple: z.enum(["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"]).optional(),
  consistentHash: consistentHashLB.optional(),
  localityLbSetting: localityLbSetting.optional(),
  warmupDurationSecs: duration.optional(),
  warmup: strictObject({
    duration: duration,
    minimumPercent: z.number().min(0).max(100).optional(),
    aggression: z.number().min(1).optional(),
  }).optional(),
}).superRefine((lb, ctx) => {
  atMostOneOf(ctx, lb, ["simple", "consistentHash"]);
  atMostOneOf(ctx, lb, ["warmupDurationSecs", "warmup"]);
});
export type LoadBalancerSettings = z.infer<typeof loadBalancerSettings>;

export const connectionPoolSettings = strictObject({
  tcp: strictObject({
    maxConnections: int32.min(0, "maxConnections must be >= 0").optional(),
    connectTimeout: duration.optional(),
    tcpKeepalive: strictObject({
      probes: uint32.optional(),
      time: duration.optional(),
      interval: duration.optional(),
    }).optional(),
    maxConnectionDuration: duration.optional(),
    idleTimeout: duration.optional(),
  }).optional(),
  http: strictObject({
    http1MaxPendingRequests: int32.min(0, "http1MaxPendingRequests must be >= 0").optional(),
    http2MaxRequests: int32.min(0, "http2MaxRequests must be >= 0").optional(),
    maxRequestsPerConnection: int32.min(0, "maxRequestsPerConnection must be >= 0").optional(),
    maxRetries: int32.min(0, "maxRetries must be >= 0").optional(),
    idleTimeout: duration.optional(),
    h2UpgradePolicy: z.enum(["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]).optional(),
    useClientProtocol: z.boolean().optional(),
    maxConcurrentStreams: int32.min(0, "maxConcurrentStreams must be >= 0").optional(),
  }).optional(),
});
export type ConnectionPoolSettings = z.infer<typeof connectionPoolSettings>;

const pct0to100 = (what: string) => int32.min(0, `${what} must be between 0 and 100`).max(100, `${what} must be between 0 and 100`);

export const outlierDetection = strictObject({
  splitExternalLocalOriginErrors: z.boolean().optional(),
  consecutiveLocalOriginFailures: uint32.nullable().optional(),
  consecutiveGatewayErrors: uint32.nullable().optional(),
  consecutive5xxErrors: uint32.nullable().optional(),
  consecutiveErrors: int32.optional(), // deprecated
  interval: duration.optional(),
  baseEjectionTime: duration.optional(),
  maxEjectionPercent: pct0to100("maxEjectionPercent").optional(),
  minHealthPercent: pct0to100("minHealthPercent").optional(),
});
export type OutlierDetection = z.infer<typeof outlierDetection>;

export const clientTLSSettings = strictObject({
  mode: z.enum(["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]).optional(),
  clientCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  credentialName: z.string().optional(),
  subjectAltNames: stringList.optional(),
  sni: z.string().optional(),
  insecureSkipVerify: z.boolean().nullable().optional(),
  caCrl: z.string().optional(),
}).superRefine((t, ctx) => {
  if (t.mode === "MUTUAL" && !t.credentialName && (!t.clientCertificate || !t.privateKey)) {
    customIssue(ctx, ["clientCertificate"], "client certificate and private key (or credentialName) are required for MUTUAL TLS");
  }
});
export type ClientTLSSettings = z.infer<typeof clientTLSSettings>;

const portTrafficPolicy = strictObject({
  port: portSelector.optional(),
  loadBalancer: loadBalancerSettings.optional(),
  connectionPool: connectionPoolSettings.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTLSSettings.optional(),
}).superRefine((p, ctx) => {
  if (!isSet(p.port?.number)) customIssue(ctx, ["port"], "portLevelSettings must specify port.number");
});

export const trafficPolicy = strictObject({
  loadBalancer: loadBalancerSettings.optional(),
  connectionPool: connectionPoolSettings.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTLSSettings.optional(),
  portLevelSettings: z.array(portTrafficPolicy).optional(),
  tunnel: strictObject({
    protocol: z.enum(["CONNECT", "POST"]).optional(),
    targetHost: nonEmptyString("tunnel targetHost"),
    targetPort: portNumber,
  }).optional(),
  proxyProtocol: strictObject({ version: z.enum(["V1", "V2"]).optional() }).optional(),
}).superRefine((tp, ctx) => {
  if (Object.values(tp).every((v) => !isSet(v))) customIssue(ctx, [], "traffic policy must have at least one field");
  const seen = new Set<number>();
  tp.portLevelSettings?.forEach((p, i) => {
    const n = p.port?.number;
    if (n === undefined) return;
    if (seen.has(n)) customIssue(ctx, ["portLevelSettings", i, "port", "number"], `duplicate port level setting for port ${n}`);
    seen.add(n);
  });
});
export type TrafficPolicy = z.infer<typeof trafficPolicy>;

export const subset = strictObject({
  name: z.string().superRefine((n, ctx) => {
    if (n.length === 0) customIssue(ctx, [], "subset name must not be empty");
    else if (!DNS1123_LABEL_RE.test(n) || n.length > 63) customIssue(ctx, [], `subset name "${n}" is invalid: must be a DNS-1123 label`);
  }),
  labels: labels.optional(),
  trafficPolicy: trafficPolicy.optional(),
});
export type Subset = z.infer<typeof subset>;

export const destinationRuleSpec = strictObject({
  host: z.string(),
  trafficPolicy: trafficPolicy.optional(),
  subsets: z.array(subset).optional(),
  exportTo: exportTo.optional(),
  workloadSelector: strictObject({ matchLabels: labels.optional() }).optional(),
}).superRefine((dr, ctx) => {
  if (dr.host.length === 0) customIssue(ctx, ["host"], "destination rule must have a host");
  const seen = new Set<string>();
  dr.subsets?.forEach((s, i) => {
    if (seen.has(s.name)) customIssue(ctx, ["subsets", i, "name"], `duplicate subset name "${s.name}"`);
    seen.add(s.name);
  });
});
export type DestinationRuleSpec = z.infer<typeof destinationRuleSpec>;

// ---------------------------------------------------------------------------
// WorkloadEntry (also used for ServiceEntry.endpoints)
// ---------------------------------------------------------------------------

export const workloadEntrySpec = strictObject({
  address: z.string().optional(),
  ports: z.record(z.string(), portNumber).optional(),
  labels: labels.optional(),
  network: z.string().optional(),
  locality: z.string().optional(),
  weight: uint32.optional(),
  serviceAccount: z.string().optional(),
});
export type WorkloadEntrySpec = z.infer<typeof workloadEntrySpec>;

const workloadEntryStandalone = workloadEntrySpec.superRefine((we, ctx) => {
  if (!we.address && !we.network) customIssue(ctx, ["address"], "address is required (unless network is set)");
  if (we.address && we.address.startsWith("unix://") === false && isCIDR(we.address)) {
    customIssue(ctx, ["address"], `address "${we.address}" must be an IP address or hostname, not a CIDR block`);
  }
});

// ---------------------------------------------------------------------------
// ServiceEntry
// ---------------------------------------------------------------------------

export const serviceEntrySpec = strictObject({
  hosts: z.array(nonEmptyString("host")).optional(),
  addresses: z.array(ipOrCidr).optional(),
  ports: z.array(servicePort).optional(),
  location: z.enum(["MESH_EXTERNAL", "MESH_INTERNAL"]).optional(),
  resolution: z.enum(["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]).optional(),
  endpoints: z.array(workloadEntrySpec).optional(),
  workloadSelector: networkingWorkloadSelector.optional(),
  exportTo: exportTo.optional(),
  subjectAltNames: stringList.optional(),
}).superRefine((se, ctx) => {
  if ((se.hosts?.length ?? 0) === 0) customIssue(ctx, ["hosts"], "service entry must have at least one host");
  if ((se.ports?.length ?? 0) === 0) customIssue(ctx, ["ports"], "service entry must have at least one port");
  const names = new Set<string>();
  const numbers = new Set<number>();
  se.ports?.forEach((p, i) => {
    if (names.has(p.name)) customIssue(ctx, ["ports", i, "name"], `port name "${p.name}" is not unique`);
    if (numbers.has(p.number)) customIssue(ctx, ["ports", i, "number"], `port number ${p.number} is not unique`);
    names.add(p.name);
    numbers.add(p.number);
  });
  if ((se.endpoints?.length ?? 0) > 0 && isSet(se.workloadSelector)) {
    customIssue(ctx, ["workloadSelector"], "only one of workloadSelector or endpoints is allowed in a service entry");
  }
  const resolution = se.resolution ?? "NONE";
  se.endpoints?.forEach((ep, i) => {
    if (!ep.address && !ep.network) customIssue(ctx, ["endpoints", i, "address"], "endpoint address is required");
    if (resolution === "STATIC" && ep.address && !ep.address.startsWith("unix://") && !isIPAddress(ep.address)) {
      customIssue(ctx, ["endpoints", i, "address"], `endpoint address "${ep.address}" must be an IP address for STATIC resolution`);
    }
    if (ep.ports) {
      for (const name of Object.keys(ep.ports)) {
        if (se.ports && !se.ports.some((p) => p.name === name)) {
          customIssue(ctx, ["endpoints", i, "ports", name], `endpoint port "${name}" does not match any service port name`);
        }
      }
    }
  });
  if (resolution === "NONE" && (se.endpoints?.length ?? 0) > 0) {
    customIssue(ctx, ["endpoints"], "no endpoints should be provided for resolution type NONE");
  }
});
export type ServiceEntrySpec = z.infer<typeof serviceEntrySpec>;

// ---------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------

const TLS_VERSIONS = ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"] as const;

export const serverTLSSettings = strictObject({
  httpsRedirect: z.boolean().optional(),
  mode: z.enum(["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]).optional(),
  serverCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  caCrl: z.string().optional(),
  credentialName: z.string().optional(),
  credentialNames: stringList.optional(),
  tlsCertificates: z
    .array(strictObject({ serverCertificate: z.string().optional(), privateKey: z.string().optional(), caCertificates: z.string().optional() }))
    .optional(),
  subjectAltNames: stringList.optional(),
  verifyCertificateSpki: stringList.optional(),
  verifyCertificateHash: stringList.optional(),
  minProtocolVersion: z.enum(TLS_VERSIONS).optional(),
  maxProtocolVersion: z.enum(TLS_VERSIONS).optional(),
  cipherSuites: stringList.optional(),
}).superRefine((t, ctx) => {
  if (t.mode === "SIMPLE" || t.mode === "MUTUAL" || t.mode === "OPTIONAL_MUTUAL") {
    const hasCreds =
      !!t.credentialName || (t.credentialNames?.length ?? 0) > 0 || (t.tlsCertificates?.length ?? 0) > 0 || (!!t.serverCertificate && !!t.privateKey);
    if (!hasCreds) {
      customIssue(ctx, ["credentialName"], `${t.mode} TLS requires credentialName, or serverCertificate and privateKey`);
    }
  }
});
export type ServerTLSSettings = z.infer<typeof serverTLSSettings>;

export const gatewayPort = strictObject({
  number: portNumber,
  protocol: protocolName,
  name: portNameLabel,
  targetPort: portNumber.optional(),
});

export const server = strictObject({
  port: gatewayPort,
  bind: z.string().optional(),
  hosts: z.array(nonEmptyString("host")).min(1, "server must have at least one host"),
  tls: serverTLSSettings.optional(),
  defaultEndpoint: z.string().optional(),
  name: z.string().optional(),
});
export type Server = z.infer<typeof server>;

export const gatewaySpec = strictObject({
  servers: z.array(server).min(1, "gateway must have at least one server"),
  selector: labels.optional(),
}).superRefine((g, ctx) => {
  const names = new Map<string, number>();
  g.servers.forEach((s, i) => {
    const prev = names.get(s.port.name);
    // Istio requires port names to be unique unless they describe the same port.
    if (prev !== undefined && prev !== s.port.number) {
      customIssue(ctx, ["servers", i, "port", "name"], `port names in servers must be unique: duplicate name "${s.port.name}"`);
    }
    names.set(s.port.name, s.port.number);
  });
});
export type GatewaySpec = z.infer<typeof gatewaySpec>;

// ---------------------------------------------------------------------------
// Sidecar
// ---------------------------------------------------------------------------

const sidecarPort = strictObject({
  number: portNumber,
  protocol: protocolName.optional(),
  name: z.string().optional(),
  targetPort: portNumber.optional(),
});

const captureMode = z.enum(["DEFAULT", "IPTABLES", "NONE"]);

export const istioIngressListener = strictObject({
  port: sidecarPort,
  bind: z.string().optional(),
  captureMode: captureMode.optional(),
  defaultEndpoint: z.string().optional(),
  tls: serverTLSSettings.optional(),
  connectionPool: connectionPoolSettings.optional(),
});

export const istioEgressListener = strictObject({
  port: sidecarPort.optional(),
  bind: z.string().optional(),
  captureMode: captureMode.optional(),
  hosts: z.array(nonEmptyString("host")).min(1, "egress listener must contain at least one host"),
});

export const sidecarSpec = strictObject({
  workloadSelector: networkingWorkloadSelector.optional(),
  ingress: z.array(istioIngressListener).optional(),
  egress: z.array(istioEgressListener).optional(),
  inboundConnectionPool: connectionPoolSettings.optional(),
  outboundTrafficPolicy: strictObject({
    mode: z.enum(["REGISTRY_ONLY", "ALLOW_ANY"]).optional(),
    egressProxy: destination.optional(),
  }).optional(),
}).superRefine((sc, ctx) => {
  if (!isSet(sc.ingress) && !isSet(sc.egress) && !isSet(sc.outboundTrafficPolicy) && !isSet(sc.inboundConnectionPool)) {
    customIssue(ctx, [], "sidecar: empty configuration provided");
  }
  const egressPorts = new Set<string>();
  sc.egress?.forEach((e, i) => {
    const key = e.port ? `${e.bind ?? ""}:${e.port.number}` : `${e.bind ?? ""}:catch-all`;
    if (egressPorts.has(key)) customIssue(ctx, ["egress", i, "port"], "sidecar: egress listeners must have unique bind/port");
    egressPorts.add(key);
  });
  const ingressPorts = new Set<string>();
  sc.ingress?.forEach((l, i) => {
    const key = `${l.bind ?? ""}:${l.port.number}`;
    if (ingressPorts.has(key)) customIssue(ctx, ["ingress", i, "port"], "sidecar: ingress listeners must have unique bind/port");
    ingressPorts.add(key);
    // istio validation.go ValidateSidecar / validateSidecarIngressPortAndBind.
    if (l.bind && !isIPAddress(l.bind)) customIssue(ctx, ["ingress", i, "bind"], `"${l.bind}" is not a valid IP address`);
    if (l.defaultEndpoint) {
      const err = sidecarDefaultEndpointError(l.defaultEndpoint);
      if (err) customIssue(ctx, ["ingress", i, "defaultEndpoint"], err);
    }
  });
  sc.egress?.forEach((e, i) => {
    if (e.bind && !e.bind.startsWith("unix://") && !isIPAddress(e.bind)) {
      customIssue(ctx, ["egress", i, "bind"], `"${e.bind}" is not a valid IP address or unix:// socket`);
    }
  });
});

/** defaultEndpoint forms Istio accepts: 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT, :PORT, unix://PATH. */
function sidecarDefaultEndpointError(ep: string): string | undefined {
  if (ep.startsWith("unix://")) return ep.length > "unix://".length ? undefined : "sidecar: defaultEndpoint unix:// needs a socket path";
  const m = /^(\[[^\]]*\]|[^:]*):([^:]*)$/.exec(ep);
  if (!m) return `sidecar: defaultEndpoint "${ep}" is not HOST:PORT`;
  if (!["", "127.0.0.1", "0.0.0.0", "[::1]", "[::]"].includes(m[1]!)) {
    return "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, unix://filepath, or unset";
  }
  const port = Number(m[2]);
  if (!/^\d+$/.test(m[2]!) || port < 1 || port > 65535) return `sidecar: defaultEndpoint port "${m[2]}" must be a number in 1-65535`;
  return undefined;
}
export type SidecarSpec = z.infer<typeof sidecarSpec>;

/** Exposed for index.ts: standalone WorkloadEntry resources need an address or network. */
export const workloadEntryResourceSpec = workloadEntryStandalone;
