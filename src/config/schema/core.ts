/**
 * core/v1 schemas: Service, Endpoints, Pod, Namespace.
 *
 * Only the fields the control plane consumes are validated; everything else
 * passes through untouched (real objects carry hundreds of fields).
 */
import { z } from "zod";
import {
  customIssue,
  ipAddress,
  isIPAddress,
  k8sProtocol,
  labels,
  looseObject,
  objectReference,
  portNumber,
  portOrName,
} from "./common.js";

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

export const servicePortK8s = looseObject({
  name: z.string().optional(),
  port: portNumber,
  targetPort: portOrName.optional(),
  protocol: k8sProtocol.optional(),
  appProtocol: z.string().optional(),
  nodePort: portNumber.optional(),
});
export type KubeServicePort = z.infer<typeof servicePortK8s>;

export const serviceSpec = looseObject({
  ports: z.array(servicePortK8s).nullable().optional(),
  clusterIP: z.string().optional(),
  clusterIPs: z.array(z.string()).nullable().optional(),
  selector: labels.nullable().optional(),
  type: z.enum(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]).optional(),
  externalName: z.string().optional(),
  externalIPs: z.array(ipAddress).nullable().optional(),
}).superRefine((s, ctx) => {
  const ports = s.ports ?? [];
  if (ports.length > 1) {
    const seen = new Set<string>();
    ports.forEach((p, i) => {
      if (!p.name) customIssue(ctx, ["ports", i, "name"], "port name is required when a service has more than one port");
      else if (seen.has(p.name)) customIssue(ctx, ["ports", i, "name"], `duplicate port name "${p.name}"`);
      if (p.name) seen.add(p.name);
    });
  }
  if (s.type === "ExternalName" && !s.externalName) {
    customIssue(ctx, ["externalName"], "externalName is required for services of type ExternalName");
  }
  const checkIP = (ip: string, path: (string | number)[]) => {
    if (ip !== "" && ip !== "None" && !isIPAddress(ip)) customIssue(ctx, path, `"${ip}" is not a valid cluster IP (expected an IP address, "None" or "")`);
  };
  if (s.clusterIP !== undefined) checkIP(s.clusterIP, ["clusterIP"]);
  s.clusterIPs?.forEach((ip, i) => checkIP(ip, ["clusterIPs", i]));
});
export type ServiceSpec = z.infer<typeof serviceSpec>;

export const serviceBody = {
  spec: serviceSpec.optional(),
  status: z.unknown().optional(),
};

// ---------------------------------------------------------------------------
// Endpoints (core/v1, top-level `subsets`)
// ---------------------------------------------------------------------------

export const endpointAddress = looseObject({
  ip: ipAddress,
  hostname: z.string().optional(),
  nodeName: z.string().optional(),
  targetRef: objectReference.optional(),
});
export type EndpointAddress = z.infer<typeof endpointAddress>;

export const endpointPort = looseObject({
  name: z.string().optional(),
  port: portNumber,
  protocol: k8sProtocol.optional(),
  appProtocol: z.string().optional(),
});
export type EndpointPort = z.infer<typeof endpointPort>;

export const endpointSubset = looseObject({
  addresses: z.array(endpointAddress).nullable().optional(),
  notReadyAddresses: z.array(endpointAddress).nullable().optional(),
  ports: z.array(endpointPort).nullable().optional(),
});
export type EndpointSubset = z.infer<typeof endpointSubset>;

export const endpointsBody = {
  subsets: z.array(endpointSubset).nullable().optional(),
};
const endpointsBodyObject = z.object(endpointsBody);
export type EndpointsBody = z.infer<typeof endpointsBodyObject>;

// ---------------------------------------------------------------------------
// Pod (minimal)
// ---------------------------------------------------------------------------

export const containerPort = looseObject({
  containerPort: portNumber,
  name: z.string().optional(),
  protocol: k8sProtocol.optional(),
  hostPort: portNumber.optional(),
  hostIP: z.string().optional(),
});
export type ContainerPort = z.infer<typeof containerPort>;

export const container = looseObject({
  name: z.string().min(1, "container name must not be empty"),
  image: z.string().optional(),
  ports: z.array(containerPort).nullable().optional(),
});
export type Container = z.infer<typeof container>;

export const podSpec = looseObject({
  serviceAccountName: z.string().optional(),
  serviceAccount: z.string().optional(), // deprecated alias
  nodeName: z.string().optional(),
  hostNetwork: z.boolean().optional(),
  containers: z.array(container).nullable().optional(),
  initContainers: z.array(container).nullable().optional(),
});
export type PodSpec = z.infer<typeof podSpec>;

export const podCondition = looseObject({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
});

export const podStatus = looseObject({
  phase: z.enum(["Pending", "Running", "Succeeded", "Failed", "Unknown"]).optional(),
  podIP: z
    .string()
    .superRefine((ip, ctx) => {
      if (ip !== "" && !isIPAddress(ip)) customIssue(ctx, [], `"${ip}" is not a valid IP address`);
    })
    .optional(),
  podIPs: z.array(looseObject({ ip: ipAddress })).nullable().optional(),
  hostIP: z.string().optional(),
  conditions: z.array(podCondition).nullable().optional(),
});
export type PodStatus = z.infer<typeof podStatus>;

export const podBody = {
  spec: podSpec.optional(),
  status: podStatus.optional(),
};

// ---------------------------------------------------------------------------
// Namespace
// ---------------------------------------------------------------------------

export const namespaceBody = {
  spec: looseObject({ finalizers: z.array(z.string()).nullable().optional() }).optional(),
  status: z.unknown().optional(),
};
