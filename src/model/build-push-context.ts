/** ConfigStore → immutable PushContextData, once per push (istiod's PushContext.InitContext). */
import type { ConfigStore, StoredConfig } from '../config/store.js';
import { contentHash } from '../config/store.js';
import { Kind } from '../config/kinds.js';
import { buildKubeRegistry } from './registry/kube-registry.js';
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
    }))
    .sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
}

export function buildPushContextData(store: ConfigStore, mesh: MeshSettings, version: string, clusterId: string): PushContextData {
  const reg = buildKubeRegistry(store, mesh.domainSuffix, clusterId);
  const endpointVersions: Record<string, string> = {};
  for (const [host, eps] of Object.entries(reg.endpoints)) endpointVersions[host] = contentHash(eps);
  return {
    version,
    mesh,
    services: reg.services,
    endpoints: reg.endpoints,
    endpointVersions,
    virtualServices: entries(store, Kind.VirtualService),
    destinationRules: entries(store, Kind.DestinationRule),
    gateways: entries(store, Kind.Gateway),
    sidecars: entries(store, Kind.Sidecar),
    peerAuthentications: entries(store, Kind.PeerAuthentication),
    authorizationPolicies: entries(store, Kind.AuthorizationPolicy),
    requestAuthentications: entries(store, Kind.RequestAuthentication),
    workloads: reg.workloads,
  };
}
