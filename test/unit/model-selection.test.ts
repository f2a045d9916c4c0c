/**
 * Which config a proxy gets where several could apply, as istiod 1.29 chooses (pilot/pkg/model/push_context.go,
 * sidecar.go, destination_rule.go; serviceregistry/serviceentry).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor, type ProxyScope } from '../../src/model/scope.js';
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
