/**
 * Per-proxy sync state as istiod reports it (pilot/pkg/xds/debug.go SyncStatus, statusgen.go debugSyncStatus):
 * a type is NOT_SENT until a response went out, SYNCED when the last nonce sent was ACKed, STALE otherwise, and
 * (Envoy's CSDS ConfigStatus) ERROR when the proxy NACKed it.
 */
import type { ComputedResponse } from '../push/push-engine.js';
import type { Proxy } from '../model/proxy.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, shortType } from '../proto/type-urls.js';

/** What both ADS variants keep per watched type (src/xds/connection.ts, delta-connection.ts). */
export interface WatchView {
  typeUrl: string;
  nonceSent?: string;
  nonceAcked?: string;
  versionSent?: string;
  versionAcked?: string;
  lastSentAt?: number;
  lastAckedAt?: number;
  nackError?: string;
  lastSent?: ComputedResponse;
}

export interface ConnectionView {
  readonly conId: string;
  readonly proxy: Proxy;
  readonly peer: string;
  readonly connectedAt: Date;
  readonly kind: 'sotw' | 'delta';
  readonly closed: boolean;
  readonly watches: ReadonlyMap<string, WatchView>;
  readonly stats: { responses: number; bytes: number; acks: number; nacks: number };
}

export type ConfigStatus = 'SYNCED' | 'NOT_SENT' | 'STALE' | 'ERROR';

/** The types proxy-status and syncz report, in istioctl's column order. */
export const STATUS_TYPES = [CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE] as const;

export function configStatus(w: WatchView | undefined): ConfigStatus {
  if (!w || !w.nonceSent) return 'NOT_SENT';
  if (w.nonceAcked === w.nonceSent) return 'SYNCED';
  if (w.nackError !== undefined) return 'ERROR';
  return 'STALE';
}

/** istioctl's rendering of a sent/acked nonce pair (istioctl/pkg/writer/pilot/status.go xdsStatus). */
export function xdsStatusText(sent: string | undefined, acked: string | undefined): string {
  if (!sent) return 'NOT SENT';
  if (sent === acked) return 'SYNCED';
  if (!acked) return 'STALE (Never Acknowledged)';
  return 'STALE';
}

/** istiod's /debug/syncz element (json field names as in pilot/pkg/xds/debug.go). */
export interface SyncStatus {
  cluster_id?: string;
  proxy: string;
  proxy_type: string;
  proxy_version?: string;
  istio_version?: string;
  cluster_sent?: string;
  cluster_acked?: string;
  listener_sent?: string;
  listener_acked?: string;
  route_sent?: string;
  route_acked?: string;
  endpoint_sent?: string;
  endpoint_acked?: string;
  secret_sent?: string;
  secret_acked?: string;
  /** meshpilot additions: the stream's ID and kind, and the last NACK per type. */
  connection_id: string;
  xds_kind: 'sotw' | 'delta';
  errors?: Record<string, string>;
}

const FIELD_PREFIX: Record<string, string> = {
  [CLUSTER_TYPE]: 'cluster', [LISTENER_TYPE]: 'listener', [ROUTE_TYPE]: 'route', [ENDPOINT_TYPE]: 'endpoint', [SECRET_TYPE]: 'secret',
};

export function syncStatus(con: ConnectionView): SyncStatus {
  const s: Record<string, unknown> = {
    cluster_id: con.proxy.clusterId,
    proxy: con.proxy.id,
    proxy_type: con.proxy.type,
    istio_version: con.proxy.istioVersion || undefined,
    connection_id: con.conId,
    xds_kind: con.kind,
  };
  const errors: Record<string, string> = {};
  for (const w of con.watches.values()) {
    const p = FIELD_PREFIX[w.typeUrl];
    if (!p) continue;
    if (w.nonceSent) s[`${p}_sent`] = w.nonceSent;
    if (w.nonceAcked) s[`${p}_acked`] = w.nonceAcked;
    if (w.nackError !== undefined) errors[shortType(w.typeUrl)] = w.nackError;
  }
  if (Object.keys(errors).length > 0) s.errors = errors;
  return s as unknown as SyncStatus;
}

/** Connections that are proxies (not debug clients such as `proxy-status` over xDS, which watch no config type). */
export function proxyConnections<T extends ConnectionView>(all: Iterable<T>): T[] {
  return [...all].filter((c) => !c.closed && [...c.watches.keys()].some((t) => t in FIELD_PREFIX))
    .sort((a, b) => a.proxy.id.localeCompare(b.proxy.id) || a.conId.localeCompare(b.conId));
}

/** Match `?proxyID=` the way istiod does: the full node ID, or the pod part `NAME.NAMESPACE`. */
export function matchesProxyId(con: ConnectionView, id: string): boolean {
  return con.proxy.id === id || con.proxy.podId === id || con.conId === id;
}
