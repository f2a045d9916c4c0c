/**
 * discovery.k8s.io/v1 EndpointSlice. Body fields live at the top level of the
 * object (no `spec`). Unknown fields pass through.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { customIssue, k8sProtocol, looseObject, objectReference, portNumber } from "./common.js";

export const endpointConditions = looseObject({
  ready: z.boolean().nullable().optional(),
  serving: z.boolean().nullable().optional(),
  terminating: z.boolean().nullable().optional(),
});

const forZone = looseObject({ name: z.string() });

export const sliceEndpoint = looseObject({
  addresses: z
    .array(z.string())
    .min(1, "endpoint must have at least one address")
    .max(100, "endpoint must have at most 100 addresses"),
  conditions: endpointConditions.optional(),
  hostname: z.string().nullable().optional(),
  targetRef: objectReference.nullable().optional(),
  nodeName: z.string().nullable().optional(),
  zone: z.string().nullable().optional(),
  hints: looseObject({
    forZones: z.array(forZone).nullable().optional(),
    forNodes: z.array(forZone).nullable().optional(),
  })
    .nullable()
    .optional(),
});
export type SliceEndpoint = z.infer<typeof sliceEndpoint>;

export const slicePort = looseObject({
  name: z.string().nullable().optional(),
  port: portNumber.nullable().optional(),
  protocol: k8sProtocol.nullable().optional(),
  appProtocol: z.string().nullable().optional(),
});
export type SlicePort = z.infer<typeof slicePort>;

export const endpointSliceBodyObject = z
  .object({
    addressType: z.enum(["IPv4", "IPv6", "FQDN"]),
    endpoints: z.array(sliceEndpoint).nullable().optional(),
    ports: z.array(slicePort).nullable().optional(),
  })
  .passthrough()
  .superRefine((s, ctx) => {
    const family = s.addressType === "IPv4" ? 4 : s.addressType === "IPv6" ? 6 : 0;
    if (family === 0) return;
    s.endpoints?.forEach((ep, i) => {
      ep.addresses.forEach((a, j) => {
        if (isIP(a) !== family) customIssue(ctx, ["endpoints", i, "addresses", j], `"${a}" is not a valid ${s.addressType} address`);
      });
    });
  });
export type EndpointSliceBody = z.infer<typeof endpointSliceBodyObject>;
