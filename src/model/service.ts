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
