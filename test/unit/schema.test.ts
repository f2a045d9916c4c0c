import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  KNOWN_KINDS,
  checkRE2,
  formatPath,
  parseDurationMs,
  validateResource,
  type FieldError,
  type ValidationResult,
  type VirtualServiceSpec,
} from "../../src/config/schema/index.js";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

function y(text: string): unknown {
  return parseYaml(text);
}

function assertOk(r: ValidationResult<unknown>, label = ""): void {
  if (!r.ok) assert.fail(`${label} expected valid, got errors:\n${r.errors.map((e) => `  ${e.path}: ${e.message}`).join("\n")}`);
}

function errorsOf(r: ValidationResult<unknown>): FieldError[] {
  if (r.ok) assert.fail("expected validation to fail, but it passed");
  return r.errors;
}

/** Assert that some error has exactly `path` (and, optionally, a message matching `msg`). */
function assertError(r: ValidationResult<unknown>, path: string, msg?: RegExp | string): FieldError {
  const errs = errorsOf(r);
  const hit = errs.find((e) => e.path === path && (msg === undefined || (typeof msg === "string" ? e.message === msg : msg.test(e.message))));
  if (!hit) {
    assert.fail(`no error at path ${JSON.stringify(path)} matching ${String(msg)}; got:\n${errs.map((e) => `  ${e.path}: ${e.message}`).join("\n")}`);
  }
  return hit;
}

// ---------------------------------------------------------------------------
// Valid Bookinfo-like examples
// ---------------------------------------------------------------------------

