/**
 * ServiceEntry and WorkloadEntry → model services and endpoints, as istiod's serviceentry registry converts them
 * (istio pilot/pkg/serviceregistry/serviceentry/conversion.go): one Service per host, ports by number with the
 * protocol from the port's `protocol` (then its name), resolution NONE/STATIC/DNS, location MESH_EXTERNAL by default,
 * endpoints from `spec.endpoints` or, with a workloadSelector, from the WorkloadEntries and Pods it selects in the
 * ServiceEntry's namespace. DNS entries without endpoints resolve their own hosts.
 * A host is one service per namespace (istiod's ServiceIndex.HostnameAndNamespace): the oldest ServiceEntry in that
 * namespace naming it. The same host in other namespaces (or a Kubernetes Service's hostname) stays a service of its
 * own; which one a proxy uses is its SidecarScope's choice (workers/networking/sidecar-scope.ts).
 * Several ServiceEntries naming one host in one namespace: istiod keeps each as a Service, and every SidecarScope
 * merges them (SidecarScope.appendSidecarServices): the oldest one's service, with the ports (by number) of each
 * younger one it can merge with (canMergeServices: same resolution, labels, workloadSelector labels and exportTo);
 * a younger one it cannot merge adds no ports. Their endpoints all count: istiod's endpoint shard is by host and
 * namespace (serviceInstancesStore.getByKey), whichever entry they came from.
 */
import type { ConfigStore, StoredConfig } from '../../config/store.js';
import { contentHash } from '../../config/store.js';
import { Kind } from '../../config/kinds.js';
import { convertProtocol, parseProtocol } from '../protocol.js';
import { byCreation, parseLocality, type Endpoint, type Resolution, type Service, type ServicePort } from '../service.js';
import type { Workload } from '../push-context.js';

export interface ServiceEntryRegistryResult {
  services: Service[];
  endpoints: Record<string, Endpoint[]>;
}

