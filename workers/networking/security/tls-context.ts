/**
 * Istio mutual TLS contexts (istiod's pilot/pkg/networking/core/tls and grpcgen's buildCommonTLSContext).
 *
 * Envoy gets its certificate and roots over SDS on the ADS stream (`default`, `ROOTCA`); proxyless gRPC gets them
 * from its bootstrap's certificate providers (instance `default`, certificate names `default` and `ROOTCA`), which
 * read the files an agent keeps fresh. Peers are checked by SPIFFE SAN.
 */
import type { ProtoObject } from '../../../src/proto/encode.js';
import type { PushContext } from '../../../src/model/push-context.js';
import type { Service } from '../../../src/model/service.js';
import { UPSTREAM_TLS_CONTEXT_TYPE, DOWNSTREAM_TLS_CONTEXT_TYPE } from '../../../src/proto/type-urls.js';
import type { Flavor } from './authz-builder.js';

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';
/** istiod's ALPN for Istio mTLS between sidecars (what lets PERMISSIVE tell mTLS from app TLS). */
export const ISTIO_ALPN = ['istio-peer-exchange', 'istio'];
/**
 * SDS over the ADS stream. Secrets come only to proxies on the secure port with a verified certificate; a proxy on
 * the plaintext port never gets them, so Envoy is told not to hold its listeners and clusters warming for long
 * (Envoy's default is 15 s): after 1 s they go active and mTLS on them fails until the secret arrives.
 */
export const ADS_SDS = { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: { seconds: 1, nanos: 0 } };

interface IdentityEntry { endpoints: string; trustDomain: string; ids: string[] }
const identityMemo = new WeakMap<PushContext, Map<string, IdentityEntry>>();
/**
 * The memo of the context seen before the newest one. Endpoint versions are content hashes, so a service whose
 * endpoints did not change keeps its identities across a full push: a new context reads them from here instead of
 * walking every endpoint again (on a worker that also means not decoding them from the snapshot). One generation
 * back only, so memory stays at two contexts' worth.
 */
let previousMemo: Map<string, IdentityEntry> | undefined;
let newestMemo: Map<string, IdentityEntry> | undefined;

/**
 * The SPIFFE identities of a service's workloads (istiod's PushContext.ServiceAccounts), remembered per endpoint
 * version: cluster cache keys read them, and endpoint churn that keeps the identities must not rebuild clusters.
 */
export function serviceIdentities(ctx: PushContext, svc: Service): string[] {
  let memo = identityMemo.get(ctx);
  if (!memo) {
    identityMemo.set(ctx, (memo = new Map()));
    previousMemo = newestMemo;
    newestMemo = memo;
  }
  const version = ctx.endpointVersion(svc.hostname);
  const trustDomain = ctx.data.mesh.trustDomain;
  // A hostname can be services in several namespaces, each with its own endpoints (ctx.endpointsOf).
  const key = `${svc.namespace}/${svc.hostname}`;
  const hit = memo.get(key);
  if (hit && hit.endpoints === version && hit.trustDomain === trustDomain) return hit.ids;
  const before = memo !== previousMemo ? previousMemo?.get(key) : undefined;
  if (before && before.endpoints === version && before.trustDomain === trustDomain) {
    memo.set(key, before);
    return before.ids;
  }
  const sas = new Set<string>();
  for (const ep of ctx.endpointsOf(svc)) {
    if (ep.serviceAccount) sas.add(`spiffe://${trustDomain}/ns/${ep.namespace}/sa/${ep.serviceAccount}`);
  }
  const ids = [...sas].sort();
  memo.set(key, { endpoints: version, trustDomain, ids });
  return ids;
}

/** Istio's auto-mTLS label on a workload: endpoints carrying it get mTLS from clients with no TLS setting. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
export const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';
const RAW_BUFFER_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

/**
 * Auto mTLS (istiod's cluster_builder buildAutoMtlsSettings): Istio mTLS to endpoints labelled tlsMode=istio,
 * plaintext to the rest, chosen per endpoint by transport_socket_matches.
 */