const VALID: Record<string, string> = {
  Service: `
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: bookinfo
  labels:
    app: reviews
    service: reviews
spec:
  type: ClusterIP
  clusterIP: 10.96.12.7
  clusterIPs: [10.96.12.7]
  ipFamilyPolicy: SingleStack
  ports:
  - name: http
    port: 9080
    targetPort: 9080
    protocol: TCP
    appProtocol: http
  - name: grpc-admin
    port: 15000
    targetPort: admin
  selector:
    app: reviews
status:
  loadBalancer: {}
`,
  ExternalNameService: `
apiVersion: v1
kind: Service
metadata: { name: ext-db, namespace: bookinfo }
spec:
  type: ExternalName
  externalName: db.example.com
`,
  Endpoints: `
apiVersion: v1
kind: Endpoints
metadata:
  name: reviews
  namespace: bookinfo
subsets:
- addresses:
  - ip: 10.244.1.12
    nodeName: node-1
    targetRef:
      kind: Pod
      name: reviews-v1-545db77b95-abcde
      namespace: bookinfo
      uid: 0b5d1f7e-1111-2222-3333-444455556666
  - ip: 10.244.2.7
    targetRef: { kind: Pod, name: reviews-v2-7bf8c9648f-xyz12, namespace: bookinfo }
  notReadyAddresses:
  - ip: 10.244.3.9
  ports:
  - name: http
    port: 9080
    protocol: TCP
`,
  Pod: `
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1-545db77b95-abcde
  namespace: bookinfo
  labels: { app: reviews, version: v1, pod-template-hash: 545db77b95 }
  annotations:
    sidecar.istio.io/status: '{"initContainers":["istio-init"]}'
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: reviews-v1-545db77b95
    uid: 1234
spec:
  serviceAccountName: bookinfo-reviews
  nodeName: node-1
  restartPolicy: Always
  containers:
  - name: reviews
    image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.1
    imagePullPolicy: IfNotPresent
    env:
    - name: LOG_DIR
      value: /tmp/logs
    ports:
    - containerPort: 9080
      protocol: TCP
  - name: istio-proxy
    image: docker.io/istio/proxyv2:1.24.0
    ports:
    - containerPort: 15090
      name: http-envoy-prom
      protocol: TCP
status:
  phase: Running
  podIP: 10.244.1.12
  podIPs:
  - ip: 10.244.1.12
  hostIP: 172.18.0.2
  conditions:
  - type: Ready
    status: "True"
  - type: ContainersReady
    status: "True"
  containerStatuses: []
`,
  Namespace: `
apiVersion: v1
kind: Namespace
metadata:
  name: bookinfo
  labels:
    istio-injection: enabled
    topology.istio.io/network: network1
spec:
  finalizers: [kubernetes]
status:
  phase: Active
`,
  EndpointSlice: `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc12
  namespace: bookinfo
  labels:
    kubernetes.io/service-name: reviews
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
addressType: IPv4
endpoints:
- addresses: [10.244.1.12]
  conditions: { ready: true, serving: true, terminating: false }
  nodeName: node-1
  zone: us-east-1a
  targetRef: { kind: Pod, name: reviews-v1-545db77b95-abcde, namespace: bookinfo }
- addresses: [10.244.2.7]
  conditions: { ready: false, serving: true, terminating: true }
  hints:
    forZones: [{ name: us-east-1b }]
ports:
- name: http
  port: 9080
  protocol: TCP
  appProtocol: http
`,
  VirtualService: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
  - reviews
  - reviews.bookinfo.svc.cluster.local
  exportTo: ["."]
  http:
  - name: jason
    match:
    - headers:
        end-user:
          exact: jason
      uri:
        prefix: /reviews
      ignoreUriCase: true
      method:
        exact: GET
      queryParams:
        debug:
          regex: "^(true|1)$"
      withoutHeaders:
        x-skip:
          exact: "1"
      sourceLabels:
        app: productpage
      sourceNamespace: bookinfo
      port: 9080
    - uri:
        regex: "^/api/v[0-9]+/(?P<id>[a-z]+)$"
      authority:
        exact: reviews:9080
    route:
    - destination:
        host: reviews
        subset: v2
        port:
          number: 9080
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream
    headers:
      request:
        set:
          x-request-source: mesh
        remove: [x-debug]
      response:
        add:
          x-served-by: reviews-v2
  - name: fault
    match:
    - headers:
        x-test-fault:
          exact: "yes"
    fault:
      delay:
        fixedDelay: 1.5s
        percentage:
          value: 10
      abort:
        httpStatus: 503
        percentage:
          value: 0.1
    route:
    - destination: { host: reviews, subset: v1 }
  - name: rewrite
    match:
    - uri:
        prefix: /old
    rewrite:
      uri: /new
      authority: reviews.internal
    route:
    - destination: { host: reviews, subset: v1 }
  - name: regex-rewrite
    match:
    - uri:
        prefix: /r
    rewrite:
      uriRegexRewrite:
        match: "^/r/(.*)$"
        rewrite: /\\1
    route:
    - destination: { host: reviews, subset: v1 }
  - name: redirect
    match:
    - uri: { exact: /moved }
    redirect:
      uri: /reviews
      authority: reviews.example.com
      redirectCode: 301
  - name: direct
    match:
    - uri: { exact: /healthz }
    directResponse:
      status: 200
      body:
        string: ok
  - name: delegated
    match:
    - uri: { prefix: /delegated }
    delegate:
      name: reviews-delegate
      namespace: bookinfo
  - name: default
    route:
    - destination:
        host: reviews
        subset: v1
      weight: 75
      headers:
        response:
          set: { x-canary: "false" }
    - destination:
        host: reviews
        subset: v3
      weight: 25
    mirror:
      host: reviews
      subset: v3
    mirrorPercentage:
      value: 50.0
    corsPolicy:
      allowOrigins:
      - exact: https://example.com
      - regex: "https://.*\\\\.example\\\\.org"
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
    timeout: 100ms
`,
  VirtualServiceTcpTls: `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: egress-routes
spec:
  hosts: ["*.example.com", mysql.db]
  gateways: [mesh, istio-system/egress-gateway]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    mirrors:
    - destination: { host: shadow.example.com }
      percentage: { value: 5 }
    route:
    - destination: { host: api.example.com, port: { number: 80 } }
  tls:
  - match:
    - sniHosts: [secure.example.com]
      port: 443
      gateways: [mesh]
    route:
    - destination: { host: secure.example.com, port: { number: 443 } }
  tcp:
  - match:
    - port: 3306
      destinationSubnets: [10.0.0.0/16]
    route:
    - destination: { host: mysql.db, subset: primary, port: { number: 3306 } }
      weight: 80
    - destination: { host: mysql.db, subset: replica, port: { number: 3306 } }
      weight: 20
`,
  DelegateVirtualService: `
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews-delegate
  namespace: bookinfo
spec:
  http:
  - match:
    - uri: { prefix: /delegated/v2 }
    route:
    - destination: { host: reviews, subset: v2 }
`,
  DestinationRule: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews.bookinfo.svc.cluster.local
  exportTo: ["*"]
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
      localityLbSetting:
        enabled: true
        distribute:
        - from: us-west/zone1/*
          to:
            "us-west/zone1/*": 80
            "us-west/zone2/*": 20
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
        tcpKeepalive:
          time: 7200s
          interval: 75s
          probes: 9
      http:
        http1MaxPendingRequests: 1024
        http2MaxRequests: 1024
        maxRequestsPerConnection: 10
        maxRetries: 3
        idleTimeout: 1h
        h2UpgradePolicy: UPGRADE
    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 5
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 50
      minHealthPercent: 10
    tls:
      mode: ISTIO_MUTUAL
    portLevelSettings:
    - port:
        number: 9080
      loadBalancer:
        consistentHash:
          httpHeaderName: x-user
          ringHash:
            minimumRingSize: 1024
    - port:
        number: 9443
      tls:
        mode: SIMPLE
        sni: reviews.example.com
        credentialName: reviews-ca
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpCookie:
            name: user
            ttl: 0s
  - name: v3
    labels:
      version: v3
    trafficPolicy:
      loadBalancer:
        consistentHash:
          useSourceIp: true
          maglev: { tableSize: 65537 }
`,
  ServiceEntry: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-svc-https
spec:
  hosts:
  - api.dropboxapi.com
  - www.googleapis.com
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: https
    protocol: TLS
  resolution: DNS
  exportTo: ["."]
`,
  ServiceEntryStatic: `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-mongocluster
spec:
  hosts:
  - mymongodb.somedomain
  addresses:
  - 192.192.192.192/24
  ports:
  - number: 27018
    name: mongodb
    protocol: MONGO
    targetPort: 27017
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 2.2.2.2
    ports: { mongodb: 27017 }
    labels: { zone: a }
    locality: us-east/zone1
    network: net1
    weight: 10
  - address: 3.3.3.3
  subjectAltNames: ["spiffe://cluster.local/ns/db/sa/mongo"]
`,
  Gateway: `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
  namespace: bookinfo
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts: ["*"]
    tls:
      httpsRedirect: true
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts: ["bookinfo/bookinfo.example.com"]
    tls:
      mode: SIMPLE
      credentialName: bookinfo-cert
      minProtocolVersion: TLSV1_2
  - port:
      number: 15443
      name: tls-passthrough
      protocol: TLS
    hosts: ["*.local"]
    tls:
      mode: AUTO_PASSTHROUGH
`,
  Sidecar: `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ratings
  namespace: bookinfo
spec:
  workloadSelector:
    labels:
      app: ratings
  ingress:
  - port:
      number: 9080
      protocol: HTTP
      name: somename
    defaultEndpoint: 127.0.0.1:8080
    captureMode: NONE
  egress:
  - port:
      number: 9080
      protocol: HTTP
      name: egresshttp
    hosts:
    - "prod-us1/*"
  - hosts:
    - "istio-system/*"
    - "./*"
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
`,
  WorkloadEntry: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-svc
  namespace: bookinfo
spec:
  serviceAccount: details-legacy
  address: 2.2.2.2
  labels:
    app: details-legacy
    instance-id: vm1
  ports:
    http: 9080
`,
  PeerAuthentication: `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: reviews
  namespace: bookinfo
spec:
  selector:
    matchLabels:
      app: reviews
  mtls:
    mode: STRICT
  portLevelMtls:
    8080:
      mode: DISABLE
`,
  AuthorizationPolicy: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: productpage-viewer
  namespace: bookinfo
spec:
  selector:
    matchLabels:
      app: productpage
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]
    - source:
        namespaces: [bookinfo]
        notIpBlocks: [203.0.113.0/24]
    to:
    - operation:
        methods: [GET]
        paths: ["/productpage*", "/static/*"]
        ports: ["9080"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
`,
  AuthorizationPolicyDenyAll: `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: bookinfo
spec: {}
`,
  AuthorizationPolicyCustom: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext-authz
spec:
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: bookinfo-gateway
  action: CUSTOM
  provider:
    name: my-ext-authz
  rules:
  - to:
    - operation:
        paths: ["/admin/*"]
`,
  RequestAuthentication: `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-example
  namespace: bookinfo
spec:
  selector:
    matchLabels:
      app: productpage
  jwtRules:
  - issuer: "testing@secure.istio.io"
    jwksUri: "https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json"
    audiences: [bookinfo]
    forwardOriginalToken: true
    fromHeaders:
    - name: x-jwt-assertion
      prefix: "Bearer "
    fromParams: [token]
    outputClaimToHeaders:
    - header: x-jwt-sub
      claim: sub
    timeout: 5s
`,
};

