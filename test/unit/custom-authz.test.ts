/**
 * AuthorizationPolicy CUSTOM → ext_authz, as istio pilot/pkg/security/authz/builder (extauthz.go, builder.go):
 * gRPC and HTTP providers on HTTP and TCP chains, the sidecar's inbound chains, one provider per workload, policies
 * without rules, and the bad-provider deny. Every config encodes strictly as Envoy's types (a real Envoy accepts
 * the HTTP provider's in test/e2e/security-custom-authz.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushContext, type ConfigEntry, type PushContextData } from '../../src/model/push-context.js';
import type { Service } from '../../src/model/service.js';
import { encodeAny } from '../../src/proto/encode.js';
import { buildRbacHttpFilters, customAuthzProblems } from '../../workers/networking/security/authz-builder.js';
import { securedInboundChains } from '../../workers/networking/security/inbound-mtls.js';
import { securityInputsKey } from '../../workers/networking/security/policy-select.js';
import type { ExtensionProvider } from '../../src/model/mesh-config.js';

function entry(name: string, spec: any, annotations: Record<string, string> = {}): ConfigEntry {
  return { namespace: 'foo', name, spec: { selector: { matchLabels: { app: 'web' } }, ...spec }, labels: {}, annotations, version: `${name}-v1` };
}

const AUTHZ_SVC: Service = {
  hostname: 'ext-authz.foo.svc.cluster.local', namespace: 'foo', name: 'ext-authz', ports: [{ name: 'grpc', port: 9000, protocol: 'GRPC' }],
  exportTo: ['*'], version: 's1',
} as unknown as Service;

const PROVIDERS: ExtensionProvider[] = [
  { name: 'grpc-authz', envoyExtAuthzGrpc: { service: 'foo/ext-authz.foo.svc.cluster.local', port: 9000, timeout: '0.5s', failOpen: true, statusOnError: '503' } },
  { name: 'http-authz', envoyExtAuthzHttp: { service: 'ext-authz.foo.svc.cluster.local', port: 8000, includeRequestHeadersInCheck: ['x-allow', 'x-pre-*'], headersToUpstreamOnAllow: ['*-user'] } },
  { name: 'missing-svc', envoyExtAuthzHttp: { service: 'bar/nope', port: 80 } },
];

function ctxWith(policies: ConfigEntry[], providers = PROVIDERS, services: Service[] = [AUTHZ_SVC]): PushContext {
  const data: PushContextData = {
    version: '1',
    mesh: { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10_000, trustDomain: 'cluster.local', extensionProviders: providers },
    services, endpoints: {}, endpointVersions: {}, virtualServices: [], destinationRules: [], gateways: [], sidecars: [],
    peerAuthentications: [], authorizationPolicies: policies, requestAuthentications: [], workloads: [],
  };
  return new PushContext(data);
}

const PATHS_RULE = { to: [{ operation: { paths: ['/admin/*'] } }] };

test('gRPC provider: shadow RBAC + HTTP ext_authz with grpc_service, and on TCP chains the network pair', () => {
  const ctx = ctxWith([entry('custom', { action: 'CUSTOM', provider: { name: 'grpc-authz' }, rules: [PATHS_RULE] }), entry('deny', { action: 'DENY', rules: [{}] })]);
  const http = buildRbacHttpFilters(ctx, 'foo', { app: 'web' }, 'envoy');
  assert.deepEqual(http.filters.map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.ext_authz', 'envoy.filters.http.rbac']);
  const [shadow, ext] = http.filters.map((f) => f.typed_config as any);
  assert.equal(shadow.rules, undefined);
  assert.deepEqual(shadow.shadow_rules.action, 'DENY');
  assert.deepEqual(shadow.shadow_rules.policies['istio-ext-authz-ns[foo]-policy[custom]-rule[0]'].permissions,
    [{ and_rules: { rules: [{ url_path: { path: { prefix: '/admin/' } } }] } }]);
  assert.deepEqual(ext.grpc_service, {
    envoy_grpc: { cluster_name: 'outbound|9000||ext-authz.foo.svc.cluster.local', authority: 'outbound_.9000_._.ext-authz.foo.svc.cluster.local' },
    timeout: { seconds: 0, nanos: 500_000_000 },
  });
  assert.equal(ext.failure_mode_allow, true);
  assert.deepEqual(ext.status_on_error, { code: 503 });
  assert.deepEqual(ext.filter_enabled_metadata, {
    filter: 'envoy.filters.http.rbac', path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }], value: { string_match: { prefix: 'istio-ext-authz' } },
  });
  const tcp = buildRbacHttpFilters(ctx, 'foo', { app: 'web' }, 'envoy', true);
  assert.deepEqual(tcp.filters.map((f) => f.name), ['envoy.filters.network.rbac', 'envoy.filters.network.ext_authz', 'envoy.filters.network.rbac']);
  const [tshadow, text] = tcp.filters.map((f) => f.typed_config as any);
  // On TCP the CUSTOM rule is applied as a DENY rule would be: the HTTP-only paths are dropped (istiod's TCP view).
  // So every connection is checked (istiod testdata action-custom-HTTP-for-TCP-filter).
  assert.deepEqual(tshadow.shadow_rules.policies['istio-ext-authz-ns[foo]-policy[custom]-rule[0]'].permissions, [{ any: true }]);
  assert.equal(tshadow.stat_prefix, 'tcp.');
  assert.equal(text.stat_prefix, 'tcp.');
  assert.equal(text.filter_enabled_metadata.filter, 'envoy.filters.network.rbac');
  for (const f of [...http.filters, ...tcp.filters]) assert.ok(encodeAny(f.typed_config as any).length > 0, `${f.name} encodes`);
});

test('HTTP provider: http_service with headers; nothing on TCP chains (istiod ignores HTTP providers there)', () => {
  const ctx = ctxWith([entry('custom', { action: 'CUSTOM', provider: { name: 'http-authz' }, rules: [PATHS_RULE] })]);
  const ext = buildRbacHttpFilters(ctx, 'foo', { app: 'web' }, 'envoy').filters[1]!.typed_config as any;
  assert.deepEqual(ext.http_service.server_uri, { uri: 'http://ext-authz.foo.svc.cluster.local', cluster: 'outbound|8000||ext-authz.foo.svc.cluster.local', timeout: { seconds: 600, nanos: 0 } });
  assert.deepEqual(ext.http_service.authorization_request.allowed_headers.patterns, [{ exact: 'x-allow', ignore_case: true }, { prefix: 'x-pre-', ignore_case: true }]);
  assert.deepEqual(ext.http_service.authorization_response.allowed_upstream_headers.patterns, [{ suffix: '-user', ignore_case: true }]);
  assert.ok(encodeAny(ext).length > 0);
  assert.deepEqual(buildRbacHttpFilters(ctx, 'foo', { app: 'web' }, 'envoy', true).filters, []);
});

test('bad CUSTOM: missing provider, unresolvable service, several providers on one workload → DENY of what the rules match', () => {
  const cases: Array<[ConfigEntry[], RegExp]> = [
    [[entry('a', { action: 'CUSTOM', provider: { name: 'nope' }, rules: [PATHS_RULE] })], /provider "nope" not found in the mesh config \(available: grpc-authz, http-authz, missing-svc\)/],
    [[entry('a', { action: 'CUSTOM', provider: { name: 'missing-svc' }, rules: [PATHS_RULE] })], /missing-svc: could not find service nope in namespace bar/],
    [[entry('a', { action: 'CUSTOM', provider: { name: 'grpc-authz' }, rules: [PATHS_RULE] }), entry('b', { action: 'CUSTOM', provider: { name: 'http-authz' }, rules: [PATHS_RULE] })],
      /only 1 provider can be used per workload, found multiple providers: grpc-authz, http-authz/],
  ];
  for (const [policies, msg] of cases) {
    const r = buildRbacHttpFilters(ctxWith(policies), 'foo', { app: 'web' }, 'envoy');
    assert.equal(r.filters.length, 1);
    const cfg = r.filters[0]!.typed_config as any;
    assert.equal(cfg.rules.action, 'DENY');
    assert.ok(Object.keys(cfg.rules.policies).every((k) => k.startsWith('istio-ext-authz-') && k.endsWith('-deny-due-to-bad-CUSTOM-action')));
    assert.match(r.skipped.join('\n'), msg);
  }
  assert.deepEqual(customAuthzProblems(ctxWith([entry('a', { action: 'CUSTOM', provider: { name: 'nope' }, rules: [] }), entry('ok', { action: 'CUSTOM', provider: { name: 'http-authz' } })])),
    ['AuthorizationPolicy foo/a: CUSTOM provider "nope": extension provider "nope" not found in the mesh config (available: grpc-authz, http-authz, missing-svc); the requests it matches are denied']);
});

test('a CUSTOM policy without rules never triggers ext_authz; dry-run CUSTOM and proxyless gRPC are reported, not built', () => {
  const none = buildRbacHttpFilters(ctxWith([entry('a', { action: 'CUSTOM', provider: { name: 'http-authz' } })]), 'foo', { app: 'web' }, 'envoy');
  assert.deepEqual((none.filters[0]!.typed_config as any).shadow_rules.policies['istio-ext-authz-ns[foo]-policy[a]-rule[0]'],
    { permissions: [{ not_rule: { any: true } }], principals: [{ not_id: { any: true } }] });
  const dry = buildRbacHttpFilters(ctxWith([entry('a', { action: 'CUSTOM', provider: { name: 'http-authz' }, rules: [{}] }, { 'istio.io/dry-run': 'true' })]), 'foo', { app: 'web' }, 'envoy');
  assert.deepEqual(dry.filters, []);
  assert.match(dry.skipped.join(), /dry-run CUSTOM/);
  const grpc = buildRbacHttpFilters(ctxWith([entry('a', { action: 'CUSTOM', provider: { name: 'http-authz' }, rules: [{}] })]), 'foo', { app: 'web' }, 'grpc');
  assert.deepEqual(grpc.filters, []);
  assert.match(grpc.skipped.join(), /CUSTOM is not supported by gRPC/);
});

test('sidecar inbound chains get the CUSTOM filters before the other RBAC filters; the provider service is in the security key', () => {
  const ctx = ctxWith([entry('custom', { action: 'CUSTOM', provider: { name: 'grpc-authz' }, rules: [PATHS_RULE] })]);
  const base = {
    filter_chain_match: { destination_port: 8080 },
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { http_filters: [{ name: 'envoy.filters.http.router' }] } }],
  };
  const { chains } = securedInboundChains(ctx, 'foo', { app: 'web' }, 8080, base, false);
  const names = (chains[0]!.filters as any[])[0].typed_config.http_filters.map((f: any) => f.name);
  assert.deepEqual(names, ['envoy.filters.http.rbac', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
  const without = ctxWith(ctx.data.authorizationPolicies, PROVIDERS, []);
  assert.notEqual(securityInputsKey(ctx, 'foo', { app: 'web' }), securityInputsKey(without, 'foo', { app: 'web' }),
    'the provider service appearing or going away changes the listener keys');
});
