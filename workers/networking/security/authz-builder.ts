/**
 * AuthorizationPolicy → Envoy RBAC (istiod's pilot/pkg/security/authz/builder and authz/model): one RBAC policy per
 * rule; a rule's `from` entries are OR'ed principals, each an AND of its fields; its `to` entries are OR'ed
 * permissions, each an AND of its fields; `when` conditions are AND'ed into the side their key belongs to. Istio's
 * value syntax: `*` any, `pre*` prefix, `*suf` suffix, else exact. Principals are SPIFFE IDs without `spiffe://`.
 *
 * Output order follows istiod: CUSTOM (a shadow RBAC filter marking the requests its rules match, then ext_authz,
 * see ext-authz.ts), DENY, then AUDIT (action LOG), then ALLOW. Dry-run policies (`istio.io/dry-run: "true"`) go to
 * shadow rules. A CUSTOM policy whose provider is missing or unusable denies what it matches, as istiod does.
 */
import type { ConfigEntry, PushContext } from '../../../src/model/push-context.js';
import type { ProtoObject } from '../../../src/proto/encode.js';
import { policiesFor } from './policy-select.js';
import {
  EXT_AUTHZ_HTTP_FILTER, EXT_AUTHZ_MATCH_PREFIX, EXT_AUTHZ_NETWORK_FILTER, EXT_AUTHZ_SHADOW_STAT_PREFIX, buildExtAuthz,
  type BuiltExtAuthz,
} from './ext-authz.js';

export const RBAC_HTTP_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const RBAC_NETWORK_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
export const RBAC_HTTP_FILTER = 'envoy.filters.http.rbac';
export const RBAC_NETWORK_FILTER = 'envoy.filters.network.rbac';
const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
/** Where jwt_authn leaves the verified payload (see jwt-builder.ts). */
const AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
const PAYLOAD = 'payload';

export type Flavor = 'envoy' | 'grpc';

function stringMatch(v: string, prefix = ''): ProtoObject {
  if (v === '*') return prefix ? { prefix } : { safe_regex: { regex: '.+' } };
  if (v.endsWith('*')) return { prefix: prefix + v.slice(0, -1) };
  if (v.startsWith('*')) return { suffix: v.slice(1) };
  return { exact: prefix + v };
}

