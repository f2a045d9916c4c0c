/**
 * Several clusters' registries as one (istiod's aggregate controller): services merge by hostname — the first
 * registry that has a hostname defines it (the local/config cluster before remote ones, as istiod orders them) —
 * while endpoints and workloads are kept per cluster, each carrying its cluster ID (and network, when the
 * cluster's system namespace names one), so removing a cluster removes exactly its endpoints.
 */
import type { ConfigStore } from '../../config/store.js';
import { buildKubeRegistry, type KubeRegistryResult } from './kube-registry.js';

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

export function mergeRegistries(parts: KubeRegistryResult[]): KubeRegistryResult {
  if (parts.length === 1) return parts[0]!;
  const services = new Map<string, KubeRegistryResult['services'][number]>();
  const endpoints: KubeRegistryResult['endpoints'] = {};
  const workloads: KubeRegistryResult['workloads'] = [];
  for (const p of parts) {
    for (const s of p.services) if (!services.has(s.hostname)) services.set(s.hostname, s);
    for (const [host, eps] of Object.entries(p.endpoints)) (endpoints[host] ??= []).push(...eps);
    workloads.push(...p.workloads);
  }
  for (const list of Object.values(endpoints)) {
    list.sort((a, b) => (a.address === b.address ? (a.port === b.port ? (a.clusterId < b.clusterId ? -1 : a.clusterId > b.clusterId ? 1 : 0) : a.port - b.port) : a.address < b.address ? -1 : 1));
  }
  const sorted = [...services.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
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
