/**
 * MeshConfig: parsing and validation (errors name the field), istiod's defaults and precedence (flags, Sidecar,
 * DestinationRule over mesh), and that a mesh change moves every cache key (traffic-keys.test.ts pattern).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushContext, type MeshSettings } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { meshSettings, parseMeshConfig } from '../../src/model/mesh-config.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { sidecarScope } from '../../workers/networking/sidecar-scope.js';
import { effectiveLocalityLbSetting } from '../../workers/networking/locality-lb.js';
import { serviceYaml } from '../helpers/meshpilot.js';
import { ctxOf as contextOf } from '../helpers/context.js';

const BASE: MeshSettings = { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local' };

function mesh(yaml: string): MeshSettings {
  const r = parseMeshConfig(yaml);
  assert.ok(r.ok, `valid mesh config: ${JSON.stringify(!r.ok && r.errors)}`);
  return meshSettings(BASE, r.ok ? r.config : {});
}

function ctxOf(docs: string, m: MeshSettings = BASE): PushContext {
  return contextOf({ 't.yaml': docs }, m);
}

const SVCS = [
  serviceYaml({ name: 'reviews', port: 9080, clusterIP: '10.0.0.9', endpoints: [
    { ip: '10.1.0.1', port: 9080, labels: { 'topology.kubernetes.io/region': 'r1' } },
    { ip: '10.1.0.2', port: 9080, labels: { 'topology.kubernetes.io/region': 'r2' } },
  ] }),
  `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client, topology.kubernetes.io/region: r1}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.1.0.7}
`,
].join('---\n');

const client = parseProxy('sidecar~10.1.0.7~client.default~default.svc.cluster.local', {});

test('parse: empty is the default mesh; the istio ConfigMap itself is accepted; unknown fields are listed as ignored', () => {
  const empty = parseMeshConfig('');
  assert.ok(empty.ok);
  assert.deepEqual(meshSettings(BASE, empty.ok ? empty.config : {}), BASE);
  const cm = parseMeshConfig(`apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    connectTimeout: 2.5s
    accessLogFile: /dev/stdout
`);
  assert.ok(cm.ok);
  assert.equal(cm.ok && cm.config.outboundTrafficPolicy, 'REGISTRY_ONLY');
  assert.equal(cm.ok && cm.config.connectTimeoutMs, 2500);
  assert.deepEqual(cm.ok && cm.ignored, ['accessLogFile']);
});

test('parse: bad mesh configs are errors naming the field', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['outboundTrafficPolicy: {mode: DENY_ALL}', 'outboundTrafficPolicy.mode', /ALLOW_ANY, REGISTRY_ONLY/],
    ['connectTimeout: soon', 'connectTimeout', /invalid duration/],
    ['localityLbSetting: {distribute: [{from: "r1/*", to: {"r1/*": 70}}]}', 'localityLbSetting.distribute[0].to', /!= 100/],
    ['extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s.ns.svc.cluster.local, port: 70000}}]', 'extensionProviders[0].envoyExtAuthzHttp.port', /65535/],
    ['extensionProviders: [{name: a, envoyExtAuthzGrpc: {service: s, port: 9000, statusOnError: "999"}}]', 'extensionProviders[0].envoyExtAuthzGrpc.statusOnError', /999/],
    ['extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 80, bogus: 1}}]', 'extensionProviders[0].envoyExtAuthzHttp.bogus', /unknown field/],
    ['extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 80}}, {name: a, envoyExtAuthzHttp: {service: s, port: 81}}]', 'extensionProviders[1].name', /unique/],
    ['rootNamespace: Not_A_Namespace', 'rootNamespace', /DNS-1123/],
    ['outboundTrafficPolicy: [', '', /invalid YAML/],
  ];
  for (const [yaml, path, msg] of cases) {
    const r = parseMeshConfig(yaml);
    assert.ok(!r.ok, `${yaml} is rejected`);
    if (r.ok) continue;
    const e = r.errors.find((x) => x.path === path);
    assert.ok(e, `${yaml}: an error on ${path}, got ${JSON.stringify(r.errors)}`);
    assert.match(e!.message, msg);
  }
});

test('precedence: an explicit --trust-domain wins over the mesh config; the mesh wins over built-in defaults', () => {
  const r = parseMeshConfig('trustDomain: example.org\nrootNamespace: mesh-root\nconnectTimeout: 3s');
  assert.ok(r.ok);
  const cfg = r.ok ? r.config : {};
  assert.equal(meshSettings(BASE, cfg).trustDomain, 'example.org');
  assert.equal(meshSettings(BASE, cfg, { trustDomain: 'flag.example' }).trustDomain, 'flag.example');
  assert.equal(meshSettings(BASE, cfg).rootNamespace, 'mesh-root');
  assert.equal(meshSettings(BASE, cfg).connectTimeoutMs, 3000);
});

test('a mesh change moves every cache key, of every type; an unchanged mesh keeps them', () => {
  const a = ctxOf(SVCS);
  const b = ctxOf(SVCS, mesh('connectTimeout: 10s\nenableAutoMtls: false'));
  const same = ctxOf(SVCS, { ...BASE });
  for (const type of [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]) {
    const ka = planResources(a, scopeFor(client, a), type);
    const kb = planResources(b, scopeFor(client, b), type);
    const ks = planResources(same, scopeFor(client, same), type);
    assert.ok(ka.length > 0, `${type} planned`);
    assert.deepEqual(kb.map((p) => p.name), ka.map((p) => p.name));
    for (let i = 0; i < ka.length; i++) assert.notEqual(kb[i]!.key, ka[i]!.key, `${type} ${ka[i]!.name} moves with the mesh`);
    assert.deepEqual(ks, ka, `${type}: an equal mesh gives equal keys`);
  }
  // enableAutoMtls: false removes auto mTLS transport socket matches from clusters (istiod's cluster builder).
  const name = 'outbound|9080||reviews.default.svc.cluster.local';
  assert.ok((buildResource(a, scopeFor(client, a), CLUSTER_TYPE, name) as any).transport_socket_matches);
  assert.equal((buildResource(b, scopeFor(client, b), CLUSTER_TYPE, name) as any).transport_socket_matches, undefined);
});

test('outboundTrafficPolicy: the mesh default applies without a Sidecar and where the Sidecar leaves it unset', () => {
  const registryOnly = mesh('outboundTrafficPolicy: {mode: REGISTRY_ONLY}');
  const plain = ctxOf(SVCS, registryOnly);
  assert.equal(sidecarScope(plain, scopeFor(client, plain)).outboundPolicy, 'REGISTRY_ONLY');
  const vo = buildResource(plain, scopeFor(client, plain), LISTENER_TYPE, 'virtualOutbound') as any;
  assert.match(JSON.stringify(vo), /"cluster":"BlackHoleCluster"/);
  const sc = (mode: string): string => `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  ${mode ? `outboundTrafficPolicy: {mode: ${mode}}` : 'egress: [{hosts: ["*/*"]}]'}
