/** Small Istio config documents as YAML, shared by tests that build meshes from strings. */

/** A namespace's default Sidecar with one egress listener importing `hosts` (`./*`, `ns/*`, …). */
export function egressSidecarYaml(ns: string, hosts: string[]): string {
  return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ${ns}}
spec:
  egress: [{hosts: [${hosts.map((h) => JSON.stringify(h)).join(', ')}]}]
`;
}

/**
 * A VirtualService for `host` whose first rule matches header `x-h: <header>` (a marker that shows up in the
 * routes it produces) and whose second routes everything else; `extra` is spliced into spec (e.g. exportTo).
 */
export function headerRouteVsYaml(name: string, ns: string, host: string, header: string, extra = ''): string {
  return vsYaml(name, ns, host, extra, `  - match: [{headers: {x-h: {exact: ${header}}}}]
    route: [{destination: {host: ${host}}}]
  - route: [{destination: {host: ${host}}}]
`);
}

/** A VirtualService for `host` with one rule routing everything to `dest`; `extra` is spliced into spec. */
export function routeVsYaml(name: string, ns: string, host: string, dest: string, extra = ''): string {
  return vsYaml(name, ns, host, extra, `  - route: [{destination: {host: ${dest}}}]\n`);
}

function vsYaml(name: string, ns: string, host: string, extra: string, http: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${host}]
${extra}  http:
${http}`;
}

/** A Kubernetes Service with a ClusterIP, selecting pods labelled app=NAME; `ports` is the YAML list's inside. */
export function kubeServiceYaml(name: string, ns: string, ports: string, ip = '10.96.0.9'): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: ${ip}
  selector: {app: ${name}}
  ports: [${ports}]
`;
}
