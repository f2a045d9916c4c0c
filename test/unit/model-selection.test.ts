/**
 * Which config a proxy gets where several could apply, as istiod 1.29 chooses (pilot/pkg/model/push_context.go,
 * sidecar.go, destination_rule.go; serviceregistry/serviceentry).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor, type ProxyScope } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ctxOf } from '../helpers/context.js';

function sidecarProxy(ctx: PushContext, ns: string, labels: Record<string, string>, ip = '10.9.0.1'): ProxyScope {
  return scopeFor(parseProxy(`sidecar~${ip}~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: labels }), ctx);
}

function sidecar(name: string, ns: string, opts: { created?: string; selector?: string } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ${name}
  namespace: ${ns}
${opts.created ? `  creationTimestamp: "${opts.created}"\n` : ''}spec:
${opts.selector !== undefined ? `  workloadSelector: ${opts.selector}\n` : ''}  egress: [{hosts: ["./*"]}]
`;
}

const T1 = '2026-01-01T00:00:00Z', T2 = '2026-01-02T00:00:00Z', T3 = '2026-01-03T00:00:00Z';

test('Sidecar: of several matching a workload, the oldest selecting one, not the first by name (initSidecarScopes)', () => {
  const ctx = ctxOf({
    // "a-" sorts first by name but is the newest.
    'a.yaml': sidecar('a-newest', 'shop', { created: T3, selector: '{labels: {app: cart}}' }),
    'b.yaml': sidecar('b-oldest', 'shop', { created: T1, selector: '{labels: {app: cart}}' }),
    'c.yaml': sidecar('c-ns-wide', 'shop', { created: T2 }),
  });
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'cart' }).sidecar, 'shop/b-oldest');
  // A workload no selector matches takes the namespace's selector-less Sidecar.
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'other' }).sidecar, 'shop/c-ns-wide');
});

test('Sidecar: of several selector-less ones in a namespace (or the root), the oldest', () => {
  const ctx = ctxOf({
    'a.yaml': sidecar('a-new', 'shop', { created: T2 }),
    'z.yaml': sidecar('z-old', 'shop', { created: T1 }),
    'r1.yaml': sidecar('a-root-new', 'istio-system', { created: T2 }),
    'r2.yaml': sidecar('z-root-old', 'istio-system', { created: T1 }),
    // A root Sidecar with a selector is never the mesh default.
    'r3.yaml': sidecar('root-selected', 'istio-system', { created: '2025-01-01T00:00:00Z', selector: '{labels: {app: x}}' }),
  });
  assert.equal(sidecarProxy(ctx, 'shop', {}).sidecar, 'shop/z-old');
  assert.equal(sidecarProxy(ctx, 'other', { app: 'x' }).sidecar, 'istio-system/z-root-old');
});

test('Sidecar: a workloadSelector without labels is a selector that matches every workload, ahead of a selector-less one', () => {
  for (const selector of ['{labels: {}}', '{}']) {
    const ctx = ctxOf({
      // Older selector-less Sidecar: a selector one still takes precedence (selectors first, then age).
      'plain.yaml': sidecar('plain', 'shop', { created: T1 }),
      'empty.yaml': sidecar('z-empty-selector', 'shop', { created: T2, selector }),
    });
    assert.equal(sidecarProxy(ctx, 'shop', { app: 'cart' }).sidecar, 'shop/z-empty-selector', selector);
    assert.equal(sidecarProxy(ctx, 'shop', {}).sidecar, 'shop/z-empty-selector', selector);
  }
  // Absent workloadSelector: namespace-wide, after the selecting ones.
  const ctx = ctxOf({
    'plain.yaml': sidecar('plain', 'shop', { created: T1 }),
    'sel.yaml': sidecar('sel', 'shop', { created: T2, selector: '{labels: {app: cart}}' }),
  });
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'cart' }).sidecar, 'shop/sel');
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'web' }).sidecar, 'shop/plain');
});

function serviceEntry(name: string, ns: string, created: string, ports: string, address: string, more = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${ns}, creationTimestamp: "${created}"}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: ${ports}
  endpoints: [{address: ${address}}]
${more}`;
}

/** The endpoint addresses of a cluster for a proxy, undefined when it has no such cluster. */
function endpointsOf(ctx: PushContext, scope: ProxyScope, cluster: string): string[] | undefined {
  if (!planResources(ctx, scope, CLUSTER_TYPE).some((p) => p.name === cluster)) return undefined;
  const cla = buildResource(ctx, scope, ENDPOINT_TYPE, cluster) as any;
  return cla.endpoints.flatMap((l: any) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.address as string)).sort();
}

