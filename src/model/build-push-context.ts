/** ConfigStore → immutable PushContextData, once per push (istiod's PushContext.InitContext). */
import type { ConfigStore, StoredConfig } from '../config/store.js';
import { contentHash } from '../config/store.js';
import { Kind } from '../config/kinds.js';
import { buildAggregateRegistry, type ClusterRegistrySet } from './registry/aggregate.js';
import { buildServiceEntryRegistry } from './registry/service-entry.js';
import type { ConfigEntry, MeshSettings, PushContextData } from './push-context.js';

function entries(store: ConfigStore, kind: string): ConfigEntry[] {
  return store.list(kind)
    .map((c: StoredConfig): ConfigEntry => ({
      name: c.key.name,
      namespace: c.key.namespace,
      labels: c.resource.metadata.labels ?? {},
      annotations: c.resource.metadata.annotations ?? {},
      spec: c.resource.spec ?? {},
      version: c.hash,
      ...(typeof c.resource.metadata.creationTimestamp === 'string' ? { creationTime: c.resource.metadata.creationTimestamp } : {}),
    }))
    .sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
}

/** MeshConfig defaultVirtualServiceExportTo / defaultDestinationRuleExportTo for configs without exportTo. */
function withDefaultExportTo(list: ConfigEntry[], exportTo: string[] | undefined): ConfigEntry[] {
  if (!exportTo || (exportTo.length === 1 && exportTo[0] === '*')) return list;
  return list.map((c) => (c.spec.exportTo?.length ? c : { ...c, spec: { ...c.spec, exportTo } }));
}

/** Endpoint lists are never mutated once built, and the registry hands back the same array for an unchanged host. */
const endpointsVersions = new WeakMap<readonly unknown[], string>();

function endpointsVersion(eps: readonly unknown[]): string {
  let v = endpointsVersions.get(eps);
  if (v === undefined) { v = contentHash(eps); endpointsVersions.set(eps, v); }
  return v;
}

/** `clusters`: Kubernetes clusters whose registries join the main store's (services by hostname, endpoints per cluster). */
export function buildPushContextData(store: ConfigStore, mesh: MeshSettings, version: string, clusterId: string, clusters?: ClusterRegistrySet): PushContextData {
  return { version, mesh, ...buildRegistryData(store, mesh, clusterId, clusters), ...buildConfigLists(store, mesh) };
}

type RegistryData = Pick<PushContextData, 'services' | 'endpoints' | 'endpointVersions' | 'workloads'>;

/**
 * The service registry part of a PushContext (services, endpoints and their versions, workloads): all an
 * endpoint-only push rebuilds — the Istio config lists are kept from the current context.
 */
export function buildRegistryData(store: ConfigStore, mesh: MeshSettings, clusterId: string, clusters?: ClusterRegistrySet): RegistryData {
  const reg = buildAggregateRegistry(store, mesh.domainSuffix, clusterId, clusters);
  // ServiceEntry hosts join the registry, one service per hostname and namespace (istiod initServiceRegistry's
  // HostnameAndNamespace): a ServiceEntry naming a Kubernetes Service's hostname in that Service's own namespace
  // gives way to it ("domain squatting"); in any other namespace it is a service of its own, and each proxy's
  // SidecarScope picks one of a hostname's services (workers/networking/sidecar-scope.ts).
  const se = buildServiceEntryRegistry(store, reg.workloads, clusterId);
  const kubeHosts = se.services.length > 0 ? new Set(reg.services.map((s) => `${s.namespace}/${s.hostname}`)) : undefined;
  // The registry's services array and endpoints record may be kept by its builder for the next build
  // (kube-registry.ts): copied before ServiceEntry hosts are added to them, never changed in place.
  let copied = false;
  const added = new Set<string>();
  for (const s of se.services) {
    if (kubeHosts!.has(`${s.namespace}/${s.hostname}`)) continue;
    if (!copied) { reg.services = [...reg.services]; reg.endpoints = Object.assign({}, reg.endpoints); copied = true; }
    reg.services.push(s);
    added.add(s.namespace + '/' + s.hostname);
  }
  // A hostname's endpoints are those of all its services, each endpoint carrying its service's namespace: a
  // proxy reads those of the service its scope picked (PushContext.endpointsOf).
  for (const host in se.endpoints) {
    const eps = se.endpoints[host]!.filter((e) => added.has(e.namespace + '/' + host));
    if (eps.length === 0) continue;
    const kube = reg.endpoints[host];
    reg.endpoints[host] = kube ? [...kube, ...eps] : (eps.length === se.endpoints[host]!.length ? se.endpoints[host]! : eps);
  }
  const svcExport = mesh.defaultServiceExportTo;
  if (svcExport && !(svcExport.length === 1 && svcExport[0] === '*')) {
    reg.services = reg.services.map((s) => (s.exportTo.length ? s : { ...s, exportTo: svcExport }));
  }
  const endpointVersions: Record<string, string> = {};
  // (for…in: no [key, value] pair per host; the record has no inherited properties)
  for (const host in reg.endpoints) endpointVersions[host] = endpointsVersion(reg.endpoints[host]!);
  return { services: reg.services, endpoints: reg.endpoints, endpointVersions, workloads: reg.workloads };
}

/** Istio kinds that never reach the service registry: a change to only these can keep the registry part. */
export const CONFIG_ONLY_KINDS: ReadonlySet<string> = new Set([
  Kind.VirtualService, Kind.DestinationRule, Kind.Gateway, Kind.Sidecar,
  Kind.PeerAuthentication, Kind.AuthorizationPolicy, Kind.RequestAuthentication,
]);

type ConfigLists = Pick<PushContextData, 'virtualServices' | 'destinationRules' | 'gateways' | 'sidecars' | 'peerAuthentications' | 'authorizationPolicies' | 'requestAuthentications'>;

/** The Istio config part of a PushContext (everything but services, endpoints and workloads). */
export function buildConfigLists(store: ConfigStore, mesh: MeshSettings): ConfigLists {
  return {
    virtualServices: withDefaultExportTo(entries(store, Kind.VirtualService), mesh.defaultVirtualServiceExportTo),
    destinationRules: withDefaultExportTo(entries(store, Kind.DestinationRule), mesh.defaultDestinationRuleExportTo),
    gateways: entries(store, Kind.Gateway),
    sidecars: entries(store, Kind.Sidecar),
    peerAuthentications: entries(store, Kind.PeerAuthentication),
    authorizationPolicies: entries(store, Kind.AuthorizationPolicy),
    requestAuthentications: entries(store, Kind.RequestAuthentication),
  };
}
