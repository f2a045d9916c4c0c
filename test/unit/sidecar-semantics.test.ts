/**
 * Which services, VirtualServices and DestinationRules a proxy gets, on the concrete configurations where istiod's
 * rules (pilot/pkg/model/sidecar.go, push_context.go) used to differ from meshpilot's. Each test names the rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor, type ProxyScope } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { serviceFor, sidecarScope } from '../../workers/networking/sidecar-scope.js';
import { ctxOf } from '../helpers/context.js';

function sidecarIn(ctx: PushContext, ns: string, labels: Record<string, string> = { app: 'client' }): ProxyScope {
  return scopeFor(parseProxy(`sidecar~10.9.0.1~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: labels }), ctx);
}

function serviceEntry(name: string, ns: string, host: string, address: string, opts: { created?: string; exportTo?: string[]; port?: number } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
  namespace: ${ns}
${opts.created ? `  creationTimestamp: "${opts.created}"\n` : ''}spec:
  hosts: [${host}]
${opts.exportTo ? `  exportTo: ${JSON.stringify(opts.exportTo)}\n` : ''}  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${opts.port ?? 443}, name: https, protocol: TLS}]
  endpoints: [{address: ${address}}]
`;
}

/** The addresses of a cluster's load assignment for a proxy, or undefined when the proxy has no such cluster. */
function endpointsOf(ctx: PushContext, scope: ProxyScope, cluster: string): string[] | undefined {
  if (!planResources(ctx, scope, CLUSTER_TYPE).some((p) => p.name === cluster)) return undefined;
  const cla = buildResource(ctx, scope, ENDPOINT_TYPE, cluster) as any;
  return cla.endpoints.flatMap((l: any) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.address as string));
}

test('D7: a host in two namespaces is a service in each; a proxy uses its own namespace\'s, else the oldest (R3.2)', () => {
  const ctx = ctxOf({
    'a.yaml': serviceEntry('api', 'ns-a', 'api.example.com', '10.1.1.1', { created: '2026-01-01T00:00:00Z' }),
    'b.yaml': serviceEntry('api', 'ns-b', 'api.example.com', '10.2.2.2', { created: '2026-01-02T00:00:00Z' }),
  });
  const cluster = 'outbound|443||api.example.com';
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-a'), cluster), ['10.1.1.1']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-b'), cluster), ['10.2.2.2']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-c'), cluster), ['10.1.1.1'], 'ns-a\'s entry is the oldest');
  // By creation time, not by name: the same entries with ns-b's created first.
  const older = ctxOf({
    'a.yaml': serviceEntry('api', 'ns-a', 'api.example.com', '10.1.1.1', { created: '2026-01-02T00:00:00Z' }),
    'b.yaml': serviceEntry('api', 'ns-b', 'api.example.com', '10.2.2.2', { created: '2026-01-01T00:00:00Z' }),
  });
  assert.deepEqual(endpointsOf(older, sidecarIn(older, 'ns-c'), cluster), ['10.2.2.2']);
  // A gateway has no namespace preference (DefaultSidecarScopeForGateway): the oldest, even in ns-b.
  const gw = scopeFor(parseProxy('router~10.9.0.2~gw-0.ns-b~ns-b.svc.cluster.local', { NAMESPACE: 'ns-b' }), older);
  assert.equal(serviceFor(older, gw, 'api.example.com')?.namespace, 'ns-b');
  const gwA = scopeFor(parseProxy('router~10.9.0.2~gw-0.ns-a~ns-a.svc.cluster.local', { NAMESPACE: 'ns-a' }), older);
  assert.equal(serviceFor(older, gwA, 'api.example.com')?.namespace, 'ns-b');
});

test('D7: a host exported only to its own namespace there does not hide the same host exported elsewhere', () => {
  const ctx = ctxOf({
    'a.yaml': serviceEntry('api', 'ns-a', 'api.example.com', '10.1.1.1', { exportTo: ['.'] }),
    'b.yaml': serviceEntry('api', 'ns-b', 'api.example.com', '10.2.2.2', { exportTo: ['*'] }),
  });
  const cluster = 'outbound|443||api.example.com';
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-c'), cluster), ['10.2.2.2']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-a'), cluster), ['10.1.1.1']);
  assert.deepEqual(sidecarScope(ctx, sidecarIn(ctx, 'ns-c')).services.map((s) => s.namespace), ['ns-b']);
});

test('D7: a ServiceEntry naming a Kubernetes Service\'s host is that proxy namespace\'s choice; elsewhere the Kubernetes Service wins', () => {
  const kube = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  clusterIP: 10.96.0.9
  selector: {app: reviews}
  ports: [{name: tls, port: 443}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-0, namespace: bookinfo, labels: {app: reviews}}
status: {podIP: 10.244.0.9, phase: Running, conditions: [{type: Ready, status: "True"}]}
`;
  const host = 'reviews.bookinfo.svc.cluster.local';
  const ctx = ctxOf({
    'kube.yaml': kube,
    'x.yaml': serviceEntry('reviews-override', 'ns-x', host, '10.7.7.7', { created: '2020-01-01T00:00:00Z' }),
    // In the Service's own namespace the Kubernetes Service replaces the entry (HostnameAndNamespace).
    'squat.yaml': serviceEntry('squat', 'bookinfo', host, '10.6.6.6', { created: '2020-01-01T00:00:00Z' }),
  });
  assert.deepEqual(ctx.servicesFor(host).map((s) => `${s.namespace} ${s.registry ?? 'Kubernetes'}`), ['bookinfo Kubernetes', 'ns-x ServiceEntry']);
  const cluster = `outbound|443||${host}`;
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-x'), cluster), ['10.7.7.7']);
  // Older, but a ServiceEntry: the Kubernetes Service is preferred outside ns-x.
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'default'), cluster), ['10.244.0.9']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'bookinfo'), cluster), ['10.244.0.9']);
  // The cluster itself follows the choice too (STATIC entry vs EDS Service: both EDS here, so compare identities).
  assert.equal(serviceFor(ctx, sidecarIn(ctx, 'ns-x'), host)?.registry, 'ServiceEntry');
  assert.equal(serviceFor(ctx, sidecarIn(ctx, 'default'), host)?.registry, undefined);
});

test('D7: two ServiceEntries for one host in one namespace are one service, the oldest', () => {
  const ctx = ctxOf({
    'a.yaml': serviceEntry('zz-old', 'ns-a', 'api.example.com', '10.1.1.1', { created: '2026-01-01T00:00:00Z' }),
    'b.yaml': serviceEntry('aa-new', 'ns-a', 'api.example.com', '10.2.2.2', { created: '2026-01-02T00:00:00Z' }),
  });
  assert.equal(ctx.servicesFor('api.example.com').length, 1);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-a'), 'outbound|443||api.example.com'), ['10.1.1.1']);
});
