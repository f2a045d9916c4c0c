/**
 * What an Envoy-like client subscribes to next, read straight from encoded resources with the wire reader:
 * EDS names from EDS clusters, RDS names from listeners' HttpConnectionManagers, cluster names from routes
 * (proxyless gRPC asks CDS by name). Field numbers follow Envoy's v3 protos.
 */
import { fields, firstField, str } from '../proto/wire.js';

const EDS_DISCOVERY_TYPE = 3;
const HCM_SUFFIX = 'http_connection_manager.v3.HttpConnectionManager';

/** An Any's type_url (1) and value (2) regions. */
function anyValue(buf: Uint8Array, start: number, end: number): { typeUrl: string; start: number; end: number } | undefined {
  let typeUrl = '';
  let vs = -1;
  let ve = -1;
  for (const f of fields(buf, start, end)) {
    if (f.field === 1 && f.wireType === 2) typeUrl = str(buf, f);
    else if (f.field === 2 && f.wireType === 2) { vs = f.value; ve = f.end; }
  }
  return vs < 0 ? undefined : { typeUrl, start: vs, end: ve };
}

/** Cluster (inside an Any at [start,end)) → the EDS service name Envoy would request, or undefined. */
export function edsNameOfClusterAny(buf: Uint8Array, start: number, end: number): string | undefined {
  const any = anyValue(buf, start, end);
  if (!any) return undefined;
  let name = '';
  let type = 0;
  let serviceName = '';
  for (const f of fields(buf, any.start, any.end)) {
    if (f.field === 1 && f.wireType === 2) name = str(buf, f);
    else if (f.field === 2 && f.wireType === 0) type = f.value;
    else if (f.field === 3 && f.wireType === 2) {
      const sn = firstField(buf, 2, f.value, f.end);
      if (sn) serviceName = str(buf, sn);
    }
  }
  return type === EDS_DISCOVERY_TYPE ? serviceName || name : undefined;
}

function hcmRouteName(buf: Uint8Array, anyStart: number, anyEnd: number): string | undefined {
  const any = anyValue(buf, anyStart, anyEnd);
  if (!any || !any.typeUrl.endsWith(HCM_SUFFIX)) return undefined;
  const rds = firstField(buf, 3, any.start, any.end);
  if (!rds) return undefined;
  const rn = firstField(buf, 2, rds.value, rds.end);
  return rn ? str(buf, rn) : undefined;
}

function filterChainRoutes(buf: Uint8Array, start: number, end: number, out: Set<string>): void {
  for (const f of fields(buf, start, end)) {
    if (f.field !== 3 || f.wireType !== 2) continue; // filters
    const tc = firstField(buf, 4, f.value, f.end);
    if (!tc) continue;
    const rn = hcmRouteName(buf, tc.value, tc.end);
    if (rn) out.add(rn);
  }
}

/** Listener (inside an Any) → route names its HCMs fetch over RDS (added to out). */
export function routeNamesOfListenerAny(buf: Uint8Array, start: number, end: number, out: Set<string>): void {
  const any = anyValue(buf, start, end);
  if (!any) return;
  for (const f of fields(buf, any.start, any.end)) {
    if (f.wireType !== 2) continue;
    if (f.field === 3 || f.field === 25) filterChainRoutes(buf, f.value, f.end, out);
    else if (f.field === 19) {
      const inner = firstField(buf, 1, f.value, f.end);
      if (inner) {
        const rn = hcmRouteName(buf, inner.value, inner.end);
        if (rn) out.add(rn);
      }
    }
  }
}

/** RouteConfiguration (inside an Any) → cluster names its routes point at (added to out). */
export function clusterNamesOfRouteAny(buf: Uint8Array, start: number, end: number, out: Set<string>): void {
  const any = anyValue(buf, start, end);
  if (!any) return;
  for (const vh of fields(buf, any.start, any.end)) {
    if (vh.field !== 2 || vh.wireType !== 2) continue;
    for (const r of fields(buf, vh.value, vh.end)) {
      if (r.field !== 3 || r.wireType !== 2) continue;
      const action = firstField(buf, 2, r.value, r.end);
      if (!action) continue;
      for (const a of fields(buf, action.value, action.end)) {
        if (a.wireType !== 2) continue;
        if (a.field === 1) out.add(str(buf, a));
        else if (a.field === 3) {
          for (const c of fields(buf, a.value, a.end)) {
            if (c.field !== 1 || c.wireType !== 2) continue;
            const n = firstField(buf, 1, c.value, c.end);
            if (n) out.add(str(buf, n));
          }
        }
      }
    }
  }
}

