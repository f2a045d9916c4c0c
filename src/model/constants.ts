/** Istio's well-known ports, names and defaults, in one place. */
export const DOMAIN_SUFFIX = 'cluster.local';
export const VIRTUAL_OUTBOUND_PORT = 15001;
export const VIRTUAL_INBOUND_PORT = 15006;
export const VIRTUAL_OUTBOUND_LISTENER = 'virtualOutbound';
export const VIRTUAL_INBOUND_LISTENER = 'virtualInbound';
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
export const ALLOW_ANY_VHOST = 'allow_any';
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const DEFAULT_CLUSTER_ID = 'Kubernetes';
/** istiod's default outbound connect timeout (MeshConfig.connectTimeout). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const WILDCARD_ADDRESS = '0.0.0.0';
export const LOCALHOST_ADDRESS = '127.0.0.1';
/** Label carrying locality as region/zone/subzone on a workload (Istio's `istio-locality`, dots for slashes). */
export const LOCALITY_LABEL = 'istio-locality';
export const TOPOLOGY_REGION_LABEL = 'topology.kubernetes.io/region';
export const TOPOLOGY_ZONE_LABEL = 'topology.kubernetes.io/zone';
export const TOPOLOGY_SUBZONE_LABEL = 'topology.istio.io/subzone';
