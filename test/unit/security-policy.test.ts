/**
 * The pure security builders: PeerAuthentication mode resolution (mesh → namespace → workload → port), the
 * AuthorizationPolicy → RBAC translation, and the inbound filter chains per mTLS mode.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushContext, type ConfigEntry, type PushContextData } from '../../src/model/push-context.js';
import { mtlsModeForPort } from '../../workers/networking/security/peer-authn.js';
import { buildRbacHttpFilters, rulePolicy, tcpRule } from '../../workers/networking/security/authz-builder.js';
import { securedInboundChains, INBOUND_ISTIO_ALPN } from '../../workers/networking/security/inbound-mtls.js';
import { encodeAny } from '../../src/proto/encode.js';
import { LISTENER_TYPE } from '../../src/proto/type-urls.js';

function entry(namespace: string, name: string, spec: any, annotations: Record<string, string> = {}): ConfigEntry {
  return { namespace, name, spec, labels: {}, annotations, version: `${name}-v1` };
}

function ctxWith(p: Partial<PushContextData>): PushContext {
  return new PushContext({
    version: '1', mesh: { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10_000, trustDomain: 'cluster.local' },
    services: [], endpoints: {}, endpointVersions: {}, virtualServices: [], destinationRules: [], gateways: [], sidecars: [],
    peerAuthentications: [], authorizationPolicies: [], requestAuthentications: [], workloads: [], ...p,
  });
}

test('PeerAuthentication: PERMISSIVE by default; mesh, namespace, workload and port levels override in order; UNSET inherits', () => {
  assert.equal(mtlsModeForPort(ctxWith({}), 'default', {}, 8080), 'PERMISSIVE');
  const pas = [
    entry('istio-system', 'mesh', { mtls: { mode: 'STRICT' } }),
    entry('legacy', 'ns', { mtls: { mode: 'DISABLE' } }),
    entry('default', 'web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'UNSET' }, portLevelMtls: { 9000: { mode: 'PERMISSIVE' } } }),
  ];
  const ctx = ctxWith({ peerAuthentications: pas });
  assert.equal(mtlsModeForPort(ctx, 'default', { app: 'other' }, 8080), 'STRICT', 'mesh-wide');
  assert.equal(mtlsModeForPort(ctx, 'legacy', {}, 8080), 'DISABLE', 'namespace beats mesh');
  assert.equal(mtlsModeForPort(ctx, 'default', { app: 'web' }, 8080), 'STRICT', 'UNSET inherits the mesh mode');
  assert.equal(mtlsModeForPort(ctx, 'default', { app: 'web' }, 9000), 'PERMISSIVE', 'port level wins');
});

test('AuthorizationPolicy rules become RBAC principals and permissions with Istio\'s matching syntax', () => {
  const p = rulePolicy({
    from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep', '*/sa/admin'], notNamespaces: ['test'] } }, { source: { ipBlocks: ['10.0.0.0/8'] } }],
    to: [{ operation: { methods: ['GET'], paths: ['/api/*', '/health'], ports: ['8080'] } }],
    when: [{ key: 'request.auth.claims[group]', values: ['admins'] }, { key: 'request.headers[x-env]', notValues: ['prod'] }],
  });
  const principals = p.principals as any[];
  assert.equal(principals.length, 2, 'one principal per from entry (OR)');
  const first = principals[0].and_ids.ids;
  assert.deepEqual(first[0].and_ids.ids[0].or_ids.ids.map((x: any) => x.authenticated.principal_name), [
    { exact: 'spiffe://cluster.local/ns/default/sa/sleep' }, { suffix: '/sa/admin' },
  ]);
  assert.deepEqual(first[0].and_ids.ids[1], { not_id: { authenticated: { principal_name: { safe_regex: { regex: '.*/ns/test/.*' } } } } });
  const claimPath = [{ key: 'payload' }, { key: 'group' }];
  assert.deepEqual(first[1], { or_ids: { ids: [
    { metadata: { filter: 'envoy.filters.http.jwt_authn', path: claimPath, value: { string_match: { exact: 'admins' } } } },
    { metadata: { filter: 'envoy.filters.http.jwt_authn', path: claimPath, value: { list_match: { one_of: { string_match: { exact: 'admins' } } } } } },
  ] } }, 'claims go to the principal side, as a value or a list member of the verified JWT payload');
  assert.deepEqual(principals[1].and_ids.ids[0].and_ids.ids[0], { direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } });
  const perm = (p.permissions as any[])[0].and_rules.rules;
  assert.deepEqual(perm[0].and_rules.rules, [
    { destination_port: 8080 },
    { header: { name: ':method', string_match: { exact: 'GET' } } },
    { or_rules: { rules: [{ url_path: { path: { prefix: '/api/' } } }, { url_path: { path: { exact: '/health' } } }] } },
  ]);
  assert.deepEqual(perm[1], { not_rule: { header: { name: 'x-env', string_match: { exact: 'prod' } } } });
  assert.deepEqual(rulePolicy({}), { permissions: [{ any: true }], principals: [{ any: true }] }, 'an empty rule matches everything');
});

