/** Model: protocol selection, node IDs, names, virtual host domains, registry derivation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { convertProtocol } from '../../src/model/protocol.js';
import { parseProxy, NodeIdError } from '../../src/model/proxy.js';
import { clusterName, parseClusterName, parseHostPort, inboundClusterName } from '../../workers/networking/names.js';
import { virtualHostDomains } from '../../workers/networking/route-builder.js';
import { parseDurationMs } from '../../src/model/duration.js';
import { ConfigStore } from '../../src/config/store.js';
import { buildKubeRegistry } from '../../src/model/registry/kube-registry.js';
import { parseManifests } from '../../src/sources/file/parse.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Service } from '../../src/model/service.js';

test('protocol from port name and appProtocol, as Istio selects it', () => {
  assert.equal(convertProtocol('http'), 'HTTP');
  assert.equal(convertProtocol('http-web'), 'HTTP');
  assert.equal(convertProtocol('HTTP2-x'), 'HTTP2');
  assert.equal(convertProtocol('grpc'), 'GRPC');
  assert.equal(convertProtocol('grpc-web'), 'GRPC-Web');
  assert.equal(convertProtocol('grpc-web-x'), 'GRPC-Web');
  assert.equal(convertProtocol('tcp-db'), 'TCP');
  assert.equal(convertProtocol('mongo'), 'Mongo');
  assert.equal(convertProtocol('web'), 'UnsupportedProtocol');
  assert.equal(convertProtocol(undefined), 'UnsupportedProtocol');
  assert.equal(convertProtocol('web', 'UDP'), 'UDP');
  assert.equal(convertProtocol('tcp', 'TCP', 'http'), 'HTTP', 'appProtocol wins over the name');
  assert.equal(convertProtocol('x', 'TCP', 'kubernetes.io/h2c'), 'HTTP2');
});

test('node IDs and Istio metadata', () => {
  const p = parseProxy('sidecar~10.1.2.3~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local', {
    LABELS: { app: 'reviews', version: 'v1' }, CLUSTER_ID: 'east', ISTIO_VERSION: '1.29.0', INTERCEPTION_MODE: 'NONE',
  });
  assert.equal(p.type, 'sidecar');
  assert.equal(p.ip, '10.1.2.3');
  assert.equal(p.namespace, 'bookinfo');
  assert.deepEqual(p.labels, { app: 'reviews', version: 'v1' });
  assert.equal(p.clusterId, 'east');
  assert.equal(p.generator, 'envoy');
  assert.equal(p.interceptionMode, 'NONE');
  const g = parseProxy('sidecar~10.0.0.1~client.default~default.svc.cluster.local', { GENERATOR: 'grpc', NAMESPACE: 'other' });
  assert.equal(g.generator, 'grpc');
  assert.equal(g.namespace, 'other', 'NAMESPACE metadata wins');
  assert.equal(parseProxy('router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local', {}).type, 'router');
  assert.throws(() => parseProxy('sidecar~1.2.3.4', {}), (e: unknown) => e instanceof NodeIdError && e.code === 'ERR_NODE_ID');
  assert.throws(() => parseProxy('waypoint~1.2.3.4~a.b~b.svc.cluster.local', {}), NodeIdError);
});

test('cluster and listener names', () => {
  assert.equal(clusterName('outbound', 80, '', 'reviews.default.svc.cluster.local'), 'outbound|80||reviews.default.svc.cluster.local');
  assert.deepEqual(parseClusterName('outbound|9080|v2|reviews.default.svc.cluster.local'), { direction: 'outbound', port: 9080, subset: 'v2', host: 'reviews.default.svc.cluster.local' });
  assert.equal(parseClusterName('PassthroughCluster'), undefined);
  assert.equal(inboundClusterName(8080), 'inbound|8080||');
  assert.deepEqual(parseHostPort('reviews.default.svc.cluster.local:9080'), { host: 'reviews.default.svc.cluster.local', port: 9080 });
  assert.equal(parseHostPort('reviews'), undefined);
});

test('virtual host domains as istiod 1.29: no port variants, the absolute FQDN, short names by namespace, ClusterIP last', () => {
  const svc = { hostname: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default', address: '10.96.0.7', ports: [], exportTo: ['*'], resolution: 'EDS', meshExternal: false, version: 'x' } as Service;
  // generateVirtualHostDomains with SidecarIgnorePort: GenerateAltVirtualHosts' absolute form, then the same-namespace forms.
  assert.deepEqual(virtualHostDomains(svc, 'default', 'cluster.local').domains, [
    'reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local.', 'reviews', 'reviews.default.svc', 'reviews.default', '10.96.0.7',
  ]);
  // From another namespace: `name.ns` then `name.ns.svc`, never the bare name.
  assert.deepEqual(virtualHostDomains(svc, 'other', 'cluster.local').domains, [
    'reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local.', 'reviews.default', 'reviews.default.svc', '10.96.0.7',
  ]);
  // A hostname outside the Kubernetes domain gets only its absolute form; an IPv6 address is bracketed.
  const ext = { ...svc, hostname: 'api.example.com', address: 'fd00::7' } as Service;
  assert.deepEqual(virtualHostDomains(ext, 'default', 'cluster.local'), { domains: ['api.example.com', 'api.example.com.', '[fd00::7]'], alt: ['api.example.com.'] });
});

test('Go-style durations', () => {
  assert.equal(parseDurationMs('100ms'), 100);
  assert.equal(parseDurationMs('1.5s'), 1500);
  assert.equal(parseDurationMs('1h2m'), 3_720_000);
  assert.throws(() => parseDurationMs('10'), /missing unit/);
  assert.throws(() => parseDurationMs('10 parsecs'), /invalid/);
});

test('the bundled Bookinfo mesh: services, endpoints from EndpointSlice and from Pods, readiness, locality', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/bookinfo');
  const store = new ConfigStore();
  for (const f of fs.readdirSync(root)) {
    const r = parseManifests(f, fs.readFileSync(path.join(root, f), 'utf8'));
    assert.deepEqual(r.errors.map((e) => e.message), [], `${f} is valid`);
    for (const d of r.docs) store.upsert(d.resource, f);
  }
  const reg = buildKubeRegistry(store, 'cluster.local', 'Kubernetes');
  assert.deepEqual(reg.services.map((s) => s.hostname), [
    'details.default.svc.cluster.local', 'mongodb.default.svc.cluster.local', 'productpage.default.svc.cluster.local',
    'ratings.default.svc.cluster.local', 'reviews.default.svc.cluster.local',
  ]);
  const mongo = reg.services.find((s) => s.name === 'mongodb')!;
  assert.equal(mongo.ports[0]!.protocol, 'Mongo');
  const reviews = reg.endpoints['reviews.default.svc.cluster.local']!;
  assert.deepEqual(reviews.map((e) => `${e.address}:${e.port} ${e.labels.version} ${e.locality.zone}`), [
    '10.244.1.12:9080 v1 us-east1-b', '10.244.2.12:9080 v2 us-east1-c', '10.244.2.13:9080 v3 us-east1-c',
  ]);
  assert.equal(reviews[0]!.serviceAccount, 'bookinfo-reviews');
  const details = reg.endpoints['details.default.svc.cluster.local']!;
  assert.deepEqual(details.map((e) => `${e.address}:${e.port}`), ['10.244.1.11:9080'], 'derived from the selected pod');
});
