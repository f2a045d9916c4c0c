/**
 * Which security policies apply to a workload (istiod's PushContext.AuthnPolicies / AuthzPolicies lookups): root
 * namespace (mesh-wide) and the workload's namespace, by `selector.matchLabels`. Pure functions of the
 * PushContext data; the cache key of anything built from them is securityInputsKey().
 */
import { createHash } from 'node:crypto';
import type { ConfigEntry, PushContext } from '../../../src/model/push-context.js';
import { extAuthzInputsKey } from './ext-authz.js';

/** The label auto-mTLS and gRPC's STRICT-for-PERMISSIVE rule look at. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

export function selects(entry: ConfigEntry, labels: Record<string, string>): boolean {
  const match = (entry.spec?.selector?.matchLabels ?? {}) as Record<string, string>;
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

export function hasSelector(entry: ConfigEntry): boolean {
  return Object.keys(entry.spec?.selector?.matchLabels ?? {}).length > 0;
}

/** Policies of one kind in force for a workload: mesh-wide (root namespace), then its namespace; oldest first. */
export function policiesFor(ctx: PushContext, all: readonly ConfigEntry[], namespace: string, labels: Record<string, string>): ConfigEntry[] {
  const root = ctx.data.mesh.rootNamespace;
  return all.filter((p) => (p.namespace === root || p.namespace === namespace) && selects(p, labels));
}

/** Label keys some security policy selects on, plus the tlsMode label: all a workload's security config reads. */
export function securityLabelKeys(ctx: PushContext): string[] {
  const keys = new Set<string>([TLS_MODE_LABEL]);
  for (const list of [ctx.data.peerAuthentications, ctx.data.authorizationPolicies, ctx.data.requestAuthentications]) {
    for (const p of list) for (const k of Object.keys(p.spec?.selector?.matchLabels ?? {})) keys.add(k);
  }
  return [...keys].sort();
}

/** A digest of every input a workload's security config depends on (for resource cache keys). */
export function securityInputsKey(ctx: PushContext, namespace: string, labels: Record<string, string>): string {
  const parts: string[] = [ctx.data.mesh.trustDomain, namespace, JSON.stringify(labels), extAuthzInputsKey(ctx)];
  const root = ctx.data.mesh.rootNamespace;
  for (const list of [ctx.data.peerAuthentications, ctx.data.authorizationPolicies, ctx.data.requestAuthentications]) {
    for (const p of list) if (p.namespace === root || p.namespace === namespace) parts.push(`${p.namespace}/${p.name}@${p.version}`);
  }
  return createHash('sha1').update(parts.join('\n')).digest('base64url').slice(0, 16);
}
