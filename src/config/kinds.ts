/** The kinds meshpilot reads, keyed the way ConfigStore keys them. */
export const Kind = {
  Service: 'Service',
  Endpoints: 'Endpoints',
  Pod: 'Pod',
  Namespace: 'Namespace',
  EndpointSlice: 'EndpointSlice',
  VirtualService: 'VirtualService',
  DestinationRule: 'DestinationRule',
  ServiceEntry: 'ServiceEntry',
  WorkloadEntry: 'WorkloadEntry',
  Gateway: 'Gateway',
  Sidecar: 'Sidecar',
  PeerAuthentication: 'PeerAuthentication',
  AuthorizationPolicy: 'AuthorizationPolicy',
  RequestAuthentication: 'RequestAuthentication',
} as const;
export type KindName = (typeof Kind)[keyof typeof Kind];

/** Kinds whose change only moves endpoints (candidates for an incremental EDS push). */
export const ENDPOINT_KINDS: ReadonlySet<string> = new Set([Kind.Endpoints, Kind.EndpointSlice, Kind.Pod, Kind.WorkloadEntry]);

/** Cluster-scoped kinds carry no namespace. */
export const CLUSTER_SCOPED: ReadonlySet<string> = new Set([Kind.Namespace]);
