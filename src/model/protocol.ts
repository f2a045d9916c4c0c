/**
 * Port protocol selection as Istio does it: appProtocol first, then the port name ("http", "http-web", "grpc"...),
 * UDP from the Kubernetes protocol field. See istio pkg/config/protocol and pilot/pkg/serviceregistry/kube ConvertProtocol.
 */
export type Protocol =
  | 'HTTP' | 'HTTP2' | 'HTTPS' | 'GRPC' | 'GRPC-Web' | 'TCP' | 'TLS' | 'UDP' | 'Mongo' | 'Redis' | 'MySQL'
  | 'HTTP_PROXY' | 'UnsupportedProtocol';

const BY_NAME: Record<string, Protocol> = {
  http: 'HTTP', http2: 'HTTP2', https: 'HTTPS', grpc: 'GRPC', 'grpc-web': 'GRPC-Web', tcp: 'TCP', tls: 'TLS',
  udp: 'UDP', mongo: 'Mongo', redis: 'Redis', mysql: 'MySQL', http_proxy: 'HTTP_PROXY',
};

/** Parse one protocol name, case-insensitively. */
export function parseProtocol(name: string): Protocol {
  return BY_NAME[name.toLowerCase()] ?? 'UnsupportedProtocol';
}

export function convertProtocol(portName: string | undefined, k8sProtocol?: string, appProtocol?: string): Protocol {
  if (k8sProtocol?.toUpperCase() === 'UDP') return 'UDP';
  let name = portName ?? '';
  if (appProtocol) {
    // Kubernetes' standard appProtocol names (KEP-3726).
    if (appProtocol === 'kubernetes.io/h2c') return 'HTTP2';
    if (appProtocol === 'kubernetes.io/ws' || appProtocol === 'kubernetes.io/wss') return 'HTTP';
    name = appProtocol;
  }
  const lower = name.toLowerCase();
  if (lower === 'grpc-web' || lower.startsWith('grpc-web-')) return 'GRPC-Web';
  const exact = parseProtocol(lower);
  if (exact !== 'UnsupportedProtocol') return exact;
  const dash = lower.indexOf('-');
  return dash > 0 ? parseProtocol(lower.slice(0, dash)) : 'UnsupportedProtocol';
}

export function isHttp(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-Web' || p === 'HTTP_PROXY';
}

/** Protocols that speak HTTP/2 upstream (Istio sets http2_protocol_options on their clusters). */
export function isHttp2(p: Protocol): boolean {
  return p === 'HTTP2' || p === 'GRPC';
}