describe("schema: valid resources", () => {
  for (const [name, text] of Object.entries(VALID)) {
    it(`accepts ${name}`, () => {
      const r = validateResource(y(text));
      assertOk(r, name);
    });
  }

  it("covers every known kind with a valid example", () => {
    const kinds = new Set(Object.values(VALID).map((t) => (y(t) as { kind: string }).kind));
    for (const k of KNOWN_KINDS) assert.ok(kinds.has(k.kind), `no valid example for ${k.kind}`);
  });

  it("accepts every advertised apiVersion for Istio kinds", () => {
    for (const v of ["v1", "v1beta1", "v1alpha3"]) {
      const doc = y(VALID.VirtualService!) as Record<string, unknown>;
      doc.apiVersion = `networking.istio.io/${v}`;
      assertOk(validateResource(doc), v);
    }
    for (const v of ["v1", "v1beta1"]) {
      const doc = y(VALID.PeerAuthentication!) as Record<string, unknown>;
      doc.apiVersion = `security.istio.io/${v}`;
      assertOk(validateResource(doc), v);
    }
  });

  it("returns the parsed value with typed spec and passthrough metadata", () => {
    const r = validateResource(y(VALID.Pod!));
    assertOk(r);
    if (!r.ok) return;
    assert.equal(r.value.metadata.name, "reviews-v1-545db77b95-abcde");
    assert.ok(Array.isArray(r.value.metadata.ownerReferences));
    assert.equal((r.value.status as { podIP: string }).podIP, "10.244.1.12");

    const vs = validateResource(y(VALID.VirtualService!));
    assertOk(vs);
    if (!vs.ok) return;
    const spec = vs.value.spec as VirtualServiceSpec;
    assert.equal(spec.http?.[0]?.route?.[0]?.destination.subset, "v2");
  });

  it("accepts security policies without spec", () => {
    assertOk(validateResource({ apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", metadata: { name: "deny", namespace: "x" } }));
  });
});

// ---------------------------------------------------------------------------
// Invalid examples
// ---------------------------------------------------------------------------

describe("schema: invalid resources", () => {
  it("reports unknown fields in spec with exact path", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews, subset: v1 }
      wieght: 100
`),
    );
    assertError(r, "spec.http[0].route[0].wieght", 'unknown field "wieght"');
  });

  it("reports unknown top-level spec field", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  foo: bar
`),
    );
    assertError(r, "spec.foo", 'unknown field "foo"');
  });

  it("rejects weights that do not sum to 100", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews, subset: v1 }
      weight: 50
    - destination: { host: reviews, subset: v2 }
      weight: 40
`),
    );
    assertError(r, "spec.http[0].route", "total destination weight 90 != 100");
  });

  it("rejects weights outside 0..100", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews, subset: v1 }
      weight: 150
    - destination: { host: reviews, subset: v2 }
      weight: -50
`),
    );
    assertError(r, "spec.http[0].route[0].weight", /between 0 and 100/);
    assertError(r, "spec.http[0].route[1].weight", /between 0 and 100/);
  });

  it("rejects weight sums on tcp routes too", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: [db]
  tcp:
  - route:
    - destination: { host: db, subset: a }
      weight: 30
    - destination: { host: db, subset: b }
      weight: 30
`),
    );
    assertError(r, "spec.tcp[0].route", "total destination weight 60 != 100");
  });

  it("rejects malformed durations", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews }
    timeout: 10 seconds
    retries:
      attempts: 2
      perTryTimeout: 5
`),
    );
    assertError(r, "spec.http[0].timeout", /invalid duration "10 seconds"/);
    assertError(r, "spec.http[0].retries.perTryTimeout", "expected string, got number");
  });

  it("rejects a duration in DestinationRule outlier detection", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      interval: 1d
`),
    );
    assertError(r, "spec.trafficPolicy.outlierDetection.interval", /invalid duration "1d"/);
  });

  it("rejects regexes that do not compile", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - match:
    - uri:
        regex: "/api/(v1"
      headers:
        x-version:
          regex: "(?=lookahead)"
    route:
    - destination: { host: reviews }
`),
    );
    assertError(r, "spec.http[0].match[0].uri.regex", /invalid regex/);
    assertError(r, "spec.http[0].match[0].headers.x-version.regex", /not supported by RE2/);
  });

  it("rejects StringMatch with more than one of exact/prefix/regex", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: { exact: /a, prefix: /b }
    route:
    - destination: { host: reviews }
`),
    );
    assertError(r, "spec.http[0].match[0].uri.prefix", /only one of exact, prefix, regex/);
  });

  it("requires a DestinationRule host", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  subsets:
  - name: v1
    labels: { version: v1 }
`),
    );
    assertError(r, "spec.host", 'missing required field "host"');
  });

  it("requires a destination host in routes", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { subset: v1 }
`),
    );
    assertError(r, "spec.http[0].route[0].destination.host", 'missing required field "host"');
  });

  it("requires VirtualService hosts (non-delegate)", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: { host: reviews }
`),
    );
    assertError(r, "spec.hosts", "virtual service must have at least one host");
  });

  it("requires unique, non-empty subset names", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v1
    labels: { version: v2 }
  - labels: { version: v3 }
`),
    );
    assertError(r, "spec.subsets[2].name", 'missing required field "name"');
    // Uniqueness is a semantic check that runs once the structure is valid.
    const r2 = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets:
  - name: v1
  - name: v1
`),
    );
    assertError(r2, "spec.subsets[1].name", 'duplicate subset name "v1"');
  });

  it("rejects ports out of range", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext }
spec:
  hosts: [ext.example.com]
  ports:
  - number: 70000
    name: http
    protocol: HTTP
  resolution: DNS
`),
    );
    assertError(r, "spec.ports[0].number", "port number must be between 1 and 65535");

    const svc = validateResource(
      y(`
apiVersion: v1
kind: Service
metadata: { name: reviews }
spec:
  ports:
  - port: 0
`),
    );
    assertError(svc, "spec.ports[0].port", "port number must be between 1 and 65535");
  });

  it("requires ServiceEntry hosts and ports", () => {
    const r = validateResource({ apiVersion: "networking.istio.io/v1", kind: "ServiceEntry", metadata: { name: "x" }, spec: { resolution: "DNS" } });
    assertError(r, "spec.hosts", /at least one host/);
    assertError(r, "spec.ports", /at least one port/);
  });

  it("requires Gateway servers to have port and hosts", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  selector: { istio: ingressgateway }
  servers:
  - hosts: ["*"]
  - port: { number: 80, name: http, protocol: HTTP }
`),
    );
    assertError(r, "spec.servers[0].port", 'missing required field "port"');
    assertError(r, "spec.servers[1].hosts", 'missing required field "hosts"');
  });

  it("rejects unknown kind", () => {
    const r = validateResource({ apiVersion: "networking.istio.io/v1", kind: "VirtualServer", metadata: { name: "x" }, spec: {} });
    assertError(r, "kind", /unknown kind "VirtualServer"/);
  });

  it("rejects bad apiVersion", () => {
    const r1 = validateResource({ apiVersion: "networking.istio.io/v2", kind: "VirtualService", metadata: { name: "x" }, spec: {} });
    assertError(r1, "apiVersion", /does not serve kind "VirtualService"/);
    const r2 = validateResource({ apiVersion: "v1", kind: "DestinationRule", metadata: { name: "x" }, spec: {} });
    assertError(r2, "apiVersion", /does not serve kind "DestinationRule"/);
    const r3 = validateResource({ apiVersion: "security.istio.io/v1alpha3", kind: "PeerAuthentication", metadata: { name: "x" } });
    assertError(r3, "apiVersion");
    const r4 = validateResource({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "x" } });
    assertError(r4, "apiVersion", /unknown apiVersion/);
    const r5 = validateResource({ kind: "Service", metadata: { name: "x" } });
    assertError(r5, "apiVersion", 'missing required field "apiVersion"');
  });

  it("requires metadata.name", () => {
    assertError(validateResource({ apiVersion: "v1", kind: "Namespace", metadata: { labels: { a: "b" } } }), "metadata.name", 'missing required field "name"');
    assertError(validateResource({ apiVersion: "v1", kind: "Namespace" }), "metadata.name");
    assertError(validateResource({ apiVersion: "v1", kind: "Namespace", metadata: { name: "Bad_Name" } }), "metadata.name", /RFC 1123/);
  });

  it("reports type errors in metadata labels with bracketed keys", () => {
    const r = validateResource({ apiVersion: "v1", kind: "Namespace", metadata: { name: "ns", labels: { "app.kubernetes.io/version": 2 } } });
    assertError(r, 'metadata.labels["app.kubernetes.io/version"]', "expected string, got number");
  });

  it("rejects invalid enum values", () => {
    const r = validateResource(
      y(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec:
  mtls:
    mode: STRICTER
`),
    );
    assertError(r, "spec.mtls.mode", /invalid value "STRICTER"; expected one of UNSET, DISABLE, PERMISSIVE, STRICT/);
  });

  it("rejects fault injection with bad percentage and status", () => {
    const r = validateResource(
      y(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings }
spec:
  hosts: [ratings]
  http:
  - fault:
      abort:
        httpStatus: 700
        percentage: { value: 120 }
    route:
    - destination: { host: ratings }
`),
    );
    assertError(r, "spec.http[0].fault.abort.percentage.value", /between 0 and 100/);
  });

  it("rejects http routes without route/redirect/directResponse/delegate", () => {
    const r = validateResource({
      apiVersion: "networking.istio.io/v1",
      kind: "VirtualService",
      metadata: { name: "x" },
      spec: { hosts: ["x"], http: [{ timeout: "1s" }] },
    });
    assertError(r, "spec.http[0].route", /route, redirect, directResponse or delegate is required/);
  });

  it("rejects CUSTOM AuthorizationPolicy without provider", () => {
    const r = validateResource({
      apiVersion: "security.istio.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "x" },
      spec: { action: "CUSTOM", rules: [{}] },
    });
    assertError(r, "spec.provider", /must specify provider/);
  });

  it("rejects bad IPs in EndpointSlice and Endpoints", () => {
    const r = validateResource({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: "s" },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.0.0.1"] }, { addresses: ["fd00::1"] }],
    });
    assertError(r, "endpoints[1].addresses[0]", /not a valid IPv4 address/);
    const e = validateResource({
      apiVersion: "v1",
      kind: "Endpoints",
      metadata: { name: "e" },
      subsets: [{ addresses: [{ ip: "10.0.0.300" }], ports: [{ port: 80 }] }],
    });
    assertError(e, "subsets[0].addresses[0].ip", /not a valid IP address/);
  });

  it("requires names on multi-port Services", () => {
    const r = validateResource({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "svc" },
      spec: { ports: [{ port: 80, name: "http" }, { port: 81 }] },
    });
    assertError(r, "spec.ports[1].name", /port name is required/);
  });

  it("rejects non-object documents", () => {
    assertError(validateResource(null), "");
    assertError(validateResource("kind: Service"), "");
  });
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