function escapeRegex(s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

function cidr(v: string): ProtoObject {
  const [addr, len] = v.split('/');
  return { address_prefix: addr, prefix_len: len !== undefined ? Number(len) : (addr!.includes(':') ? 128 : 32) };
}

/** A JWT claim of the verified payload equals (or, for list claims such as groups or aud, contains) a value. */
function claimMatch(claim: string, v: string): ProtoObject {
  const path = [{ key: PAYLOAD }, { key: claim }];
  const m = stringMatch(v);
  return {
    or_ids: {
      ids: [
        { metadata: { filter: AUTHN_FILTER, path, value: { string_match: m } } },
        { metadata: { filter: AUTHN_FILTER, path, value: { list_match: { one_of: { string_match: m } } } } },
      ],
    },
  };
}

/** Istio's request principal `ISSUER/SUBJECT` (the subject is what follows the last slash). */
function requestPrincipal(v: string): ProtoObject {
  if (v === '*') return { metadata: { filter: AUTHN_FILTER, path: [{ key: PAYLOAD }, { key: 'iss' }], value: { string_match: { safe_regex: { regex: '.+' } } } } };
  const cut = v.lastIndexOf('/');
  if (cut < 0) return claimMatch('iss', v);
  const sub = v.slice(cut + 1);
  return { and_ids: { ids: [claimMatch('iss', v.slice(0, cut)), ...(sub === '*' ? [] : [claimMatch('sub', sub)])] } };
}

function authnMetadata(key: string, claim: string | undefined, v: string): ProtoObject {
  if (key === 'request.auth.principal') return requestPrincipal(v);
  if (key === 'request.auth.audiences') return claimMatch('aud', v);
  if (key === 'request.auth.presenter') return claimMatch('azp', v);
  return claimMatch(claim!, v);
}

// Principal (from) side.
const principalOf = {
  principals: (v: string): ProtoObject => ({ authenticated: { principal_name: stringMatch(v, 'spiffe://') } }),
  namespaces: (v: string): ProtoObject => ({ authenticated: { principal_name: v === '*' ? { prefix: 'spiffe://' } : { safe_regex: { regex: `.*/ns/${escapeRegex(v)}/.*` } } } }),
  serviceAccounts: (v: string): ProtoObject => {
    const [ns, sa] = v.includes('/') ? v.split('/') : ['', v];
    return { authenticated: { principal_name: { safe_regex: { regex: `.*/ns/${ns ? escapeRegex(ns!) : '[^/]+'}/sa/${escapeRegex(sa!)}` } } } };
  },
  ipBlocks: (v: string): ProtoObject => ({ direct_remote_ip: cidr(v) }),
  remoteIpBlocks: (v: string): ProtoObject => ({ remote_ip: cidr(v) }),
  requestPrincipals: (v: string): ProtoObject => authnMetadata('request.auth.principal', undefined, v),
};
type PrincipalField = keyof typeof principalOf;

// Permission (to) side.
const permissionOf = {
  hosts: (v: string): ProtoObject => ({ header: { name: ':authority', string_match: { ...stringMatch(v), ignore_case: true } } }),
  ports: (v: string): ProtoObject => ({ destination_port: Number(v) }),
  methods: (v: string): ProtoObject => ({ header: { name: ':method', string_match: stringMatch(v) } }),
  paths: (v: string): ProtoObject => ({ url_path: { path: stringMatch(v) } }),
};
type PermissionField = keyof typeof permissionOf;

const orIds = (ids: ProtoObject[]): ProtoObject => (ids.length === 1 ? ids[0]! : { or_ids: { ids } });
const orRules = (rules: ProtoObject[]): ProtoObject => (rules.length === 1 ? rules[0]! : { or_rules: { rules } });

function sourcePrincipal(src: Record<string, string[] | undefined>): ProtoObject {
  const ids: ProtoObject[] = [];
  for (const f of Object.keys(principalOf) as PrincipalField[]) {
    const yes = src[f];
    if (yes?.length) ids.push(orIds(yes.map(principalOf[f])));
    const no = src[`not${f[0]!.toUpperCase()}${f.slice(1)}`];
    if (no?.length) ids.push({ not_id: orIds(no.map(principalOf[f])) });
  }
  return ids.length === 0 ? { any: true } : { and_ids: { ids } };
}

function operationPermission(op: Record<string, string[] | undefined>): ProtoObject {
  const rules: ProtoObject[] = [];
  for (const f of Object.keys(permissionOf) as PermissionField[]) {
    const yes = op[f];
    if (yes?.length) rules.push(orRules(yes.map(permissionOf[f])));
    const no = op[`not${f[0]!.toUpperCase()}${f.slice(1)}`];
    if (no?.length) rules.push({ not_rule: orRules(no.map(permissionOf[f])) });
  }
  return rules.length === 0 ? { any: true } : { and_rules: { rules } };
}

/** A `when` condition on one side, or undefined when it belongs to the other side. */
function condition(c: { key: string; values?: string[]; notValues?: string[] }, side: 'principal' | 'permission'): ProtoObject | undefined {
  const k = c.key;
  let make: ((v: string) => ProtoObject) | undefined;
  let onPrincipal = true;
  const header = /^request\.headers\[(.+)\]$/.exec(k);
  const claim = /^request\.auth\.claims\[(.+)\]$/.exec(k);
  if (k === 'source.ip') make = principalOf.ipBlocks;
  else if (k === 'remote.ip') make = principalOf.remoteIpBlocks;
  else if (k === 'source.namespace') make = principalOf.namespaces;
  else if (k === 'source.principal') make = principalOf.principals;
  else if (k === 'request.auth.principal') make = principalOf.requestPrincipals;
  else if (k === 'request.auth.audiences') make = (v) => authnMetadata('request.auth.audiences', undefined, v);
  else if (k === 'request.auth.presenter') make = (v) => authnMetadata('request.auth.presenter', undefined, v);
  else if (claim) make = (v) => authnMetadata('request.auth.claims', claim[1], v);
  else {
    onPrincipal = false;
    if (header) make = (v) => ({ header: { name: header[1]!, string_match: stringMatch(v) } });
    else if (k === 'destination.port') make = permissionOf.ports;
    else if (k === 'destination.ip') make = (v) => ({ destination_ip: cidr(v) });
    else if (k === 'connection.sni') make = (v) => ({ requested_server_name: stringMatch(v) });
  }
  if (!make || (side === 'principal') !== onPrincipal) return undefined;
  const parts: ProtoObject[] = [];
  if (c.values?.length) parts.push(onPrincipal ? orIds(c.values.map(make)) : orRules(c.values.map(make)));
  if (c.notValues?.length) parts.push(onPrincipal ? { not_id: orIds(c.notValues.map(make)) } : { not_rule: orRules(c.notValues.map(make)) });
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : (onPrincipal ? { and_ids: { ids: parts } } : { and_rules: { rules: parts } });
}

function andWith(base: ProtoObject, extra: ProtoObject[], side: 'principal' | 'permission'): ProtoObject {
  if (extra.length === 0) return base;
  const list = 'any' in base ? extra : [base, ...extra];
  if (list.length === 1) return list[0]!;
  return side === 'principal' ? { and_ids: { ids: list } } : { and_rules: { rules: list } };
}

/** One RBAC policy for one rule. */
export function rulePolicy(rule: any): ProtoObject {
  const when = (rule?.when ?? []) as Array<{ key: string; values?: string[]; notValues?: string[] }>;
  const whenP = when.map((c) => condition(c, 'principal')).filter((x): x is ProtoObject => !!x);
  const whenR = when.map((c) => condition(c, 'permission')).filter((x): x is ProtoObject => !!x);
  const froms = ((rule?.from ?? []) as any[]).map((f) => sourcePrincipal(f.source ?? {}));
  const tos = ((rule?.to ?? []) as any[]).map((t) => operationPermission(t.operation ?? {}));
  const principals = (froms.length ? froms : [{ any: true }]).map((p) => andWith(p, whenP, 'principal'));
  const permissions = (tos.length ? tos : [{ any: true }]).map((p) => andWith(p, whenR, 'permission'));
  return { permissions, principals };
}

export interface RbacBuild {
  filters: ProtoObject[];
  /** Policies this builder did not turn into config, with why (CUSTOM needs an ext_authz provider). */
  skipped: string[];
}

const HTTP_ONLY_OPERATION = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];
const HTTP_ONLY_SOURCE = ['requestPrincipals', 'notRequestPrincipals'];

