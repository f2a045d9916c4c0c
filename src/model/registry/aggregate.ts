/**
 * Several clusters' registries as one (istiod's aggregate controller): services merge by hostname — the first
 * registry that has a hostname defines it (the local/config cluster before remote ones, as istiod orders them) —
 * while endpoints and workloads are kept per cluster, each carrying its cluster ID (and network, when the
 * cluster's system namespace names one), so removing a cluster removes exactly its endpoints.
 */
import type { ConfigStore } from '../../config/store.js';
import { buildKubeRegistry, byHostname, type KubeRegistryResult } from './kube-registry.js';
import type { Endpoint } from '../service.js';
import type { Workload } from '../push-context.js';

/** One cluster's service-registry objects. */
export interface ClusterRegistry {
  clusterId: string;
  network?: string;
  store: ConfigStore;
}

/** What a multi-cluster source exposes to the model: the current clusters, in precedence order. */
export interface ClusterRegistrySet {
  registries(): ClusterRegistry[];
}

const byClusterOrder = (a: Endpoint, b: Endpoint): number =>
  (a.address === b.address ? (a.port === b.port ? (a.clusterId < b.clusterId ? -1 : a.clusterId > b.clusterId ? 1 : 0) : a.port - b.port) : a.address < b.address ? -1 : 1);

/**
 * Merged results are memoised on the identity of their parts (each cluster's registry hands back the same arrays for
 * what did not change): a host's merged endpoint list, and the merged workloads, stay the same arrays across an
 * endpoint change elsewhere, so their version hashes and the workload comparison are skipped (build-push-context.ts,
 * push-engine.ts). A host served by one cluster keeps that cluster's list as it is: it is already in this order.
 */
let mergedHosts = new Map<string, { lists: Endpoint[][]; merged: Endpoint[] }>();
let mergedWorkloads: { parts: Workload[][]; merged: Workload[] } | undefined;
/** The merged services while every cluster's services array is the same (an endpoint-only push: no merge, no sort). */
let mergedServices: { parts: Array<KubeRegistryResult['services']>; merged: KubeRegistryResult['services'] } | undefined;

export function mergeRegistries(parts: KubeRegistryResult[]): KubeRegistryResult {
  if (parts.length === 1) return parts[0]!;
  const sparts = parts.map((p) => p.services);
  const sameServices = mergedServices !== undefined && mergedServices.parts.length === sparts.length &&
    mergedServices.parts.every((x, i) => x === sparts[i]);
  const services = new Map<string, KubeRegistryResult['services'][number]>();
  const byHost = new Map<string, Endpoint[][]>();
  for (const p of parts) {
    if (!sameServices) for (const s of p.services) if (!services.has(s.hostname)) services.set(s.hostname, s);
    for (const [host, eps] of Object.entries(p.endpoints)) {
      const l = byHost.get(host);
      if (l) l.push(eps); else byHost.set(host, [eps]);
    }
  }
  const endpoints: KubeRegistryResult['endpoints'] = {};
  // Only this merge's multi-cluster hosts are remembered: hosts that went do not accumulate.
  const nextMerged = new Map<string, { lists: Endpoint[][]; merged: Endpoint[] }>();
  for (const [host, lists] of byHost) {
    if (lists.length === 1) { endpoints[host] = lists[0]!; continue; }
    const prev = mergedHosts.get(host);
    const merged = prev && prev.lists.length === lists.length && prev.lists.every((l, i) => l === lists[i])
      ? prev.merged : lists.flat().sort(byClusterOrder);
    nextMerged.set(host, { lists, merged });
    endpoints[host] = merged;
  }
  mergedHosts = nextMerged;
  const wparts = parts.map((p) => p.workloads);
  let workloads: Workload[];
  if (mergedWorkloads && mergedWorkloads.parts.length === wparts.length && mergedWorkloads.parts.every((w, i) => w === wparts[i])) {
    workloads = mergedWorkloads.merged;
  } else {
    workloads = wparts.flat();
    mergedWorkloads = { parts: wparts, merged: workloads };
  }
  let sorted: KubeRegistryResult['services'];
  if (sameServices) sorted = mergedServices!.merged;
  else {
    sorted = [...services.values()].sort(byHostname);
    mergedServices = { parts: sparts, merged: sorted };
  }
  return { services: sorted, endpoints, workloads };
}

/** The main store (files, and the config cluster's Istio objects) first, then every Kubernetes cluster. */
export function buildAggregateRegistry(store: ConfigStore, domainSuffix: string, clusterId: string, clusters?: ClusterRegistrySet): KubeRegistryResult {
  const local = buildKubeRegistry(store, domainSuffix, clusterId);
  const regs = clusters?.registries() ?? [];
  if (regs.length === 0) return local;
  return mergeRegistries([
    local,
    ...regs.map((r) => buildKubeRegistry(r.store, domainSuffix, r.clusterId, { network: r.network, kubernetes: true })),
  ]);
}