export function autoMtlsMatches(sans: string[], sni: string, h2 = false): ProtoObject[] {
  return [
    { name: 'tlsMode-istio', match: { fields: { tlsMode: { stringValue: 'istio' } } }, transport_socket: istioMutualUpstream('envoy', sans, sni, h2) },
    { name: 'tlsMode-disabled', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': RAW_BUFFER_TYPE } } },
  ];
}

/** The endpoint metadata transport_socket_matches select on. */
export function endpointTlsMetadata(labels: Record<string, string>): ProtoObject | undefined {
  const mode = labels[TLS_MODE_LABEL];
  return mode ? { filter_metadata: { [TRANSPORT_SOCKET_MATCH]: { fields: { tlsMode: { stringValue: mode } } } } } : undefined;
}

function commonTls(flavor: Flavor, sans: string[]): ProtoObject {
  if (flavor === 'grpc') {
    // grpc-js-xds reads the older match_subject_alt_names.
    const sanMatch = sans.length ? { match_subject_alt_names: sans.map((exact) => ({ exact })) } : {};
    return {
      tls_certificate_provider_instance: { instance_name: 'default', certificate_name: WORKLOAD_SECRET },
      combined_validation_context: {
        default_validation_context: { ca_certificate_provider_instance: { instance_name: 'default', certificate_name: ROOT_SECRET }, ...sanMatch },
      },
    };
  }
  const sanMatch = sans.length ? { match_typed_subject_alt_names: sans.map((exact) => ({ san_type: 'URI', matcher: { exact } })) } : {};
  return {
    tls_certificate_sds_secret_configs: [{ name: WORKLOAD_SECRET, sds_config: ADS_SDS }],
    combined_validation_context: {
      default_validation_context: sanMatch,
      validation_context_sds_secret_config: { name: ROOT_SECRET, sds_config: ADS_SDS },
    },
    alpn_protocols: ISTIO_ALPN,
  };
}

/** DestinationRule ISTIO_MUTUAL (or auto-mTLS) → the cluster's transport socket. */
export function istioMutualUpstream(flavor: Flavor, sans: string[], sni?: string, h2 = false): ProtoObject {
  const common = commonTls(flavor, sans);
  // An HTTP/2 cluster also offers h2 (istiod's ALPNInMeshH2).
  if (h2 && flavor === 'envoy') common.alpn_protocols = [...ISTIO_ALPN, 'h2'];
  // istiod 1.29 pins Envoy's upstream Istio mTLS to TLS 1.2–1.3.
  if (flavor === 'envoy') common.tls_params = { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3' };
  const ctx: ProtoObject = { '@type': UPSTREAM_TLS_CONTEXT_TYPE, common_tls_context: common };
  if (sni) ctx.sni = sni;
  return { name: TLS_TRANSPORT_SOCKET, typed_config: ctx };
}

/** STRICT/PERMISSIVE inbound → the filter chain's transport socket; the client must present a mesh certificate. */
export function istioMutualDownstream(flavor: Flavor): ProtoObject {
  return {
    name: TLS_TRANSPORT_SOCKET,
    typed_config: { '@type': DOWNSTREAM_TLS_CONTEXT_TYPE, common_tls_context: commonTls(flavor, []), require_client_certificate: { value: true } },
  };
}

/** True when a DestinationRule asks for ISTIO_MUTUAL anywhere (its clusters then depend on endpoint identities). */
export function usesIstioMutual(dr: { spec: any } | undefined): boolean {
  const policies = [dr?.spec?.trafficPolicy, ...((dr?.spec?.subsets ?? []) as any[]).map((s) => s.trafficPolicy)];
  return policies.some((tp) => tp?.tls?.mode === 'ISTIO_MUTUAL'
    || ((tp?.portLevelSettings ?? []) as any[]).some((pl) => pl?.tls?.mode === 'ISTIO_MUTUAL'));
}
