/**
 * The Kubernetes resources meshpilot watches, where they live on the API server, and the projection of each: only
 * the fields the model reads are kept (no managedFields, status noise, env, images…), so memory tracks what the
 * model needs and a status heartbeat that changes nothing we read produces no event.
 */
import type { KubeResource } from '../../config/schema/index.js';
import { Kind } from '../../config/kinds.js';

export type Raw = Record<string, any>;

export interface ResourceType {
  kind: string;
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  /** Validated with src/config/schema (Node and Secret are not config kinds). */
  validate: boolean;
  project(o: Raw): KubeResource;
}

/** Kind of the synthetic per-cluster Node projection held in a cluster's store (labels only). */
export const NODE_KIND = 'Node';

const ISTIO_ANNOTATION = /(^|\.)istio\.io\//;

/**
 * `created`: keep creationTimestamp, where istiod orders by it (Services and ServiceEntries for "the oldest one
 * with a hostname", Istio configs for precedence). It never changes, so it costs no pushes.
 */
function meta(o: Raw, keepLabels = true, created = false): KubeResource['metadata'] {
  const m = o.metadata ?? {};
  const out: KubeResource['metadata'] = { name: m.name };
  if (m.namespace) out.namespace = m.namespace;
  if (created && m.creationTimestamp) out.creationTimestamp = m.creationTimestamp;
  if (keepLabels && m.labels && Object.keys(m.labels).length > 0) out.labels = m.labels;
  if (m.annotations) {
    // Only Istio's annotations change what we generate (exportTo, sidecar.istio.io/*, …).
    let ann: Record<string, string> | undefined;
    for (const [k, v] of Object.entries(m.annotations as Record<string, string>)) if (ISTIO_ANNOTATION.test(k)) (ann ??= {})[k] = v;
    if (ann) out.annotations = ann;
  }
  return out;
}

function compact<T extends Raw>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

function projectService(o: Raw): KubeResource {
  const s = o.spec ?? {};
  return {
    apiVersion: 'v1', kind: Kind.Service, metadata: meta(o, true, true),
    spec: compact({
      type: s.type, clusterIP: s.clusterIP, selector: s.selector, externalName: s.externalName,
      ports: ((s.ports ?? []) as Raw[]).map((p) => compact({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol, appProtocol: p.appProtocol })),
    }),
  };
}

function projectPod(o: Raw): KubeResource {
  const s = o.spec ?? {};
  const st = o.status ?? {};
  const ready = ((st.conditions ?? []) as Raw[]).find((c) => c.type === 'Ready');
  return {
    apiVersion: 'v1', kind: Kind.Pod, metadata: meta(o),
    spec: compact({
      nodeName: s.nodeName, serviceAccountName: s.serviceAccountName,
      containers: ((s.containers ?? []) as Raw[]).filter((c) => c.ports?.length).map((c) => ({
        name: c.name, ports: (c.ports as Raw[]).map((p) => compact({ name: p.name, containerPort: p.containerPort, protocol: p.protocol })),
      })),
    }),
    status: compact({
      phase: st.phase, podIP: st.podIP,
      conditions: ready ? [{ type: 'Ready', status: ready.status }] : undefined,
    }),
  };
}

function projectSlice(o: Raw): KubeResource {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: Kind.EndpointSlice, metadata: meta(o),
    addressType: o.addressType,
    ports: ((o.ports ?? []) as Raw[]).map((p) => compact({ name: p.name, port: p.port, protocol: p.protocol, appProtocol: p.appProtocol })),
    endpoints: ((o.endpoints ?? []) as Raw[]).map((e) => compact({
      addresses: e.addresses,
      conditions: e.conditions,
      targetRef: e.targetRef ? compact({ kind: e.targetRef.kind, name: e.targetRef.name, namespace: e.targetRef.namespace }) : undefined,
      zone: e.zone, nodeName: e.nodeName, hostname: e.hostname,
    })),
  } as KubeResource;
}

