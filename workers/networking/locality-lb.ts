/**
 * Locality load balancing on EDS, as istio pilot/pkg/networking/core/loadbalancer/loadbalancer.go
 * (ApplyLocalityLoadBalancer): with `localityLbSetting.distribute`, the first rule whose `from` matches the proxy
 * sets locality weights (localities matched by no `to` get nothing); otherwise, when failover is enabled (the
 * cluster has outlier detection, mesh localityLbSetting on by default), priorities by proximity — 0 same subzone,
 * 1 same zone, 2 same region, 3 other regions (4 when a `failover` rule for the proxy's region names another
 * region) — compacted to consecutive integers.
 */
import type { Locality } from '../../src/model/service.js';
import { parseLocality } from '../../src/model/service.js';

export interface LocalityGroup { locality: Locality; weight: number; priority: number; size: number }

/** `region/zone/subzone` pattern with `*` segments (istio util.LocalityMatch). */
export function localityMatch(l: Locality, pattern: string): boolean {
  const [r = '*', z = '*', s = '*'] = pattern.split('/');
  if (r !== '*' && r !== l.region) return false;
  if (z !== '*' && z !== l.zone) return false;
  return s === '*' || s === l.subzone;
}

function lbPriority(proxy: Locality, ep: Locality): number {
  if (proxy.region !== ep.region) return 3;
  if (proxy.zone !== ep.zone) return 2;
  if (proxy.subzone !== ep.subzone) return 1;
  return 0;
}

/**
 * The locality LB setting in force for a cluster (istio loadbalancer.GetLocalityLbSetting): on unless the mesh
 * setting disables it, a DestinationRule's setting re-enables (or, with `enabled: false`, disables) it and then
 * replaces the mesh's entirely; undefined when off. `mesh` undefined = istiod's default `{enabled: true}`.
 */
export function effectiveLocalityLbSetting(mesh: any, destinationRule: any): any {
  const meshSetting = mesh ?? { enabled: true };
  let enabled = meshSetting.enabled === undefined || meshSetting.enabled === null || meshSetting.enabled === true;
  if (destinationRule) enabled = destinationRule.enabled !== false;
  if (!enabled) return undefined;
  return destinationRule ?? meshSetting;
}

/** Whether this cluster's endpoints depend on the proxy locality (for the EDS cache key and the builder). */
export function localityLbActive(setting: any, outlierDetection: any): boolean {
  if (setting?.enabled === false) return false;
  return Boolean(setting?.distribute?.length) || outlierDetection !== undefined;
}

/** Mutates `groups`: weights (distribute) or priorities (failover); returns the groups that keep endpoints. */
export function applyLocalityLb(groups: LocalityGroup[], proxyLocality: string, setting: any, failoverEnabled: boolean): LocalityGroup[] {
  if (setting?.enabled === false) return groups;
  const proxy = parseLocality(proxyLocality);
  const rules: any[] = setting?.distribute ?? [];
  if (rules.length) {
    const rule = rules.find((r) => localityMatch(proxy, r.from ?? '*'));
    if (!rule) return groups;
    const unmatched = new Set(groups);
    for (const [pattern, weight] of Object.entries((rule.to ?? {}) as Record<string, number>)) {
      const hit = groups.filter((g) => unmatched.has(g) && localityMatch(g.locality, pattern));
      const total = hit.reduce((a, g) => a + g.weight, 0);
      for (const g of hit) {
        unmatched.delete(g);
        g.weight = Math.ceil((g.weight * weight) / total);
      }
    }
    return groups.filter((g) => !unmatched.has(g) && g.weight > 0);
  }
  if (!failoverEnabled) return groups;
  const failover: any[] = setting?.failover ?? [];
  for (const g of groups) {
    let p = lbPriority(proxy, g.locality);
    if (p === 3) {
      const rule = failover.find((f) => f.from === proxy.region);
      if (rule && g.locality.region !== rule.to) p = 4;
    }
    g.priority = p;
  }
  const used = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  for (const g of groups) g.priority = used.indexOf(g.priority);
  return groups;
}