test('ServiceEntry: two for one host in one namespace merge their ports and endpoints (SidecarScope.appendSidecarServices)', () => {
  const ctx = ctxOf({
    'old.yaml': serviceEntry('zz-old', 'ext', T1, '[{number: 443, name: https, protocol: TLS}]', '10.1.1.1'),
    'new.yaml': serviceEntry('aa-new', 'ext', T2, '[{number: 443, name: https, protocol: TLS}, {number: 8080, name: http-alt, protocol: HTTP}]', '10.2.2.2'),
  });
  const [svc, ...others] = ctx.servicesFor('api.example.com');
  assert.equal(others.length, 0);
  assert.deepEqual(svc!.ports.map((p) => `${p.port}/${p.name}`), ['443/https', '8080/http-alt'], 'the oldest entry ports, then the new ones of the younger');
  const proxy = sidecarProxy(ctx, 'ext', { app: 'client' });
  // Endpoints go to the clusters of the ports they were declared with (port names match).
  assert.deepEqual(endpointsOf(ctx, proxy, 'outbound|443||api.example.com'), ['10.1.1.1', '10.2.2.2']);
  assert.deepEqual(endpointsOf(ctx, proxy, 'outbound|8080||api.example.com'), ['10.2.2.2']);
  // Seen from another namespace too: one merged service.
  assert.deepEqual(endpointsOf(ctx, sidecarProxy(ctx, 'web', { app: 'client' }), 'outbound|8080||api.example.com'), ['10.2.2.2']);
});

test('ServiceEntry: a younger one for the same host that cannot merge (canMergeServices) adds no ports', () => {
  const ports2 = '[{number: 8080, name: http-alt, protocol: HTTP}]';
  for (const [what, more] of [['exportTo', '  exportTo: ["."]\n'], ['labels', ''], ['workloadSelector', '']] as const) {
    const younger = what === 'labels'
      ? serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2').replace('creationTimestamp', 'labels: {team: b}, creationTimestamp')
      : what === 'workloadSelector'
        ? serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2').replace('  endpoints: [{address: 10.2.2.2}]\n', '  workloadSelector: {labels: {app: vm}}\n')
        : serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2', more);
    const ctx = ctxOf({ 'old.yaml': serviceEntry('zz-old', 'ext', T1, '[{number: 443, name: https, protocol: TLS}]', '10.1.1.1'), 'new.yaml': younger });
    assert.deepEqual(ctx.servicesFor('api.example.com').map((s) => s.ports.map((p) => p.port)), [[443]], what);
    assert.equal(endpointsOf(ctx, sidecarProxy(ctx, 'ext', {}), 'outbound|8080||api.example.com'), undefined, what);
  }
  // A different resolution does not merge either.
  const dns = serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2').replace('resolution: STATIC', 'resolution: DNS');
  const ctx = ctxOf({ 'old.yaml': serviceEntry('zz-old', 'ext', T1, '[{number: 443, name: https, protocol: TLS}]', '10.1.1.1'), 'new.yaml': dns });
  assert.deepEqual(ctx.servicesFor('api.example.com').map((s) => s.ports.map((p) => p.port)), [[443]]);
});