function projectNamespace(o: Raw): KubeResource {
  return { apiVersion: 'v1', kind: Kind.Namespace, metadata: meta(o) };
}

const NODE_LABELS = new Set(['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone',
  'failure-domain.beta.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/zone']);

function projectNode(o: Raw): KubeResource {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries((o.metadata?.labels ?? {}) as Record<string, string>)) if (NODE_LABELS.has(k)) labels[k] = v;
  return { apiVersion: 'v1', kind: NODE_KIND, metadata: { name: o.metadata?.name, labels } };
}

function projectIstio(o: Raw): KubeResource {
  return { apiVersion: o.apiVersion, kind: o.kind, metadata: meta(o, true, true), spec: o.spec ?? {} };
}

/** Secret projection: only the data (the kubeconfigs of remote clusters). Never logged. */
function projectSecret(o: Raw): KubeResource {
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta(o), data: o.data ?? {} } as KubeResource;
}

const core = (kind: string, plural: string, namespaced: boolean, project: (o: Raw) => KubeResource, validate = true): ResourceType =>
  ({ kind, group: '', version: 'v1', plural, namespaced, validate, project });
const istio = (group: string, kind: string, plural: string): ResourceType =>
  ({ kind, group, version: 'v1', plural, namespaced: true, validate: true, project: projectIstio });

/** What every cluster contributes to the service registry. */
export const REGISTRY_TYPES: readonly ResourceType[] = [
  core(Kind.Service, 'services', true, projectService),
  { kind: Kind.EndpointSlice, group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true, validate: true, project: projectSlice },
  // Pods are validated by the API server's built-in schema and projected by our own code; re-validating 10,000 of
  // them with zod tripled the initial sync (bench/kube-sync.ts). Istio kinds are validated: CRD schemas are looser.
  core(Kind.Pod, 'pods', true, projectPod, false),
  core(Kind.Namespace, 'namespaces', false, projectNamespace),
  core(NODE_KIND, 'nodes', false, projectNode, false),
];

/** Istio config, read from the config cluster only (as istiod reads CRDs from its own cluster). */
export const ISTIO_TYPES: readonly ResourceType[] = [
  istio('networking.istio.io', Kind.VirtualService, 'virtualservices'),
  istio('networking.istio.io', Kind.DestinationRule, 'destinationrules'),
  istio('networking.istio.io', Kind.ServiceEntry, 'serviceentries'),
  istio('networking.istio.io', Kind.WorkloadEntry, 'workloadentries'),
  istio('networking.istio.io', Kind.Gateway, 'gateways'),
  istio('networking.istio.io', Kind.Sidecar, 'sidecars'),
  istio('security.istio.io', Kind.PeerAuthentication, 'peerauthentications'),
  istio('security.istio.io', Kind.AuthorizationPolicy, 'authorizationpolicies'),
  istio('security.istio.io', Kind.RequestAuthentication, 'requestauthentications'),
];

export const SECRET_TYPE: ResourceType = core('Secret', 'secrets', true, projectSecret, false);

/** ConfigMap projection: only the data (the `istio` ConfigMap's `mesh` key is the mesh config). */
function projectConfigMap(o: Raw): KubeResource {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(o), data: o.data ?? {} } as KubeResource;
}

export const CONFIGMAP_TYPE: ResourceType = core('ConfigMap', 'configmaps', true, projectConfigMap, false);

/** istiod's mesh config ConfigMap (in the system namespace) and its key. */
export const MESH_CONFIGMAP_NAME = 'istio';
export const MESH_CONFIGMAP_KEY = 'mesh';

/** Collection path, e.g. /api/v1/pods, /apis/networking.istio.io/v1/namespaces/NS/virtualservices. */
export function collectionPath(t: ResourceType, namespace?: string): string {
  const base = t.group ? `/apis/${t.group}/${t.version}` : `/api/${t.version}`;
  return namespace && t.namespaced ? `${base}/namespaces/${namespace}/${t.plural}` : `${base}/${t.plural}`;
}
