/**
 * SidecarScope: which services (and so clusters, routes, listeners) a proxy receives, from the Sidecar resource in
 * effect (istio pilot/pkg/model/sidecar.go). Without a Sidecar every exported service is visible. With one, a service
 * is admitted when an egress host `NAMESPACE/DNSNAME` matches it (`*` and `.` for the namespace, `*` or `*.suffix`
 * for the name, `~` for none), plus the destinations of admitted VirtualServices (istiod adds those so routes
 * resolve). outboundTrafficPolicy REGISTRY_ONLY makes unknown destinations go to the BlackHoleCluster.
 */
import type { ConfigEntry, PushContext } from '../../src/model/push-context.js';
import { exportedTo, hostMatches } from '../../src/model/push-context.js';
import type { ProxyScope } from '../../src/model/scope.js';
import type { Service } from '../../src/model/service.js';

export type OutboundPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface SidecarScope {
  services: Service[];
  outboundPolicy: OutboundPolicy;
  /** The Sidecar resource's version ('' without one): part of every cache key that depends on the scope. */
  version: string;
  sidecar?: ConfigEntry;
}

interface EgressHost { namespace: string; host: string }

export function visibleTo(svc: Service, namespace: string): boolean {
  return exportedTo(svc.exportTo, svc.namespace, namespace);
}

function parseEgressHost(h: string, sidecarNs: string): EgressHost {
  const i = h.indexOf('/');
  const ns = i < 0 ? '*' : h.slice(0, i);
  return { namespace: ns === '.' ? sidecarNs : ns, host: i < 0 ? h : h.slice(i + 1) };
}

function egressAdmits(hosts: readonly EgressHost[], namespace: string, hostname: string): boolean {
  return hosts.some((e) => e.namespace !== '~' && (e.namespace === '*' || e.namespace === namespace) && hostMatches(e.host, hostname));
}

const memo = new WeakMap<PushContext, Map<string, SidecarScope>>();

export function sidecarScope(ctx: PushContext, scope: ProxyScope): SidecarScope {
  let perCtx = memo.get(ctx);
  if (!perCtx) memo.set(ctx, (perCtx = new Map()));
  const key = `${scope.namespace}|${scope.sidecar ?? ''}`;
  let s = perCtx.get(key);
  if (!s) perCtx.set(key, (s = compute(ctx, scope)));
  return s;
}

function compute(ctx: PushContext, scope: ProxyScope): SidecarScope {
  const visible = ctx.services.filter((svc) => visibleTo(svc, scope.namespace));
  const [sns, sname] = scope.sidecar ? scope.sidecar.split('/') as [string, string] : ['', ''];
  const sidecar = scope.sidecar ? ctx.sidecar(sns, sname) : undefined;
  // The mesh config's outboundTrafficPolicy is the default for proxies whose Sidecar (if any) leaves it unset.
  const meshPolicy: OutboundPolicy = ctx.data.mesh.outboundTrafficPolicy ?? 'ALLOW_ANY';
  if (!sidecar) return { services: visible, outboundPolicy: meshPolicy, version: '' };
  const outboundPolicy: OutboundPolicy = (sidecar.spec.outboundTrafficPolicy?.mode as OutboundPolicy | undefined) ?? meshPolicy;
  const egress = ((sidecar.spec.egress ?? []) as any[]).flatMap((l) => ((l.hosts ?? []) as string[]).map((h) => parseEgressHost(h, sidecar.namespace)));
  // A Sidecar without egress listeners imports everything visible (istiod's default egress listener `*/*`).
  if (!sidecar.spec.egress) return { services: visible, outboundPolicy, version: sidecar.version, sidecar };
  const admitted = new Set<string>();
  for (const svc of visible) if (egressAdmits(egress, svc.namespace, svc.hostname)) admitted.add(svc.hostname);
  // VirtualServices admitted by the egress hosts bring their destination services along.
  for (const vs of ctx.data.virtualServices) {
    if (!exportedTo(vs.spec.exportTo, vs.namespace, scope.namespace)) continue;
    const hosts = ((vs.spec.hosts ?? []) as string[]).map((h) => ctx.qualify(h, vs.namespace));
    if (!hosts.some((h) => egressAdmits(egress, vs.namespace, h) || [...admitted].some((a) => hostMatches(h, a)))) continue;
    for (const http of (vs.spec.http ?? []) as any[]) {
      for (const d of [...(http.route ?? []), ...(http.mirror ? [{ destination: http.mirror }] : []), ...(http.mirrors ?? [])] as any[]) {
        if (d?.destination?.host) admitted.add(ctx.qualify(d.destination.host, vs.namespace));
      }
    }
  }
  return { services: visible.filter((s) => admitted.has(s.hostname)), outboundPolicy, version: sidecar.version, sidecar };
}