/**
 * A rule as it applies to TCP traffic (istiod's authz builder for network filters): HTTP-only fields cannot match
 * there, so an ALLOW rule that uses them allows nothing (undefined), while a DENY or AUDIT rule is applied without
 * them (denying more, never less).
 */
export function tcpRule(rule: any, action: string): any | undefined {
  const usesHttp = ((rule?.to ?? []) as any[]).some((t) => HTTP_ONLY_OPERATION.some((f) => t.operation?.[f]?.length))
    || ((rule?.from ?? []) as any[]).some((f) => HTTP_ONLY_SOURCE.some((k) => f.source?.[k]?.length))
    || ((rule?.when ?? []) as any[]).some((c) => String(c.key).startsWith('request.'));
  if (!usesHttp) return rule;
  if (action === 'ALLOW') return undefined;
  const strip = (o: Record<string, unknown>, keys: string[]): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => !keys.includes(k)));
  return {
    from: rule.from?.map((f: any) => ({ source: strip(f.source, HTTP_ONLY_SOURCE) })),
    to: rule.to?.map((t: any) => ({ operation: strip(t.operation, HTTP_ONLY_OPERATION) })),
    when: rule.when?.filter((c: any) => !String(c.key).startsWith('request.')),
  };
}

function policyName(flavor: Flavor, p: ConfigEntry, i: number): string {
  return flavor === 'grpc' ? `${p.namespace}-${p.name}-${i}` : `ns[${p.namespace}]-policy[${p.name}]-rule[${i}]`;
}