describe("schema: helpers", () => {
  it("parses Go durations", () => {
    assert.equal(parseDurationMs("100ms"), 100);
    assert.equal(parseDurationMs("10s"), 10_000);
    assert.equal(parseDurationMs("1.5s"), 1500);
    assert.equal(parseDurationMs("1h30m"), 5_400_000);
    assert.equal(parseDurationMs("0"), 0);
    assert.equal(parseDurationMs("10"), undefined);
    assert.equal(parseDurationMs("1d"), undefined);
    assert.equal(parseDurationMs(""), undefined);
  });

  it("approximates RE2", () => {
    assert.equal(checkRE2("^/api/v[0-9]+$"), undefined);
    assert.equal(checkRE2("(?P<name>[a-z]+)"), undefined);
    assert.equal(checkRE2("(?i)^/Reviews"), undefined);
    assert.equal(checkRE2("^/(?i:reviews)/[0-9]+$"), undefined);
    assert.notEqual(checkRE2("(a)\\1"), undefined);
    assert.notEqual(checkRE2("(?<!x)y"), undefined);
    assert.notEqual(checkRE2("[a-"), undefined);
    assert.equal(checkRE2("[(?=]"), undefined);
  });

  it("formats paths", () => {
    assert.equal(formatPath(["spec", "http", 0, "route", 1, "weight"]), "spec.http[0].route[1].weight");
    assert.equal(formatPath(["labels", "app.kubernetes.io/name"], "metadata"), 'metadata.labels["app.kubernetes.io/name"]');
  });
});