test('RBAC filters in istiod order (CUSTOM, DENY, AUDIT as LOG, ALLOW); dry-run goes to shadow rules; allow-nothing; bad CUSTOM denies', () => {
  const sel = { selector: { matchLabels: { app: 'web' } } };
  const ctx = ctxWith({
    authorizationPolicies: [
      entry('default', 'allow', { ...sel, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['default'] } }] }] }),
      entry('default', 'deny', { ...sel, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }),
      entry('default', 'audit', { ...sel, action: 'AUDIT', rules: [{}] }),
      entry('default', 'try', { ...sel, action: 'DENY', rules: [{}] }, { 'istio.io/dry-run': 'true' }),
      entry('default', 'ext', { ...sel, action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }),
      entry('default', 'elsewhere', { selector: { matchLabels: { app: 'db' } }, action: 'DENY', rules: [{}] }),
    ],
  });
  const { filters, skipped } = buildRbacHttpFilters(ctx, 'default', { app: 'web' }, 'envoy');
  const cfgs = filters.map((f) => f.typed_config as any);
  // CUSTOM comes first; its provider "opa" is not in the mesh config, so (as istiod) what it matches is denied.
  assert.deepEqual(cfgs.map((c) => c.rules?.action), ['DENY', 'DENY', 'LOG', 'ALLOW']);
  assert.deepEqual(Object.keys(cfgs[0].rules.policies), ['istio-ext-authz-ns[default]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action']);
  assert.deepEqual(Object.keys(cfgs[1].rules.policies), ['ns[default]-policy[deny]-rule[0]']);
  assert.deepEqual(Object.keys(cfgs[1].shadow_rules.policies), ['ns[default]-policy[try]-rule[0]']);
  assert.equal(cfgs[1].shadow_rules_stat_prefix, 'istio_dry_run_deny_');
  assert.match(skipped.join(), /ext: CUSTOM: extension provider "opa" not found/);
  // Every filter encodes strictly as Envoy's RBAC type.
  for (const f of filters) assert.ok(encodeAny(f.typed_config as any).length > 0);
  const nothing = buildRbacHttpFilters(ctxWith({ authorizationPolicies: [entry('default', 'none', { ...sel })] }), 'default', { app: 'web' }, 'envoy');
  assert.deepEqual((nothing.filters[0]!.typed_config as any).rules, { action: 'ALLOW', policies: {} }, 'ALLOW with no rules denies everything');
  const grpc = buildRbacHttpFilters(ctx, 'default', { app: 'web' }, 'grpc');
  assert.deepEqual(grpc.filters.map((f) => f.name), ['envoy.filters.http.rbac.DENY', 'envoy.filters.http.rbac']);
});