`;
  const unset = ctxOf(SVCS + sc(''), registryOnly);
  assert.equal(sidecarScope(unset, scopeFor(client, unset)).outboundPolicy, 'REGISTRY_ONLY');
  const allow = ctxOf(SVCS + sc('ALLOW_ANY'), registryOnly);
  assert.equal(sidecarScope(allow, scopeFor(client, allow)).outboundPolicy, 'ALLOW_ANY', 'the Sidecar wins over the mesh');
  const def = ctxOf(SVCS);
  assert.match(JSON.stringify(buildResource(def, scopeFor(client, def), LISTENER_TYPE, 'virtualOutbound')), /"cluster":"PassthroughCluster"/);
});

test('localityLbSetting: istiod GetLocalityLbSetting precedence, and mesh distribute shapes EDS weights', () => {
  assert.deepEqual(effectiveLocalityLbSetting(undefined, undefined), { enabled: true });
  assert.equal(effectiveLocalityLbSetting({ enabled: false }, undefined), undefined);
  assert.deepEqual(effectiveLocalityLbSetting({ enabled: false }, { failover: [] }), { failover: [] }, 'a DestinationRule setting re-enables');
  assert.equal(effectiveLocalityLbSetting({ distribute: [{ from: '*' }] }, { enabled: false }), undefined);
  const dist = mesh('localityLbSetting: {distribute: [{from: "r1/*", to: {"r1/*": 80, "r2/*": 20}}]}');
  const ctx = ctxOf(SVCS, dist);
  assert.ok(ctx.localityAware, 'mesh distribute makes endpoints depend on the proxy locality');
  const cla = buildResource(ctx, scopeFor(client, ctx), ENDPOINT_TYPE, 'outbound|9080||reviews.default.svc.cluster.local') as any;
  const weights = Object.fromEntries(cla.endpoints.map((e: any) => [e.locality.region, e.load_balancing_weight.value]));
  assert.deepEqual(weights, { r1: 80, r2: 20 });
  const cluster = buildResource(ctx, scopeFor(client, ctx), CLUSTER_TYPE, 'outbound|9080||reviews.default.svc.cluster.local') as any;
  assert.ok(cluster.common_lb_config.locality_weighted_lb_config, 'locality weights need locality_weighted_lb_config');

  // Failover priorities come from outlier detection; a mesh `enabled: false` turns them off.
  const dr = `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}