interface EntryEndpoint {
  address: string;
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  locality?: string;
  serviceAccount?: string;
  name?: string;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function resolutionOf(spec: any): Resolution {
  switch (spec.resolution) {
    case 'STATIC': return 'STATIC';
    case 'DNS': case 'DNS_ROUND_ROBIN': return 'DNS';
    default: return 'NONE';
  }
}

/**
 * True when a service's clusters carry its endpoints inline (STRICT_DNS with a load_assignment in CDS, as for a DNS
 * ServiceEntry): an endpoint change for it — a WorkloadEntry or Pod it selects, moved or relabelled — changes the
 * cluster itself, so it needs a CDS push, not EDS alone. istiod's serviceentry controller does the same: for a DNS
 * entry it turns the workload event into a full push with the ServiceEntry in ConfigsUpdated (istio#39505);
 * STATIC entries stay endpoint-only (EDS).
 */
export function clusterCarriesEndpoints(svc: Pick<Service, 'resolution'>): boolean {
  return svc.resolution === 'DNS';
}

/** Every ServiceEntry host becomes a Service; `workloads` are the Pods, for workloadSelector entries. */
export function buildServiceEntryRegistry(store: ConfigStore, workloads: readonly Workload[], clusterId: string): ServiceEntryRegistryResult {
  const services: Service[] = [];
  const endpoints: Record<string, Endpoint[]> = {};
  const workloadEntries = store.list(Kind.WorkloadEntry);
  // Oldest first (istiod SortServicesByCreationTime: creationTimestamp, files by namespace/name), so that within a
  // namespace the oldest ServiceEntry for a host is the one kept, and across namespaces the services array lists
  // a host's services oldest first.
  const created = (c: StoredConfig): string | undefined => (typeof c.resource.metadata.creationTimestamp === 'string' ? c.resource.metadata.creationTimestamp : undefined);
  const entries = [...store.list(Kind.ServiceEntry)].sort((a, b) =>
    byCreation({ creationTime: created(a), namespace: a.key.namespace, name: a.key.name }, { creationTime: created(b), namespace: b.key.namespace, name: b.key.name }));
  /** By `namespace/host`: the service's position in `services`, and what decides whether a younger entry merges. */
  const kept = new Map<string, { at: number; merge: string; sources: string[] }>();
  for (const c of entries) {
    const spec = (c.resource.spec ?? {}) as any;
    const ns = c.key.namespace;
    const ports: ServicePort[] = ((spec.ports ?? []) as any[]).map((p) => ({
      name: p.name,
      port: p.number,
      targetPort: p.targetPort ?? p.number,
      protocol: p.protocol ? parseProtocol(p.protocol) : convertProtocol(p.name),
    }));
    const resolution = resolutionOf(spec);
    const addresses: string[] = spec.addresses ?? [];
    const selector: Record<string, string> | undefined = spec.workloadSelector?.labels;
    const eps: EntryEndpoint[] = selector
      ? selectedEndpoints(workloadEntries, workloads, ns, selector)
      : ((spec.endpoints ?? []) as any[]).map((e) => ({ ...e }));
    // istiod canMergeServices (namespace and registry are equal here): resolution, the entry's labels, its
    // workloadSelector labels and its exportTo (as a set).
    const merge = JSON.stringify([resolution, sortedEntries(c.resource.metadata.labels), sortedEntries(selector), [...new Set<string>(spec.exportTo ?? [])].sort()]);
    const source = `${Kind.ServiceEntry}/${ns}/${c.key.name}`;
    for (const host of (spec.hosts ?? []) as string[]) {
      const older = kept.get(`${ns}/${host}`);
      if (older) {
        // The oldest entry's service stays; a mergeable younger one adds the ports it alone has.
        const first = services[older.at]!;
        const more = older.merge === merge ? ports.filter((p) => !first.ports.some((q) => q.port === p.port)) : [];
        if (more.length > 0) {
          older.sources.push(source);
          const { version: _v, ...base } = first;
          const svc = { ...base, ports: [...first.ports, ...more] };
          services[older.at] = { ...svc, version: contentHash({ svc, source: older.sources.join(',') }) };
        }
      } else {
        kept.set(`${ns}/${host}`, { at: services.length, merge, sources: [source] });
      }
      if (older) {
        addEndpoints(endpoints, host, ns, eps, ports, resolution, selector, clusterId);
        continue;
      }
      const svc: Omit<Service, 'version'> = {
        hostname: host,
        name: host,
        namespace: ns,
        address: addresses.length === 1 && !addresses[0]!.includes('/') ? addresses[0] : undefined,
        ports,
        exportTo: spec.exportTo ?? [],
        resolution,
        meshExternal: spec.location !== 'MESH_INTERNAL',
        registry: 'ServiceEntry',
      };
      const creationTime = created(c);
      if (creationTime) svc.creationTime = creationTime;
      services.push({ ...svc, version: contentHash({ svc, source }) });
      addEndpoints(endpoints, host, ns, eps, ports, resolution, selector, clusterId);
    }
  }
  return { services, endpoints };
}

const sortedEntries = (m: Record<string, string> | undefined): Array<[string, string]> => Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** One ServiceEntry's endpoints for one of its hosts, a copy per port of the entry. */
function addEndpoints(
  endpoints: Record<string, Endpoint[]>, host: string, ns: string, eps: readonly EntryEndpoint[], ports: readonly ServicePort[],
  resolution: Resolution, selector: Record<string, string> | undefined, clusterId: string,
): void {
  // DNS entries with no endpoints resolve the host itself (istiod: "endpoints from hosts").
  const list = eps.length === 0 && resolution === 'DNS' && !host.includes('*') ? [{ address: host } as EntryEndpoint] : eps;
  if (resolution === 'NONE' && !selector) return;
  for (const e of list) {
    for (const p of ports) {
      endpoints[host] ??= [];
      endpoints[host].push({
        address: e.address,
        port: e.ports?.[p.name] ?? (typeof p.targetPort === 'number' ? p.targetPort : p.port),
        servicePortName: p.name,
        labels: e.labels ?? {},
        locality: parseLocality(e.locality),
        healthy: true,
        serviceAccount: e.serviceAccount,
        namespace: ns,
        workloadName: e.name,
        clusterId,
      });
    }
  }
}

function selectedEndpoints(
  workloadEntries: readonly StoredConfig[], workloads: readonly Workload[], ns: string, selector: Record<string, string>,
): EntryEndpoint[] {
  const out: EntryEndpoint[] = [];
  for (const we of workloadEntries) {
    if (we.key.namespace !== ns) continue;
    const spec = (we.resource.spec ?? {}) as any;
    const labels = { ...(we.resource.metadata.labels ?? {}), ...(spec.labels ?? {}) };
    if (!spec.address || !selects(selector, labels)) continue;
    out.push({ address: spec.address, ports: spec.ports, labels, locality: spec.locality, serviceAccount: spec.serviceAccount, name: we.key.name });
  }
  for (const w of workloads) {
    if (w.namespace === ns && selects(selector, w.labels)) {
      out.push({ address: w.ip, labels: w.labels, locality: w.locality, serviceAccount: w.serviceAccount, name: w.name });
    }
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}
