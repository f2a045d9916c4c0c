/**
 * Synthetic meshes for load runs: S services spread over K namespaces, E endpoints each, optional namespace-local
 * Sidecar isolation (`egress: hosts: ["./*", "istio-system/*"]`) and a VirtualService on every Nth service.
 * Two formats: `kube` (Service + EndpointSlice, what meshpilot reads from a Kubernetes-shaped directory) and
 * `istiod` (ServiceEntry + WorkloadEntry, what `pilot-discovery discovery --registries= --configDir=DIR` reads).
 * A manifest (`.mesh-manifest`, a dot-file so servers skip it) tells the harness what it generated, so churn
 * knows which file to rewrite and which proxies a change must reach.
 */
import fs from 'node:fs';
import path from 'node:path';

export type MeshFormat = 'kube' | 'istiod';

export interface MeshSpec {
  services: number;
  namespaces: number;
  endpoints: number;
  sidecarIsolation: boolean;
  format: MeshFormat;
  /** One VirtualService per this many services (0 = none). */
  vsEvery: number;
  port: number;
  domainSuffix: string;
}

export interface ServiceInfo {
  name: string;
  namespace: string;
  clusterIP: string;
  endpoints: string[];
  endpointsFile: string;
  vsFile?: string;
}

export interface MeshManifest extends MeshSpec {
  namespaceNames: string[];
  services_: ServiceInfo[];
}

export const MANIFEST_FILE = '.mesh-manifest';

export function defaultMeshSpec(): MeshSpec {
  return { services: 100, namespaces: 10, endpoints: 5, sidecarIsolation: false, format: 'kube', vsEvery: 10, port: 8080, domainSuffix: 'cluster.local' };
}

function ip(base: number, n: number): string {
  return `${base}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

function nsName(i: number, k: number): string {
  return `ns-${String(i).padStart(Math.max(2, String(k - 1).length), '0')}`;
}

function svcName(i: number, s: number): string {
  return `svc-${String(i).padStart(Math.max(3, String(s - 1).length), '0')}`;
}

/** Atomic write (temp file + rename), as editors and kubelet's configmap updates do: watchers never see half a file. */
export function writeAtomic(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export function endpointsYaml(m: MeshSpec, svc: ServiceInfo): string {
  if (m.format === 'istiod') {
    return svc.endpoints.map((addr, j) => `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${svc.name}-${j}
  namespace: ${svc.namespace}
spec:
  address: ${addr}
  labels: {app: ${svc.name}, version: v1}
`).join('---\n');
  }
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${svc.name}-slice
  namespace: ${svc.namespace}
  labels:
    kubernetes.io/service-name: ${svc.name}
addressType: IPv4
ports:
- name: http
  port: ${m.port}
  protocol: TCP
endpoints:
${svc.endpoints.map((a) => `- addresses: ["${a}"]\n  conditions: {ready: true}\n`).join('')}`;
}

/** A VirtualService whose header-match value is `marker` (churn rewrites it with a unique one). */
export function virtualServiceYaml(svc: ServiceInfo, marker: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${svc.name}
  namespace: ${svc.namespace}
spec:
  hosts:
  - ${svc.name}
  http:
  - match:
    - headers:
        x-canary:
          exact: ${marker}
    route:
    - destination:
        host: ${svc.name}
    timeout: 5s
  - route:
    - destination:
        host: ${svc.name}
`;
}

/** A service's own file in the mesh directory. */
export function serviceFile(svc: ServiceInfo): string {
  return path.join(svc.namespace, `${svc.name}.yaml`);
}

/** The Service (kube format) or ServiceEntry (istiod format); `extraPort`: a second HTTP port (Service churn). */
export function serviceYaml(m: MeshSpec, svc: ServiceInfo, extraPort?: number): string {
  if (m.format === 'istiod') {
    return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${svc.name}
  namespace: ${svc.namespace}
spec:
  hosts:
  - ${svc.name}.${svc.namespace}.svc.${m.domainSuffix}
  addresses:
  - ${svc.clusterIP}
  ports:
  - number: ${m.port}
    name: http
    protocol: HTTP
${extraPort === undefined ? '' : `  - number: ${extraPort}\n    name: http-${extraPort}\n    protocol: HTTP\n`}  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector:
    labels:
      app: ${svc.name}
`;
  }
  return `apiVersion: v1
kind: Service
metadata:
  name: ${svc.name}
  namespace: ${svc.namespace}
spec:
  clusterIP: ${svc.clusterIP}
  selector:
    app: ${svc.name}
  ports:
  - name: http
    port: ${m.port}
    targetPort: ${m.port}
${extraPort === undefined ? '' : `  - name: http-${extraPort}\n    port: ${extraPort}\n    targetPort: ${m.port}\n`}`;
}

export function generateMesh(spec: MeshSpec, dir: string): MeshManifest {
  if (spec.namespaces < 1 || spec.services < 1 || spec.endpoints < 1) throw new Error('services, namespaces and endpoints must be at least 1');
  fs.mkdirSync(dir, { recursive: true });
  const namespaceNames = Array.from({ length: spec.namespaces }, (_, i) => nsName(i, spec.namespaces));
  fs.writeFileSync(path.join(dir, 'namespaces.yaml'), namespaceNames.map((n) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${n}\n`).join('---\n'));
  const services: ServiceInfo[] = [];
  let epCounter = 0;
  for (let i = 0; i < spec.services; i++) {
    const ns = namespaceNames[i % spec.namespaces]!;
    const nsDir = path.join(dir, ns);
    fs.mkdirSync(nsDir, { recursive: true });
    const name = svcName(i, spec.services);
    const svc: ServiceInfo = {
      name,
      namespace: ns,
      clusterIP: ip(10, 96 * 65536 + i + 1),
      endpoints: Array.from({ length: spec.endpoints }, () => ip(10, 64 * 65536 + ++epCounter)),
      endpointsFile: path.join(ns, `${name}.endpoints.yaml`),
    };
    fs.writeFileSync(path.join(dir, serviceFile(svc)), serviceYaml(spec, svc));
    fs.writeFileSync(path.join(dir, svc.endpointsFile), endpointsYaml(spec, svc));
    if (spec.vsEvery > 0 && i % spec.vsEvery === 0) {
      svc.vsFile = path.join(ns, `${name}.vs.yaml`);
      fs.writeFileSync(path.join(dir, svc.vsFile), virtualServiceYaml(svc, 'initial'));
    }
    services.push(svc);
  }
  if (spec.sidecarIsolation) {
    for (const ns of namespaceNames) {
      fs.mkdirSync(path.join(dir, ns), { recursive: true });
      fs.writeFileSync(path.join(dir, ns, 'sidecar.yaml'), `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: ${ns}
spec:
  egress:
  - hosts:
    - "./*"
    - "istio-system/*"
`);
    }
  }
  const manifest: MeshManifest = { ...spec, namespaceNames, services_: services };
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest));
  return manifest;
}

export function readManifest(dir: string): MeshManifest | undefined {
  const f = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(f)) return undefined;
  return JSON.parse(fs.readFileSync(f, 'utf8')) as MeshManifest;
}