test('inbound chains: STRICT demands mTLS on the port (with or without SDS), PERMISSIVE splits Istio mTLS from plaintext, DISABLE stays plaintext', () => {
  const base = {
    name: '0.0.0.0_8080', filter_chain_match: { destination_port: { value: 8080 } },
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { http_filters: [{ name: 'envoy.filters.http.router' }] } }],
  };
  const strictCtx = ctxWith({
    peerAuthentications: [entry('default', 'strict', { mtls: { mode: 'STRICT' } })],
    authorizationPolicies: [entry('default', 'deny', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })],
  });
  const strict = securedInboundChains(strictCtx, 'default', {}, 8080, base, false);
  assert.equal(strict.mode, 'STRICT');
  assert.equal(strict.chains.length, 1);
  assert.deepEqual(strict.chains[0]!.filter_chain_match, { destination_port: { value: 8080 } });
  const tls = (strict.chains[0]!.transport_socket as any).typed_config;
  assert.deepEqual(tls.require_client_certificate, { value: true });
  assert.equal(tls.common_tls_context.tls_certificate_sds_secret_configs[0].name, 'default');
  assert.deepEqual(((strict.chains[0]!.filters as any)[0].typed_config.http_filters as any[]).map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.router']);

  const permissive = securedInboundChains(ctxWith({}), 'default', {}, 8080, base, true);
  assert.deepEqual(permissive.chains.map((c) => c.filter_chain_match), [
    { destination_port: { value: 8080 }, transport_protocol: 'tls', application_protocols: INBOUND_ISTIO_ALPN },
    { destination_port: { value: 8080 }, transport_protocol: 'raw_buffer' },
  ]);
  assert.ok(permissive.chains[0]!.transport_socket && !permissive.chains[1]!.transport_socket);
  assert.deepEqual(securedInboundChains(ctxWith({}), 'default', {}, 8080, base, false).chains, [base], 'no SDS: PERMISSIVE serves plaintext only');

  const off = securedInboundChains(ctxWith({ peerAuthentications: [entry('default', 'off', { mtls: { mode: 'DISABLE' } })] }), 'default', {}, 8080, base, true);
  assert.deepEqual(off.chains, [base]);
  // The built chains encode as parts of a Listener with Envoy's protos (no unknown fields).
  assert.ok(encodeAny({ '@type': LISTENER_TYPE, name: 'x', filter_chains: [...strict.chains, ...permissive.chains].map((c) => ({ ...c, filters: [] })) }).length > 0);
});

test('TCP view of rules: ALLOW rules with HTTP-only fields allow nothing, DENY rules drop those fields; network RBAC before tcp_proxy', () => {
  const httpAllow = { from: [{ source: { principals: ['cluster.local/ns/a/sa/b'] } }], to: [{ operation: { paths: ['/x'] } }] };
  assert.equal(tcpRule(httpAllow, 'ALLOW'), undefined);
  assert.deepEqual(tcpRule(httpAllow, 'DENY'), { from: [{ source: { principals: ['cluster.local/ns/a/sa/b'] } }], to: [{ operation: {} }], when: undefined });
  const ports = { to: [{ operation: { ports: ['5432'] } }] };
  assert.equal(tcpRule(ports, 'ALLOW'), ports, 'TCP-only rules are kept as they are');
  const ctx = ctxWith({ authorizationPolicies: [entry('default', 'db', { action: 'ALLOW', rules: [ports, httpAllow] })] });
  const { filters } = buildRbacHttpFilters(ctx, 'default', {}, 'envoy', true);
  assert.equal(filters.length, 1);
  assert.equal(filters[0]!.name, 'envoy.filters.network.rbac');
  assert.deepEqual(Object.keys((filters[0]!.typed_config as any).rules.policies), ['ns[default]-policy[db]-rule[0]']);
  assert.ok(encodeAny(filters[0]!.typed_config as any).length > 0);
  const tcpBase = { name: '0.0.0.0_5432', filter_chain_match: { destination_port: { value: 5432 } }, filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: {} }] };
  const chains = securedInboundChains(ctxWith({ peerAuthentications: [entry('default', 'off', { mtls: { mode: 'DISABLE' } })], authorizationPolicies: ctx.data.authorizationPolicies }), 'default', {}, 5432, tcpBase, true).chains;
  assert.deepEqual((chains[0]!.filters as any[]).map((f) => f.name), ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
});