`;
  const on = ctxOf(SVCS + dr);
  const off = ctxOf(SVCS + dr, mesh('localityLbSetting: {enabled: false}'));
  const prio = (c: PushContext): Record<string, number> => Object.fromEntries((buildResource(c, scopeFor(client, c), ENDPOINT_TYPE, 'outbound|9080||reviews.default.svc.cluster.local') as any)
    .endpoints.map((e: any) => [e.locality.region, e.priority ?? 0]));
  assert.deepEqual(prio(on), { r1: 0, r2: 1 });
  assert.deepEqual(prio(off), { r1: 0, r2: 0 });
});

test('defaultVirtualServiceExportTo / defaultDestinationRuleExportTo apply to configs without exportTo', () => {
  const docs = `${SVCS}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}
`;
  const other = parseProxy('sidecar~10.2.0.7~c.other~other.svc.cluster.local', {});
  const open = ctxOf(docs);
  const local = ctxOf(docs, mesh('defaultVirtualServiceExportTo: ["."]\ndefaultDestinationRuleExportTo: ["."]'));
  assert.ok(open.destinationRuleFor('reviews.default.svc.cluster.local', 'other'));
  assert.equal(local.destinationRuleFor('reviews.default.svc.cluster.local', 'other'), undefined);
  assert.ok(local.destinationRuleFor('reviews.default.svc.cluster.local', 'default'));
  const subsetClusters = (c: PushContext): string[] => planResources(c, scopeFor(other, c), CLUSTER_TYPE).map((p) => p.name).filter((n) => n.includes('|v1|'));
  assert.deepEqual(subsetClusters(open), ['outbound|9080|v1|reviews.default.svc.cluster.local']);
  assert.deepEqual(subsetClusters(local), []);
});

test('defaultServiceExportTo applies to Services and ServiceEntries without exportTo; an explicit exportTo wins', () => {
  const docs = `${SVCS}---
apiVersion: v1
kind: Service
metadata: {name: shared, namespace: default, annotations: {networking.istio.io/exportTo: "*"}}
spec: {clusterIP: 10.0.0.77, selector: {app: shared}, ports: [{name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
`;
  const other = parseProxy('sidecar~10.2.0.7~c.other~other.svc.cluster.local', {});
  const hosts = (c: PushContext, p = other): string[] => [...new Set(planResources(c, scopeFor(p, c), CLUSTER_TYPE)
    .map((x) => x.name).filter((n) => n.startsWith('outbound|')).map((n) => n.split('|')[3]))].sort();
  assert.deepEqual(hosts(ctxOf(docs)), ['api.example.com', 'reviews.default.svc.cluster.local', 'shared.default.svc.cluster.local']);
  const local = ctxOf(docs, mesh('defaultServiceExportTo: ["."]'));
  assert.deepEqual(hosts(local), ['shared.default.svc.cluster.local'], 'only the explicitly exported service is seen from another namespace');
  assert.deepEqual(hosts(local, client), ['api.example.com', 'reviews.default.svc.cluster.local', 'shared.default.svc.cluster.local'], 'its own namespace sees all');
});
