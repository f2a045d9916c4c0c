/**
 * A connected proxy, from its node ID `TYPE~IP~POD.NS~NS.svc.cluster.local` and Istio's node metadata keys.
 * See istio pilot/pkg/model/context.go (ParseServiceNodeWithMetadata).
 */
import { MeshpilotError } from '../config/errors.js';
import { DEFAULT_CLUSTER_ID } from './constants.js';

export type ProxyType = 'sidecar' | 'router';
export type Generator = 'envoy' | 'grpc';

export class NodeIdError extends MeshpilotError {
  override readonly code = 'ERR_NODE_ID';
}

export interface Proxy {
  id: string;
  type: ProxyType;
  ip: string;
  /** POD.NS part of the ID, as istiod's proxy.ID. */
  podId: string;
  namespace: string;
  dnsDomain: string;
  labels: Record<string, string>;
  clusterId: string;
  istioVersion: string;
  generator: Generator;
  /** REDIRECT (iptables) by default; NONE means listeners must bind their real ports. */
  interceptionMode: 'REDIRECT' | 'TPROXY' | 'NONE';
  metadata: Record<string, unknown>;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function parseProxy(nodeId: string, metadata: Record<string, unknown>): Proxy {
  const parts = nodeId.split('~');
  if (parts.length !== 4) throw new NodeIdError(`node ID "${nodeId}": expected 4 parts TYPE~IP~POD.NS~DOMAIN, got ${parts.length}`);
  const [type, ip, podId, dnsDomain] = parts as [string, string, string, string];
  if (type !== 'sidecar' && type !== 'router') throw new NodeIdError(`node ID "${nodeId}": unknown proxy type "${type}" (sidecar or router)`);
  if (!ip) throw new NodeIdError(`node ID "${nodeId}": missing IP address`);
  const nsFromDomain = dnsDomain.split('.')[0] ?? '';
  const nsFromPod = podId.includes('.') ? podId.slice(podId.lastIndexOf('.') + 1) : '';
  const namespace = str(metadata.NAMESPACE) ?? (nsFromPod || nsFromDomain || 'default');
  const labelsRaw = metadata.LABELS;
  const labels: Record<string, string> = {};
  if (labelsRaw && typeof labelsRaw === 'object') {
    for (const [k, v] of Object.entries(labelsRaw as Record<string, unknown>)) if (typeof v === 'string') labels[k] = v;
  }
  const mode = str(metadata.INTERCEPTION_MODE)?.toUpperCase();
  return {
    id: nodeId,
    type,
    ip: ip.split(',')[0]!,
    podId,
    namespace,
    dnsDomain,
    labels,
    clusterId: str(metadata.CLUSTER_ID) ?? DEFAULT_CLUSTER_ID,
    istioVersion: str(metadata.ISTIO_VERSION) ?? '',
    generator: str(metadata.GENERATOR) === 'grpc' ? 'grpc' : 'envoy',
    interceptionMode: mode === 'NONE' || mode === 'TPROXY' ? mode : 'REDIRECT',
    metadata,
  };
}
