/**
 * A sidecar's outbound route configurations as istiod 1.29 builds them (pilot/pkg/networking/core/httproute.go
 * BuildSidecarOutboundHTTPRouteConfig and BuildSidecarOutboundVirtualHosts, route/route.go
 * BuildSidecarVirtualHostWrapper, separateVSHostsAndServices, buildSidecarVirtualHostsForVirtualService).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor, type ProxyScope } from '../../src/model/scope.js';
import { ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ctxOf } from '../helpers/context.js';
import { kubeServiceYaml } from '../helpers/istio-yaml.js';

function client(ctx: PushContext, ns = 'default'): ProxyScope {
  return scopeFor(parseProxy(`sidecar~10.9.0.1~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: { app: 'client' } }), ctx);
}

function service(name: string, ns: string, port: number, ip: string, portName = 'http'): string {
  return kubeServiceYaml(name, ns, `{name: ${portName}, port: ${port}}`, ip);
}

function vs(name: string, hosts: string[], dest: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: ${JSON.stringify(hosts)}
  http:
  - ${extra}route:
    - destination: {host: ${dest}}
`;
}

function routeConfig(ctx: PushContext, scope: ProxyScope, name: string): any {
  return buildResource(ctx, scope, ROUTE_TYPE, name);
}

const vhostNames = (rc: any): string[] => rc.virtual_hosts.map((v: any) => v.name);
const vhost = (rc: any, name: string): any => rc.virtual_hosts.find((v: any) => v.name === name);

const MESH = {
  'web.yaml': service('web', 'default', 80, '10.96.0.1'),
  'details.yaml': service('details', 'default', 9080, '10.96.0.2'),
};

test('route configuration fields: ignore_port_in_host_matching and a 1 MiB direct response limit; domains without ports', () => {
  const ctx = ctxOf(MESH);
  const rc = routeConfig(ctx, client(ctx), '9080');
  assert.equal(rc.ignore_port_in_host_matching, true);
  assert.deepEqual(rc.max_direct_response_body_size_bytes, { value: 1048576 });
  assert.deepEqual(rc.validate_clusters, { value: false });
  assert.deepEqual(vhost(rc, 'details.default.svc.cluster.local:9080').domains, [
    'details.default.svc.cluster.local', 'details.default.svc.cluster.local.', 'details', 'details.default.svc', 'details.default', '10.96.0.2',
  ]);
});

test('a VirtualService host that is no service gets a virtual host on the port of the service the VirtualService routes', () => {
  const ctx = ctxOf({ ...MESH, 'vs.yaml': vs('details', ['details', 'details.example.com'], 'details') });
  const rc = routeConfig(ctx, client(ctx), '9080');
  const alias = vhost(rc, 'details.example.com:9080');
  assert.ok(alias, vhostNames(rc).join());
  assert.deepEqual(alias.domains, ['details.example.com'], 'only the host: the port is ignored in host matching');
  assert.equal(alias.routes[0].route.cluster, 'outbound|9080||details.default.svc.cluster.local');
  assert.equal(alias.include_request_attempt_count, true);
  // istiod's "port 80 hack": route configuration 80 also gets the VirtualService's hosts, the service's own
  // hostname among them, since details has no port 80 (istio/istio#22621).
  const rc80 = routeConfig(ctx, client(ctx), '80');
  assert.deepEqual(vhostNames(rc80).filter((n) => n !== 'allow_any').sort(),
    ['details.default.svc.cluster.local:80', 'details.example.com:80', 'web.default.svc.cluster.local:80']);
});

test('a VirtualService that routes no service of the port: its hosts only on port 80', () => {
  const ctx = ctxOf({ ...MESH, 'vs.yaml': vs('ext', ['api.example.org'], 'web') });
  const rc80 = routeConfig(ctx, client(ctx), '80');
  const ext = vhost(rc80, 'api.example.org:80');
  assert.ok(ext, vhostNames(rc80).join());
  assert.deepEqual(ext.domains, ['api.example.org']);
  assert.equal(ext.routes[0].route.cluster, 'outbound|80||web.default.svc.cluster.local');
  assert.ok(!vhost(routeConfig(ctx, client(ctx), '9080'), 'api.example.org:9080'), 'not on another port');
});

test('a VirtualService whose routes all miss this proxy (sourceLabels) makes no virtual host', () => {
  const ctx = ctxOf({ ...MESH, 'vs.yaml': vs('ext', ['api.example.org'], 'web', 'match: [{sourceLabels: {app: other}}]\n    ') });
  assert.ok(!vhost(routeConfig(ctx, client(ctx), '80'), 'api.example.org:80'));
});

test('a wildcard VirtualService host that covers a service of the port is no host of its own', () => {
  const ctx = ctxOf({ ...MESH, 'vs.yaml': vs('wild', ['*.default.svc.cluster.local'], 'web') });
  const rc80 = routeConfig(ctx, client(ctx), '80');
  assert.ok(!vhost(rc80, '*.default.svc.cluster.local:80'), vhostNames(rc80).join());
  // ... and web (covered, port 80) follows it.
  assert.equal(vhost(rc80, 'web.default.svc.cluster.local:80').routes[0].route.cluster, 'outbound|80||web.default.svc.cluster.local');
});

test('domains are unique within a route configuration: the first virtual host keeps one, later ones lose it', () => {
  // An alias host equal to a short form of a service (`web.default`): the VirtualService host comes first and keeps
  // it; the service's virtual host loses that one domain (Envoy rejects a configuration with duplicates).
  const ctx = ctxOf({ ...MESH, 'vs.yaml': vs('dup', ['web.default', 'dup.example.com'], 'web') });
  const rc80 = routeConfig(ctx, client(ctx), '80');
  const all = rc80.virtual_hosts.flatMap((v: any) => v.domains as string[]);
  assert.equal(new Set(all).size, all.length, `unique: ${all.join(' ')}`);
  assert.deepEqual(vhost(rc80, 'web.default:80')?.domains, ['web.default'], vhostNames(rc80).join());
  assert.ok(!vhost(rc80, 'web.default.svc.cluster.local:80').domains.includes('web.default'));
});

test('a change to a VirtualService that only names other hosts changes the route configuration key', () => {
  const a = ctxOf({ ...MESH, 'vs.yaml': vs('ext', ['api.example.org'], 'web') });
  const b = ctxOf({ ...MESH, 'vs.yaml': vs('ext', ['api.example.org'], 'details') });
  const key = (ctx: PushContext): string => planResources(ctx, client(ctx), ROUTE_TYPE).find((p) => p.name === '80')!.key;
  assert.notEqual(key(a), key(b));
});

function gatewayScope(ctx: PushContext): ProxyScope {
  return scopeFor(parseProxy('router~10.9.0.100~ingress-0.istio-system~istio-system.svc.cluster.local',
    { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' } }), ctx);
}

const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
`;

function gatewayVs(name: string, hosts: string[], dest: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: ${JSON.stringify(hosts)}
  gateways: [istio-system/gw]
  http:
  - route:
    - destination: {host: ${dest}}
`;
}

test('gateway routes as istiod 1.29: one domain per host, the same VirtualService\'s hosts collapsed into one virtual host, sorted', () => {
  const ctx = ctxOf({
    ...MESH, 'gw.yaml': GATEWAY,
    'a.yaml': gatewayVs('a', ['b.example.com', 'aa.example.com', 'c.example.com'], 'web'),
    'z.yaml': gatewayVs('z', ['z.example.com'], 'details'),
  });
  const rc = routeConfig(ctx, gatewayScope(ctx), 'http.80');
  assert.equal(rc.ignore_port_in_host_matching, true);
  assert.deepEqual(rc.max_direct_response_body_size_bytes, { value: 1048576 });
  // collapseDuplicateRoutes: in istio's host order (longest first, then alphabetical) aa.example.com leads.
  assert.deepEqual(rc.virtual_hosts.map((v: any) => [v.name, v.domains]), [
    ['aa.example.com:80', ['aa.example.com', 'b.example.com', 'c.example.com']],
    ['z.example.com:80', ['z.example.com']],
  ]);
});

test('a gateway route configuration with nothing bound: blackhole:PORT without routes (Envoy answers 404)', () => {
  const ctx = ctxOf({ ...MESH, 'gw.yaml': GATEWAY });
  assert.deepEqual(routeConfig(ctx, gatewayScope(ctx), 'http.80').virtual_hosts, [{ name: 'blackhole:80', domains: ['*'] }]);
});

test('an inbound cluster takes the connection pool of its service\'s DestinationRule (istiod buildInboundClusterForPortOrUDS), the Sidecar\'s wins', () => {
  const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 7, connectTimeout: 3s}}
    outlierDetection: {consecutive5xxErrors: 1}
`;
  const sidecar = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  inboundConnectionPool: {tcp: {maxConnections: 9}}
`;
  const server = (ctx: PushContext): ProxyScope => scopeFor(parseProxy('sidecar~10.9.0.2~web-0.default~default.svc.cluster.local', { NAMESPACE: 'default', LABELS: { app: 'web' } }), ctx);
  const ctx = ctxOf({ ...MESH, 'dr.yaml': dr });
  const c = buildResource(ctx, server(ctx), 'type.googleapis.com/envoy.config.cluster.v3.Cluster', 'inbound|80||') as any;
  assert.equal(c.circuit_breakers.thresholds[0].max_connections.value, 7);
  assert.deepEqual(c.connect_timeout, { seconds: 3, nanos: 0 });
  assert.equal(c.outlier_detection, undefined, 'only the connection pool applies inbound');
  assert.deepEqual(c.cleanup_interval, { seconds: 9223372035 });
  // The plan key moves with the DestinationRule.
  const without = ctxOf(MESH);
  const key = (x: PushContext): string => planResources(x, server(x), 'type.googleapis.com/envoy.config.cluster.v3.Cluster').find((p) => p.name === 'inbound|80||')!.key;
  assert.notEqual(key(ctx), key(without));
  const both = ctxOf({ ...MESH, 'dr.yaml': dr, 'sc.yaml': sidecar });
  const s = buildResource(both, server(both), 'type.googleapis.com/envoy.config.cluster.v3.Cluster', 'inbound|80||') as any;
  assert.equal(s.circuit_breakers.thresholds[0].max_connections.value, 9);
});

test('TLS ServiceEntries without addresses share the captured 0.0.0.0 listener by SNI; other connections pass through', () => {
  const se = (name: string, host: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
`;
  const ctx = ctxOf({ ...MESH, 'a.yaml': se('a', 'a.example.com'), 'b.yaml': se('b', 'b.example.com') });
  const scope = scopeFor(parseProxy('sidecar~10.9.0.1~client-0.default~default.svc.cluster.local', { NAMESPACE: 'default', LABELS: { app: 'client' } }), ctx);
  const l = buildResource(ctx, scope, 'type.googleapis.com/envoy.config.listener.v3.Listener', '0.0.0.0_443') as any;
  assert.deepEqual(l.filter_chains.map((c: any) => [c.filter_chain_match.server_names, c.filters[0].typed_config.cluster]), [
    [['a.example.com'], 'outbound|443||a.example.com'],
    [['b.example.com'], 'outbound|443||b.example.com'],
  ], 'before, a.example.com took every connection to port 443');
  assert.equal(l.listener_filters[0].name, 'envoy.filters.listener.tls_inspector');
  assert.equal(l.default_filter_chain.filters[0].typed_config.cluster, 'PassthroughCluster');
});

test('a destination without a port takes the route configuration\'s port on sidecars, as istiod (its service lookup has only that port)', () => {
  const ctx = ctxOf({
    ...MESH,
    'other.yaml': service('other', 'default', 9999, '10.96.0.9'),
    'vs.yaml': vs('details', ['details'], 'other'),
    'gw.yaml': GATEWAY,
    'gvs.yaml': gatewayVs('g', ['g.example.com'], 'other'),
  });
  // istiod 1.29 (checked with bench/istiod.ts --diff): outbound|9080||other, a cluster that does not exist.
  assert.equal(vhost(routeConfig(ctx, client(ctx), '9080'), 'details.default.svc.cluster.local:9080').routes[0].route.cluster, 'outbound|9080||other.default.svc.cluster.local');
  // A gateway looks among every service: the only port.
  assert.equal(routeConfig(ctx, gatewayScope(ctx), 'http.80').virtual_hosts[0].routes[0].route.cluster, 'outbound|9999||other.default.svc.cluster.local');
});

test('traffic to a port no service declares passes virtualInbound under the AuthorizationPolicies too (istiod passthrough chains)', () => {
  const deny = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ns, namespace: default}
spec:
  action: DENY
  rules:
  - from:
    - source: {namespaces: [evil]}
`;
  const server = (ctx: PushContext): ProxyScope => scopeFor(parseProxy('sidecar~10.9.0.2~web-0.default~default.svc.cluster.local', { NAMESPACE: 'default', LABELS: { app: 'web' } }), ctx);
  const ctx = ctxOf({ ...MESH, 'deny.yaml': deny });
  const vi = buildResource(ctx, server(ctx), 'type.googleapis.com/envoy.config.listener.v3.Listener', 'virtualInbound') as any;
  const passthrough = vi.filter_chains.filter((c: any) => c.name === 'virtualInbound');
  // Plaintext proxy (no SDS): plaintext TCP, and the application's own TLS, each through network RBAC.
  assert.deepEqual(passthrough.map((c: any) => c.filter_chain_match), [{ transport_protocol: 'raw_buffer' }, { transport_protocol: 'tls' }]);
  for (const c of passthrough) {
    assert.deepEqual(c.filters.map((f: any) => f.name), ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy'],
      'before, the catch-all chain had no RBAC: a DENY policy did not reach undeclared ports');
    assert.equal(c.filters[0].typed_config.rules.action, 'DENY');
    assert.equal(c.filters[1].typed_config.cluster, 'InboundPassthroughCluster');
  }
  // Plaintext HTTP on an undeclared port: an HCM with the HTTP RBAC filter, to InboundPassthroughCluster.
  const http = vi.filter_chains.find((c: any) => c.name === 'virtualInbound-catchall-http');
  assert.deepEqual(http.filter_chain_match, { transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] });
  const hcm = http.filters[0].typed_config;
  assert.equal(hcm.http_filters[0].name, 'envoy.filters.http.rbac');
  assert.equal(hcm.route_config.virtual_hosts[0].routes[0].route.cluster, 'InboundPassthroughCluster');
  // The http_inspector skips the declared port (80's target) and 15006.
  const inspector = vi.listener_filters.find((f: any) => f.name === 'envoy.filters.listener.http_inspector');
  assert.deepEqual(inspector.filter_disabled.or_match.rules.map((r: any) => r.destination_port_range.start), [80, 15006]);
});
