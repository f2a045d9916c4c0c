/**
 * Istio node identities for simulated proxies: `sidecar~IP~POD.NS~NS.svc.cluster.local` and the node metadata
 * keys istiod reads (NAMESPACE, LABELS, ISTIO_VERSION, CLUSTER_ID, INTERCEPTION_MODE, GENERATOR for proxyless).
 */

export interface ProxyIdentity {
  index: number;
  nodeId: string;
  namespace: string;
  /** The workload this proxy stands for (its `app` label). */
  app: string;
  metadata: Record<string, unknown>;
  proxyless: boolean;
  /** Proxyless only: the xds:/// targets (LDS names, `HOST:PORT`) it resolves. */
  targets: string[];
}

export interface IdentityOptions {
  namespaces: string[];
  /** Workload apps per namespace; a proxy takes the next app of its namespace, round robin. */
  appsByNamespace?: Map<string, string[]>;
  proxyless: boolean;
  /** Proxyless targets per namespace (LDS names). */
  targetsByNamespace?: Map<string, string[]>;
  istioVersion: string;
  clusterId: string;
  interceptionMode: string;
  domainSuffix: string;
}

/** A pod IP in 10.128.0.0/9 from the proxy's index (unique up to 8M proxies). */
export function proxyIp(i: number): string {
  const n = 128 * 65536 + i + 1;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export function makeIdentity(i: number, o: IdentityOptions): ProxyIdentity {
  const ns = o.namespaces[i % o.namespaces.length]!;
  const nth = Math.floor(i / o.namespaces.length);
  const apps = o.appsByNamespace?.get(ns);
  const app = apps && apps.length > 0 ? apps[nth % apps.length]! : `load-${nth % 10}`;
  const pod = `${app}-${nth.toString(36)}-${i.toString(36).padStart(5, '0')}`;
  const ip = proxyIp(i);
  const labels = { app, version: 'v1', 'security.istio.io/tlsMode': 'istio' };
  const metadata: Record<string, unknown> = {
    NAMESPACE: ns,
    LABELS: labels,
    ISTIO_VERSION: o.istioVersion,
    CLUSTER_ID: o.clusterId,
    INTERCEPTION_MODE: o.interceptionMode,
    POD_NAME: pod,
    WORKLOAD_NAME: app,
  };
  if (o.proxyless) metadata.GENERATOR = 'grpc';
  return {
    index: i,
    nodeId: `sidecar~${ip}~${pod}.${ns}~${ns}.svc.${o.domainSuffix}`,
    namespace: ns,
    app,
    metadata,
    proxyless: o.proxyless,
    targets: o.proxyless ? (o.targetsByNamespace?.get(ns) ?? []) : [],
  };
}
