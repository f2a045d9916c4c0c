/** Istio's resource names (istio pilot/pkg/model/service.go BuildSubsetKey, BuildInboundSubsetKey). */
export type Direction = 'outbound' | 'inbound';

export interface ClusterNameParts { direction: Direction; port: number; subset: string; host: string }

export function clusterName(direction: Direction, port: number, subset: string, host: string): string {
  return `${direction}|${port}|${subset}|${host}`;
}

/** `inbound|PORT||` — since Istio 1.10 inbound clusters carry only the target port. */
export function inboundClusterName(targetPort: number): string {
  return `inbound|${targetPort}||`;
}

export function parseClusterName(name: string): ClusterNameParts | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const [direction, port, subset, host] = parts as [string, string, string, string];
  if (direction !== 'outbound' && direction !== 'inbound') return undefined;
  const p = Number(port);
  if (!Number.isInteger(p) || p <= 0) return undefined;
  return { direction, port: p, subset, host };
}

/**
 * `outbound_.PORT_.SUBSET_.HOST` (istio pilot/pkg/model/service.go BuildDNSSrvSubsetKey): the SNI Istio mTLS clients
 * send, and the name of a router's SNI-DNAT cluster for an AUTO_PASSTHROUGH gateway server.
 */
export function dnsSrvSubsetKey(port: number, subset: string, host: string): string {
  return `outbound_.${port}_.${subset}_.${host}`;
}

export function parseDnsSrvSubsetKey(name: string): ClusterNameParts | undefined {
  const m = /^outbound_\.(\d+)_\.([^_]*)_\.(.+)$/.exec(name);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { direction: 'outbound', port, subset: m[2]!, host: m[3]! };
}

export function listenerName(address: string, port: number): string {
  return `${address}_${port}`;
}

/** Proxyless gRPC names listeners and routes `HOST:PORT` (istio pilot/pkg/networking/grpcgen). */
export function parseHostPort(name: string): { host: string; port: number } | undefined {
  const i = name.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(name.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host: name.slice(0, i), port };
}
