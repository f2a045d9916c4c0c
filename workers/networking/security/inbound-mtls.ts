/**
 * A sidecar's inbound filter chains under PeerAuthentication and AuthorizationPolicy (istiod's
 * pilot/pkg/networking/core/listener_inbound.go with authn's InboundMTLSSettings):
 *
 * - STRICT: one chain per port, matched on the port alone, whose transport socket demands a client certificate
 *   from the mesh (plaintext fails the handshake);
 * - PERMISSIVE: Istio mTLS (TLS with Istio's ALPN, seen by the tls_inspector) on one chain, plaintext
 *   (`raw_buffer`) on another;
 * - DISABLE: the plaintext chain only.
 *
 * HTTP chains get the workload's RBAC filters before the router. The caller builds the plain chain; these
 * functions only add matches, transport sockets and filters to copies of it.
 */
import type { ProtoObject } from '../../../src/proto/encode.js';
import type { PushContext } from '../../../src/model/push-context.js';
import { DOWNSTREAM_TLS_CONTEXT_TYPE } from '../../../src/proto/type-urls.js';
import { mtlsModeForPort, type MtlsMode } from './peer-authn.js';
import { buildRbacHttpFilters } from './authz-builder.js';
import { securityHttpFilters } from './jwt-builder.js';
import { ADS_SDS, ROOT_SECRET, TLS_TRANSPORT_SOCKET, WORKLOAD_SECRET } from './tls-context.js';

/** ALPN values a client sidecar's Istio mTLS carries for HTTP. */
export const ISTIO_HTTP_ALPN = ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'];
/** ALPN values istiod's inbound mTLS chains of a declared port match (client sidecars send these; see ISTIO_ALPN upstream). */
export const INBOUND_ISTIO_ALPN = ['istio', 'istio-peer-exchange', ...ISTIO_HTTP_ALPN];


export function inboundMtlsSocket(): ProtoObject {
  return {
    name: TLS_TRANSPORT_SOCKET,
    typed_config: {
      '@type': DOWNSTREAM_TLS_CONTEXT_TYPE,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: WORKLOAD_SECRET, sds_config: ADS_SDS }],
        combined_validation_context: {
          default_validation_context: {},
          validation_context_sds_secret_config: { name: ROOT_SECRET, sds_config: ADS_SDS },
        },
        alpn_protocols: ['h2', 'http/1.1'],
      },
      require_client_certificate: { value: true },
    },
  };
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

/** Put authn/authz filters in front: HTTP ones into an HCM's http_filters, network RBAC before a TCP proxy. */
function withRbac(chain: ProtoObject, http: ProtoObject[], tcp: ProtoObject[]): ProtoObject {
  if (http.length === 0 && tcp.length === 0) return chain;
  const out = clone(chain);
  const filters = (out.filters ?? []) as ProtoObject[];
  const isHttp = filters.some((f) => Array.isArray((f.typed_config as ProtoObject | undefined)?.http_filters));
  if (isHttp) {
    for (const f of filters) {
      const tc = f.typed_config as ProtoObject | undefined;
      if (tc && Array.isArray(tc.http_filters)) tc.http_filters = [...http, ...tc.http_filters];
    }
  } else {
    out.filters = [...tcp, ...filters];
  }
  return out;
}

export interface InboundSecurity {
  chains: ProtoObject[];
  mode: MtlsMode;
}

/** The secured variants of one inbound port's chain (`base` has a destination_port filter_chain_match). */
export function securedInboundChains(
  ctx: PushContext, namespace: string, labels: Record<string, string>, port: number, base: ProtoObject, sds: boolean,
): InboundSecurity {
  const mode = mtlsModeForPort(ctx, namespace, labels, port);
  const http = securityHttpFilters(ctx, namespace, labels, buildRbacHttpFilters(ctx, namespace, labels, 'envoy').filters);
  const plain = withRbac(base, http, buildRbacHttpFilters(ctx, namespace, labels, 'envoy', true).filters);
  const match = (plain.filter_chain_match ?? {}) as ProtoObject;
  const mtls = (extra: ProtoObject): ProtoObject => ({
    ...clone(plain),
    filter_chain_match: { ...match, ...extra },
    transport_socket: inboundMtlsSocket(),
  });
  switch (mode) {
    case 'DISABLE':
      return { mode, chains: [plain] };
    case 'STRICT':
      return { mode, chains: [mtls({})] };
    case 'PERMISSIVE':
      // Without SDS (plaintext xDS port) the mTLS chain could never get its certificate: accept plaintext only.
      // STRICT stays STRICT regardless: it fails closed.
      if (!sds) return { mode, chains: [plain] };
      return {
        mode,
        chains: [
          mtls({ transport_protocol: 'tls', application_protocols: INBOUND_ISTIO_ALPN }),
          { ...plain, filter_chain_match: { ...match, transport_protocol: 'raw_buffer' } },
        ],
      };
  }
}
