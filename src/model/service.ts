/** The service registry's data: plain, JSON-serialisable, so a snapshot can be shared with workers as bytes. */
import type { Protocol } from './protocol.js';

export interface ServicePort {
  name: string;
  port: number;
  /** Kubernetes targetPort: a number, or a named container port resolved per endpoint. */
  targetPort?: number | string;
  protocol: Protocol;
}

export type Resolution = 'EDS' | 'STATIC' | 'DNS' | 'NONE' | 'PASSTHROUGH';

export interface Service {
  /** FQDN, e.g. reviews.default.svc.cluster.local */
  hostname: string;
  name: string;
  namespace: string;
  /** ClusterIP, or undefined for headless/external services. */
  address?: string;
  ports: ServicePort[];
  /** Label selector of a Kubernetes Service (undefined for selector-less services). */
  selector?: Record<string, string>;
  /** networking.istio.io/exportTo annotation (ServiceEntry exportTo); empty when unset: MeshConfig defaultServiceExportTo, else everywhere. */
  exportTo: string[];
  resolution: Resolution;
  meshExternal: boolean;
  /**
   * Where the service comes from: unset for a Kubernetes Service, 'ServiceEntry' for a ServiceEntry host. A
   * ServiceEntry may name any host, a Kubernetes Service's included, so one hostname can be several services (one
   * per namespace); istiod prefers the Kubernetes one where it has to pick (sidecar.go selectServices).
   */
  registry?: 'ServiceEntry';
  /** metadata.creationTimestamp of the Service or ServiceEntry, when known: istiod's order for "the oldest one". */
  creationTime?: string;
  /** Content hash of everything above: the cache key for resources built from this service. */
  version: string;
}

export interface Locality { region: string; zone: string; subzone: string }

export interface Endpoint {
  address: string;
  /** The port the workload listens on (the resolved target port). */
  port: number;
  /** Name of the service port this endpoint serves (matches ServicePort.name). */
  servicePortName: string;
  labels: Record<string, string>;
  locality: Locality;
  healthy: boolean;
  serviceAccount?: string;
  namespace: string;
  workloadName?: string;
  clusterId: string;
}

export function localityString(l: Locality): string {
  return [l.region, l.zone, l.subzone].filter((x, i, a) => x || a.slice(i + 1).some(Boolean)).join('/');
}

export function parseLocality(s: string | undefined): Locality {
  const [region = '', zone = '', subzone = ''] = (s ?? '').split(/[/.]/);
  return { region, zone, subzone };
}

export function serviceFqdn(name: string, namespace: string, domainSuffix: string): string {
  return `${name}.${namespace}.svc.${domainSuffix}`;
}

export const isKubernetesService = (svc: Pick<Service, 'registry'>): boolean => svc.registry === undefined;

function creationMs(t: string | undefined): number {
  const ms = t ? Date.parse(t) : NaN;
  return Number.isNaN(ms) ? Infinity : ms;
}

/**
 * istiod's creation order (SortServicesByCreationTime, sortConfigByCreationTime): creationTimestamp when both have
 * one, an object without one after those with one; ties (and objects from files, which carry none) by
 * namespace/name, the order meshpilot lists configs in (istiod breaks ties by name, then namespace).
 */
export function byCreation(a: { creationTime?: string; namespace: string; name: string }, b: { creationTime?: string; namespace: string; name: string }): number {
  const ta = creationMs(a.creationTime), tb = creationMs(b.creationTime);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = `${a.namespace}/${a.name}`, kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