/** istiod's rbacPolicyMatchNever: what a CUSTOM policy without rules contributes (it never calls ext_authz). */
const MATCH_NEVER: ProtoObject = { permissions: [{ not_rule: { any: true } }], principals: [{ not_id: { any: true } }] };
const BAD_CUSTOM_SUFFIX = '-deny-due-to-bad-CUSTOM-action';

/**
 * Why the CUSTOM policies of one workload cannot be enforced through ext_authz (istiod's getExtAuthz: one provider
 * per workload, defined in the mesh config, usable), or the provider's built filters.
 */
function customProvider(ctx: PushContext, policies: readonly ConfigEntry[]): BuiltExtAuthz | { error: string } {
  const names = [...new Set(policies.map((p) => String(p.spec.provider?.name ?? '')))];
  if (names.length > 1) return { error: `only 1 provider can be used per workload, found multiple providers: ${names.join(', ')}` };
  const name = names[0]!;
  if (!name) return { error: 'no provider specified in the authorization policy' };
  const all = ctx.data.mesh.extensionProviders ?? [];
  const provider = all.find((p) => p.name === name);
  if (!provider) return { error: `extension provider "${name}" not found in the mesh config (available: ${all.map((p) => p.name).join(', ') || 'none'})` };
  return buildExtAuthz(ctx, provider, RBAC_HTTP_FILTER, RBAC_NETWORK_FILTER);
}

/**
 * CUSTOM policies → a shadow-only RBAC filter whose rules (names `istio-ext-authz-ns[…]-policy[…]-rule[i]`) mark
 * the requests they match in dynamic metadata, then the ext_authz filter enabled by that mark (istiod's builder with
 * IsCustomBuilder). An HTTP provider has nothing for TCP chains; a bad provider gives a DENY of what the rules match.
 */
function customFilters(ctx: PushContext, policies: readonly ConfigEntry[], tcp: boolean, skipped: string[]): ProtoObject[] {
  if (policies.length === 0) return [];
  const rules: Record<string, ProtoObject> = {};
  for (const p of policies) {
    const list = (p.spec.rules ?? []) as any[];
    if (list.length === 0) rules[`${EXT_AUTHZ_MATCH_PREFIX}-${policyName('envoy', p, 0)}`] = MATCH_NEVER;
    list.forEach((rule, i) => {
      const r = tcp ? tcpRule(rule, 'DENY') : rule;
      if (r) rules[`${EXT_AUTHZ_MATCH_PREFIX}-${policyName('envoy', p, i)}`] = rulePolicy(r);
    });
  }
  const rbacType = tcp ? RBAC_NETWORK_TYPE : RBAC_HTTP_TYPE;
  const rbacName = tcp ? RBAC_NETWORK_FILTER : RBAC_HTTP_FILTER;
  const tcpPrefix = tcp ? { stat_prefix: 'tcp.' } : {};
  const built = customProvider(ctx, policies);
  if ('error' in built) {
    skipped.push(`${policies.map((p) => `${p.namespace}/${p.name}`).join(', ')}: CUSTOM: ${built.error}; the requests the policy matches are denied`);
    const deny = Object.fromEntries(Object.entries(rules).map(([k, v]) => [k + BAD_CUSTOM_SUFFIX, v]));
    return [{ name: rbacName, typed_config: { '@type': rbacType, ...tcpPrefix, rules: { action: 'DENY', policies: deny } } }];
  }
  const ext = tcp ? built.tcp : built.http;
  if (!ext) return [];
  return [
    { name: rbacName, typed_config: { '@type': rbacType, ...tcpPrefix, shadow_rules: { action: 'DENY', policies: rules }, shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX } },
    { name: tcp ? EXT_AUTHZ_NETWORK_FILTER : EXT_AUTHZ_HTTP_FILTER, typed_config: ext },
  ];
}

/**
 * Every CUSTOM AuthorizationPolicy whose provider cannot be used, named with the provider and why (the server logs
 * these after each full push: workers cannot log, and a policy that silently denies is the worst kind of surprise).
 */
