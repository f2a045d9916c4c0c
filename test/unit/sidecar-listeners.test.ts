/**
 * Sidecar ingress listeners and port-specific egress listeners, as istiod builds them
 * (pilot/pkg/networking/core/listener_inbound.go buildInboundChainConfigs, listener.go
 * buildSidecarOutboundListeners, cluster.go buildInboundClustersFromSidecar, model/sidecar.go
 * GetEgressListenerForRDS), and the cache keys that must move with every Sidecar field they read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from '../../src/sources/file/parse.js';
import { PushContext } from '../../src/model/push-context.js';
import { parseProxy, type Proxy } from '../../src/model/proxy.js';
import { scopeFor, scopeKey } from '../../src/model/scope.js';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ctxOf } from '../helpers/context.js';


function svc(name: string, ports: string, ip: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  clusterIP: ${ip}
  selector: {app: ${name}}
  ports: ${ports}
`;
}

const SERVICES = [
  svc('reviews', '[{name: http, port: 9080}]', '10.0.0.1'),
  svc('ratings', '[{name: http, port: 9080}, {name: tcp-db, port: 5432}]', '10.0.0.2'),
  svc('details', '[{name: http, port: 9080}]', '10.0.0.3'),
  svc('mongo', '[{name: tcp, port: 27017}]', '10.0.0.4'),
].join('---\n');

const SIDECAR = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 9443, protocol: TCP, name: tcp}
    defaultEndpoint: unix:///var/run/app.sock
    captureMode: NONE
  - port: {number: 9090, protocol: HTTP, name: metrics}
    defaultEndpoint: 0.0.0.0:9091
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    hosts: ["./ratings.default.svc.cluster.local"]
  - port: {number: 27017, protocol: TCP, name: mongo}
    hosts: ["./mongo.default.svc.cluster.local"]
  - hosts: ["./details.default.svc.cluster.local"]
`;

const redirect = parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', { LABELS: { app: 'reviews' } });
const none = parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', { LABELS: { app: 'reviews' }, INTERCEPTION_MODE: 'NONE' });

function names(ctx: PushContext, proxy: Proxy, type: string): string[] {
  return planResources(ctx, scopeFor(proxy, ctx), type).map((p) => p.name);
}

function build(ctx: PushContext, proxy: Proxy, type: string, name: string): any {
  return buildResource(ctx, scopeFor(proxy, ctx), type, name);
}

test('ingress listeners replace the service ports: captureMode NONE binds BIND_PORT for real, the rest are virtualInbound chains', () => {
  const ctx = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR });
  const listeners = names(ctx, redirect, LISTENER_TYPE);
  // 10.1.0.7 is a global unicast address: istiod binds ingress listeners without `bind` to the instance IP.
  assert.ok(listeners.includes('10.1.0.7_9443'), listeners.join());
  const vi = build(ctx, redirect, LISTENER_TYPE, 'virtualInbound');
  const ports = vi.filter_chains.map((c: any) => c.filter_chain_match?.destination_port?.value).filter(Boolean);
  // PERMISSIVE without SDS: one plaintext chain per ingress port; 9443 is a listener of its own. (15006: istiod's
  // virtualInbound-blackhole chain for traffic to the listener itself.)
  assert.deepEqual(ports, [15006, 9080, 9090]);
  assert.equal(vi.filter_chains[1].name, '10.1.0.7_9080');
  const route = vi.filter_chains[1].filters[0].typed_config.route_config;
  assert.equal(route.virtual_hosts[0].routes[0].route.cluster, 'inbound|9080||');
  assert.equal(route.virtual_hosts[0].routes[0].decorator.operation, 'reviews.default:9080/*');

  const bound = build(ctx, redirect, LISTENER_TYPE, '10.1.0.7_9443');
  assert.deepEqual(bound.address, { socket_address: { address: '10.1.0.7', port_value: 9443 } });
  assert.equal(bound.traffic_direction, 'INBOUND');
  assert.equal(bound.bind_to_port, undefined, 'binds (the default)');
  assert.equal(bound.filter_chains[0].filters[0].typed_config.cluster, 'inbound|9443||');
  assert.equal(bound.listener_filters, undefined, 'no original_dst on a real listener; no TLS inspector without PERMISSIVE mTLS');
});

test('ingress clusters go to the defaultEndpoint: localhost and unix sockets STATIC, 0.0.0.0 the instance IP from 127.0.0.6', () => {
  const ctx = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR });
  const clusters = names(ctx, none, CLUSTER_TYPE).filter((n) => n.startsWith('inbound|'));
  assert.deepEqual(clusters, ['inbound|9080||', 'inbound|9090||', 'inbound|9443||'], 'in interception NONE too');
  const local = build(ctx, none, CLUSTER_TYPE, 'inbound|9080||');
  assert.equal(local.type, 'STATIC');
  assert.deepEqual(local.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { socket_address: { address: '127.0.0.1', port_value: 8080 } });
  assert.equal(local.upstream_bind_config, undefined);
  const uds = build(ctx, none, CLUSTER_TYPE, 'inbound|9443||');
  assert.deepEqual(uds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { pipe: { path: '/var/run/app.sock' } });
  const pod = build(ctx, none, CLUSTER_TYPE, 'inbound|9090||');
  assert.deepEqual(pod.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { socket_address: { address: '10.1.0.7', port_value: 9091 } });
  assert.deepEqual(pod.upstream_bind_config, { source_address: { address: '127.0.0.6', port_value: 0 } });
  // Without defaultEndpoint: the original destination.
  const bare = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR.replace('    defaultEndpoint: 127.0.0.1:8080\n', '') });
  const od = build(bare, none, CLUSTER_TYPE, 'inbound|9080||');
  assert.equal(od.type, 'ORIGINAL_DST');
  assert.equal(od.lb_policy, 'CLUSTER_PROVIDED');
});

test('interception NONE: every ingress listener binds; the loopback instance IP falls back to the wildcard', () => {
  const local = parseProxy('sidecar~127.0.0.1~reviews-0.default~default.svc.cluster.local', { LABELS: { app: 'reviews' }, INTERCEPTION_MODE: 'NONE' });
  const ctx = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR });
  const listeners = names(ctx, local, LISTENER_TYPE);
  assert.ok(!listeners.includes('virtualInbound'));
  for (const n of ['0.0.0.0_9080', '0.0.0.0_9090', '0.0.0.0_9443']) assert.ok(listeners.includes(n), `${n} in ${listeners.join()}`);
  const l = build(ctx, local, LISTENER_TYPE, '0.0.0.0_9080');
  assert.equal(l.filter_chains[0].filters[0].typed_config.stat_prefix, 'inbound_0.0.0.0_9080');
});

test('egress listeners with a port: only that port, only their hosts; the route holds only those hosts', () => {
  const ctx = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR });
  const outbound = names(ctx, none, LISTENER_TYPE).filter((n) => n.startsWith('127.0.0.1_'));
  // 9080 from the port-specific listener (not from details' catch-all port 9080: that listener is taken), 27017
  // for mongo; ratings' 5432 is not imported by any listener that builds it.
  assert.deepEqual(outbound, ['127.0.0.1_27017', '127.0.0.1_9080']);
  const mongo = build(ctx, none, LISTENER_TYPE, '127.0.0.1_27017');
  assert.equal(mongo.filter_chains.at(-1).filters[0].typed_config.cluster, 'outbound|27017||mongo.default.svc.cluster.local');
  const http = build(ctx, none, LISTENER_TYPE, '127.0.0.1_9080');
  assert.equal(http.filter_chains[0].filters[0].typed_config.rds.route_config_name, '9080');
  assert.deepEqual(names(ctx, none, ROUTE_TYPE), ['9080']);
  const rc = build(ctx, none, ROUTE_TYPE, '9080');
  assert.deepEqual(rc.virtual_hosts.map((v: any) => v.name), ['ratings.default.svc.cluster.local:9080', 'allow_any']);
  // Clusters: every imported service, with the ports its listeners import (details through the catch-all
  // listener; ratings through the 9080 one only, so 9080 only: sidecar.go serviceMatchingListenerPort).
  const clusters = names(ctx, none, CLUSTER_TYPE).filter((n) => n.startsWith('outbound|')).sort();
  assert.deepEqual(clusters, [
    'outbound|27017||mongo.default.svc.cluster.local',
    'outbound|9080||details.default.svc.cluster.local', 'outbound|9080||ratings.default.svc.cluster.local',
  ]);
});

test('REDIRECT: a port-specific egress listener with captureMode NONE binds 127.0.0.1, the others stay virtual', () => {
  const sc = SIDECAR.replace('  - port: {number: 27017, protocol: TCP, name: mongo}\n', '  - port: {number: 27017, protocol: TCP, name: mongo}\n    captureMode: NONE\n');
  const ctx = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': sc });
  const listeners = names(ctx, redirect, LISTENER_TYPE);
  assert.ok(listeners.includes('127.0.0.1_27017'), listeners.join());
  assert.ok(listeners.includes('0.0.0.0_9080'));
  assert.equal(build(ctx, redirect, LISTENER_TYPE, '127.0.0.1_27017').bind_to_port.value, true);
  assert.equal(build(ctx, redirect, LISTENER_TYPE, '0.0.0.0_9080').bind_to_port.value, false);
});

test('every Sidecar listener field moves the key of the resources it shapes', () => {
  const base = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR });
  const key = (ctx: PushContext, proxy: Proxy, type: string, name: string): string => {
    const k = planResources(ctx, scopeFor(proxy, ctx), type).find((p) => p.name === name)?.key;
    assert.ok(k, `${name} planned`);
    return k!;
  };
  const moves = (what: string, edit: (s: string) => string, proxy: Proxy, type: string, name: string, after = name): void => {
    const changed = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': edit(SIDECAR) });
    assert.notEqual(key(changed, proxy, type, after), key(base, proxy, type, name), `${what} must move the key of ${name}`);
  };
  moves('defaultEndpoint', (s) => s.replace('127.0.0.1:8080', '127.0.0.1:8081'), none, CLUSTER_TYPE, 'inbound|9080||');
  moves('ingress protocol', (s) => s.replace('{number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint', '{number: 9080, protocol: TCP, name: http}\n    defaultEndpoint'), redirect, LISTENER_TYPE, 'virtualInbound');
  moves('ingress defaultEndpoint (virtualInbound)', (s) => s.replace('127.0.0.1:8080', '127.0.0.1:8081'), redirect, LISTENER_TYPE, 'virtualInbound');
  moves('ingress captureMode', (s) => s.replace('    defaultEndpoint: 127.0.0.1:8080\n', '    defaultEndpoint: 127.0.0.1:8080\n    captureMode: NONE\n'), redirect, LISTENER_TYPE, 'virtualInbound');
  moves('ingress bind', (s) => s.replace('    captureMode: NONE\n', '    captureMode: NONE\n    bind: 127.0.0.1\n'), none, LISTENER_TYPE, '10.1.0.7_9443', '127.0.0.1_9443');
  moves('egress hosts (route)', (s) => s.replace('["./ratings.default.svc.cluster.local"]', '["./ratings.default.svc.cluster.local", "./reviews.default.svc.cluster.local"]'), none, ROUTE_TYPE, '9080');
  moves('egress captureMode (listener binds)', (s) => s.replace('name: http}\n    hosts', 'name: http}\n    captureMode: NONE\n    bind: 0.0.0.0\n    hosts'), redirect, LISTENER_TYPE, '0.0.0.0_9080');
  // Two pods with the same Sidecar and loopback IPs share one scope; a global unicast IP is part of the scope only
  // when an ingress listener binds it.
  const a = parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', { LABELS: { app: 'reviews' } });
  const b = parseProxy('sidecar~10.1.0.8~reviews-1.default~default.svc.cluster.local', { LABELS: { app: 'reviews' } });
  assert.notEqual(scopeKey(scopeFor(a, base)), scopeKey(scopeFor(b, base)));
  const bound = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': SIDECAR.replace(/defaultEndpoint: 0\.0\.0\.0:9091/, 'defaultEndpoint: 127.0.0.1:9091').replace(/(  - port: \{number: (\d+)[^\n]*\n)/g, '$1    bind: 0.0.0.0\n') });
  assert.equal(scopeKey(scopeFor(a, bound)), scopeKey(scopeFor(b, bound)));
});

test('schema: ingress bind and defaultEndpoint are checked as Istio validates them', () => {
  const bad = (sc: string, field: RegExp): void => {
    const parsed = parseManifests('sc.yaml', sc);
    assert.match(JSON.stringify(parsed.errors ?? []), field);
  };
  bad(SIDECAR.replace('127.0.0.1:8080', '10.0.0.1:8080'), /ingress\[0\]\.defaultEndpoint.*127\.0\.0\.1:<port>/);
  bad(SIDECAR.replace('127.0.0.1:8080', '127.0.0.1:http'), /ingress\[0\]\.defaultEndpoint/);
  bad(SIDECAR.replace('    captureMode: NONE\n', '    captureMode: NONE\n    bind: not-an-ip\n'), /ingress\[1\]\.bind/);
  const ok = parseManifests('sc.yaml', SIDECAR.replace('127.0.0.1:8080', '"[::1]:8080"'));
  assert.deepEqual(ok.errors ?? [], []);
});

test('connection pools: the ingress listener’s own, else inboundConnectionPool, on every inbound cluster (InboundConnectionPoolForPort)', () => {
  const pooled = SIDECAR
    .replace('  egress:\n', '  inboundConnectionPool: {tcp: {maxConnections: 7, connectTimeout: 2s}, http: {idleTimeout: 30s}}\n  egress:\n')
    .replace('    defaultEndpoint: unix:///var/run/app.sock\n', '    defaultEndpoint: unix:///var/run/app.sock\n    connectionPool: {tcp: {maxConnections: 3}}\n');
  const ctx = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': pooled });
  const own = build(ctx, none, CLUSTER_TYPE, 'inbound|9443||');
  assert.equal(own.circuit_breakers.thresholds[0].max_connections.value, 3);
  const shared = build(ctx, none, CLUSTER_TYPE, 'inbound|9080||');
  assert.equal(shared.circuit_breakers.thresholds[0].max_connections.value, 7);
  assert.deepEqual(shared.connect_timeout, { seconds: 2, nanos: 0 });
  assert.deepEqual(shared.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].common_http_protocol_options.idle_timeout, { seconds: 30, nanos: 0 });
  // Without ingress listeners the service ports' inbound clusters (REDIRECT) take inboundConnectionPool too.
  const noIngress = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  inboundConnectionPool: {tcp: {maxConnections: 9}}
`;
  const c2 = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': noIngress });
  assert.equal(build(c2, redirect, CLUSTER_TYPE, 'inbound|9080||').circuit_breakers.thresholds[0].max_connections.value, 9);
  const k = (c: PushContext): string | undefined => planResources(c, scopeFor(redirect, c), CLUSTER_TYPE).find((p) => p.name === 'inbound|9080||')?.key;
  const c3 = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': noIngress.replace('maxConnections: 9', 'maxConnections: 10') });
  assert.ok(k(c2) && k(c3));
  assert.notEqual(k(c2), k(c3), 'inboundConnectionPool moves the inbound cluster key');
  const c4 = ctxOf({ 'svc.yaml': SERVICES, 'sc.yaml': pooled.replace('maxConnections: 7', 'maxConnections: 8') });
  const k4 = (c: PushContext): string | undefined => planResources(c, scopeFor(none, c), CLUSTER_TYPE).find((p) => p.name === 'inbound|9080||')?.key;
  assert.notEqual(k4(ctx), k4(c4), 'and the key of ingress clusters that inherit it');
});
