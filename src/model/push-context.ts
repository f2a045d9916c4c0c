/**
 * PushContext: the immutable, versioned snapshot of the mesh that one push computes from (istiod's
 * model.PushContext). Its data part is plain JSON so it can be handed to workers as bytes in shared memory;
 * indexes are derived on each side and never shipped.
 */
import type { Endpoint, Service } from './service.js';

export interface ConfigEntry<T = any> {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: T;
  /** Content hash, used in resource cache keys. */
  version: string;
}

export interface Workload {
  name: string;
  namespace: string;
  ip: string;
  labels: Record<string, string>;
  serviceAccount?: string;
  locality: string;
}

export interface MeshSettings {
  rootNamespace: string;
  domainSuffix: string;
  connectTimeoutMs: number;
  trustDomain: string;
}

export interface PushContextData {
  version: string;
  mesh: MeshSettings;
  services: Service[];
  endpoints: Record<string, Endpoint[]>;
  endpointVersions: Record<string, string>;
  virtualServices: ConfigEntry[];
  destinationRules: ConfigEntry[];
  gateways: ConfigEntry[];
  sidecars: ConfigEntry[];
  peerAuthentications: ConfigEntry[];
  authorizationPolicies: ConfigEntry[];
  requestAuthentications: ConfigEntry[];
  workloads: Workload[];
}

export class PushContext {
  readonly version: string;
  private readonly byHost = new Map<string, Service>();
  private readonly byPort = new Map<number, Service[]>();
  private readonly vsByHost = new Map<string, ConfigEntry[]>();
  private readonly drByHost = new Map<string, ConfigEntry[]>();
  private readonly workloadByIp = new Map<string, Workload>();

  constructor(readonly data: PushContextData) {
    this.version = data.version;
    for (const s of data.services) {
      this.byHost.set(s.hostname, s);
      for (const p of s.ports) {
        let l = this.byPort.get(p.port);
        if (!l) this.byPort.set(p.port, (l = []));
        l.push(s);
      }
    }
    for (const vs of data.virtualServices) {
      for (const h of (vs.spec.hosts ?? []) as string[]) {
        const host = this.qualify(h, vs.namespace);
        let l = this.vsByHost.get(host);
        if (!l) this.vsByHost.set(host, (l = []));
        l.push(vs);
      }
    }
    for (const dr of data.destinationRules) {
      const host = this.qualify(dr.spec.host as string, dr.namespace);
      let l = this.drByHost.get(host);
      if (!l) this.drByHost.set(host, (l = []));
      l.push(dr);
    }
    for (const w of data.workloads) this.workloadByIp.set(w.ip, w);
  }

  /** Short names resolve in the config's namespace, as Istio resolves hosts in VirtualService and DestinationRule. */
  qualify(host: string, namespace: string): string {
    if (host.includes('.') || host === '*') return host;
    return `${host}.${namespace}.svc.${this.data.mesh.domainSuffix}`;
  }

  get services(): readonly Service[] { return this.data.services; }
  service(hostname: string): Service | undefined { return this.byHost.get(hostname); }
  servicesOnPort(port: number): readonly Service[] { return this.byPort.get(port) ?? []; }
  endpoints(hostname: string): readonly Endpoint[] { return this.data.endpoints[hostname] ?? []; }
  endpointVersion(hostname: string): string { return this.data.endpointVersions[hostname] ?? '0'; }
  workload(ip: string): Workload | undefined { return this.workloadByIp.get(ip); }

  /** VirtualServices for an exact host, in creation order (namespace/name order here, as files carry no timestamps). */
  virtualServicesFor(hostname: string): readonly ConfigEntry[] { return this.vsByHost.get(hostname) ?? []; }

  /**
   * The DestinationRule that applies to a host seen from a namespace: the proxy's own namespace first, then the
   * service's namespace, then the root namespace (istiod's destination rule lookup order), exact host only for now.
   */
  destinationRuleFor(hostname: string, proxyNamespace: string): ConfigEntry | undefined {
    const rules = this.drByHost.get(hostname);
    if (!rules || rules.length === 0) return undefined;
    const svcNs = this.byHost.get(hostname)?.namespace;
    return rules.find((r) => r.namespace === proxyNamespace)
      ?? rules.find((r) => r.namespace === svcNs)
      ?? rules.find((r) => r.namespace === this.data.mesh.rootNamespace)
      ?? rules[0];
  }

  /** Services a Kubernetes selector matches, in a namespace: the proxy's inbound service instances. */
  servicesSelecting(namespace: string, labels: Record<string, string>): Service[] {
    return this.data.services.filter((s) =>
      s.namespace === namespace && s.selector !== undefined && Object.keys(s.selector).length > 0 &&
      Object.entries(s.selector).every(([k, v]) => labels[k] === v));
  }
}