export function customAuthzProblems(ctx: PushContext): string[] {
  const out: string[] = [];
  for (const p of ctx.data.authorizationPolicies) {
    if (p.spec.action !== 'CUSTOM') continue;
    const r = customProvider(ctx, [p]);
    if ('error' in r) out.push(`AuthorizationPolicy ${p.namespace}/${p.name}: CUSTOM provider "${p.spec.provider?.name ?? ''}": ${r.error}; the requests it matches are denied`);
  }
  return out;
}

/**
 * The RBAC filters for a workload, in istiod's order; an empty list when no policy applies. HTTP filters by
 * default; `tcp` gives network filters (envoy.filters.network.rbac) over the TCP view of each rule.
 */
export function buildRbacHttpFilters(ctx: PushContext, namespace: string, labels: Record<string, string>, flavor: Flavor, tcp = false): RbacBuild {
  const policies = policiesFor(ctx, ctx.data.authorizationPolicies, namespace, labels);
  const skipped: string[] = [];
  const groups: Record<'DENY' | 'AUDIT' | 'ALLOW', { rules: Record<string, ProtoObject>; shadow: Record<string, ProtoObject>; any: boolean }> = {
    DENY: { rules: {}, shadow: {}, any: false }, AUDIT: { rules: {}, shadow: {}, any: false }, ALLOW: { rules: {}, shadow: {}, any: false },
  };
  const custom: ConfigEntry[] = [];
  for (const p of policies) {
    const action = (p.spec.action ?? 'ALLOW') as string;
    if (action === 'CUSTOM') {
      if (flavor === 'grpc') skipped.push(`${p.namespace}/${p.name}: CUSTOM is not supported by gRPC`);
      else if (p.annotations?.[DRY_RUN_ANNOTATION] === 'true') skipped.push(`${p.namespace}/${p.name}: dry-run CUSTOM is not supported`);
      else custom.push(p);
      continue;
    }
    if (flavor === 'grpc' && action === 'AUDIT') { skipped.push(`${p.namespace}/${p.name}: AUDIT is not supported by gRPC`); continue; }
    const dryRun = p.annotations?.[DRY_RUN_ANNOTATION] === 'true';
    if (flavor === 'grpc' && dryRun) { skipped.push(`${p.namespace}/${p.name}: dry-run is not supported by gRPC`); continue; }
    const g = groups[action as 'DENY' | 'AUDIT' | 'ALLOW'];
    if (!dryRun) g.any = true;
    ((p.spec.rules ?? []) as any[]).forEach((rule, i) => {
      const r = tcp ? tcpRule(rule, action) : rule;
      if (r) (dryRun ? g.shadow : g.rules)[policyName(flavor, p, i)] = rulePolicy(r);
    });
  }
  const filters: ProtoObject[] = customFilters(ctx, custom, tcp, skipped);
  const rbacAction = { DENY: 'DENY', AUDIT: 'LOG', ALLOW: 'ALLOW' } as const;
  for (const action of ['DENY', 'AUDIT', 'ALLOW'] as const) {
    const g = groups[action];
    const hasShadow = Object.keys(g.shadow).length > 0;
    // An ALLOW policy with no rules still matters: it allows nothing (istiod's allow-nothing). gRPC skips it, as grpcgen.
    const hasRules = Object.keys(g.rules).length > 0 || (g.any && action === 'ALLOW' && flavor === 'envoy');
    if (!hasRules && !hasShadow) continue;
    const cfg: ProtoObject = tcp ? { '@type': RBAC_NETWORK_TYPE, stat_prefix: 'tcp.' } : { '@type': RBAC_HTTP_TYPE };
    if (hasRules) cfg.rules = { action: rbacAction[action], policies: g.rules };
    if (hasShadow) {
      cfg.shadow_rules = { action: rbacAction[action], policies: g.shadow };
      cfg.shadow_rules_stat_prefix = `istio_dry_run_${action.toLowerCase()}_`;
    }
    const name = tcp ? RBAC_NETWORK_FILTER : flavor === 'grpc' && action === 'DENY' ? `${RBAC_HTTP_FILTER}.DENY` : RBAC_HTTP_FILTER;
    filters.push({ name, typed_config: cfg });
  }
  return { filters, skipped };
}
