/**
 * A proxy's config as Envoy's admin /config_dump shows it (envoy.admin.v3.*ConfigDump), built from the responses
 * this server last sent on the proxy's stream — istiod's /debug/config_dump?proxyID=. Resources are decoded from
 * the cached bytes, so the dump is exactly what went over the wire.
 */
import { decodeAny, type ProtoObject } from '../proto/encode.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../proto/type-urls.js';
import type { ConnectionView, WatchView } from './sync-status.js';

const ADMIN = 'type.googleapis.com/envoy.admin.v3.';

function readVarint(buf: Buffer, at: number): [number, number] {
  let n = 0; let mul = 1; let i = at;
  for (;;) {
    const b = buf[i++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) return [n, i];
    mul *= 128;
  }
}

/** A cached resource entry is DiscoveryResponse field 2 (tag, length, Any bytes): return the Any bytes. */
export function anyBytesOfEntry(entry: Buffer): Buffer {
  const [, afterTag] = readVarint(entry, 0);
  const [len, start] = readVarint(entry, afterTag);
  return entry.subarray(start, start + len);
}

/** Decode what was last sent for one watched type: [name, resource JSON without '@type'] pairs. */
export function sentResources(w: WatchView | undefined): Array<{ name: string; resource: ProtoObject }> {
  const res = w?.lastSent;
  if (!res) return [];
  return res.entries.map((e, i) => {
    const { '@type': _t, ...resource } = decodeAny(anyBytesOfEntry(e));
    return { name: res.names[i]!, resource };
  });
}

function when(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

export function configDump(con: ConnectionView): { configs: ProtoObject[] } {
  const w = (t: string): WatchView | undefined => con.watches.get(t);
  const version = (t: string): string | undefined => w(t)?.versionAcked ?? w(t)?.versionSent ?? w(t)?.lastSent?.version;
  const updated = (t: string): string | undefined => when(w(t)?.lastSentAt);
  const configs: ProtoObject[] = [];
  configs.push({
    '@type': `${ADMIN}ClustersConfigDump`,
    version_info: version(CLUSTER_TYPE),
    dynamic_active_clusters: sentResources(w(CLUSTER_TYPE)).map((r) => ({ version_info: version(CLUSTER_TYPE), cluster: { '@type': CLUSTER_TYPE, ...r.resource }, last_updated: updated(CLUSTER_TYPE) })),
  });
  configs.push({
    '@type': `${ADMIN}ListenersConfigDump`,
    version_info: version(LISTENER_TYPE),
    dynamic_listeners: sentResources(w(LISTENER_TYPE)).map((r) => ({
      name: r.name,
      active_state: { version_info: version(LISTENER_TYPE), listener: { '@type': LISTENER_TYPE, ...r.resource }, last_updated: updated(LISTENER_TYPE) },
    })),
  });
  configs.push({
    '@type': `${ADMIN}RoutesConfigDump`,
    dynamic_route_configs: sentResources(w(ROUTE_TYPE)).map((r) => ({ version_info: version(ROUTE_TYPE), route_config: { '@type': ROUTE_TYPE, ...r.resource }, last_updated: updated(ROUTE_TYPE) })),
  });
  configs.push({
    '@type': `${ADMIN}SecretsConfigDump`,
    dynamic_active_secrets: sentResources(w(SECRET_TYPE)).map((r) => ({ name: r.name, version_info: version(SECRET_TYPE), last_updated: updated(SECRET_TYPE), secret: { '@type': SECRET_TYPE, ...r.resource } })),
  });
  configs.push({
    '@type': `${ADMIN}EndpointsConfigDump`,
    dynamic_endpoint_configs: sentResources(w(ENDPOINT_TYPE)).map((r) => ({ version_info: version(ENDPOINT_TYPE), endpoint_config: { '@type': ENDPOINT_TYPE, ...r.resource }, last_updated: updated(ENDPOINT_TYPE) })),
  });
  return JSON.parse(JSON.stringify({ configs })) as { configs: ProtoObject[] }; // drops undefined fields
}
