/**
 * The server-side listener of a proxyless gRPC server (istiod's grpcgen lds.go buildInboundListeners): grpc-js-xds
 * asks for `xds.istio.io/grpc/lds/inbound/HOST:PORT`; the answer carries one filter chain, mTLS when the port's
 * PeerAuthentication mode is STRICT (or PERMISSIVE on a workload labelled for auto-mTLS: gRPC cannot serve both),
 * plaintext otherwise, with the RBAC filters of the AuthorizationPolicies that select the workload.
 */
import type { ProtoObject } from '../../../src/proto/encode.js';
import type { PushContext } from '../../../src/model/push-context.js';
import { HCM_TYPE, LISTENER_TYPE, ROUTER_TYPE } from '../../../src/proto/type-urls.js';
import { mtlsModeForPort } from './peer-authn.js';
import { buildRbacHttpFilters } from './authz-builder.js';
import { istioMutualDownstream } from './tls-context.js';
import { TLS_MODE_LABEL } from './policy-select.js';

export const GRPC_INBOUND_PREFIX = 'xds.istio.io/grpc/lds/inbound/';

export function isGrpcInboundName(name: string): boolean { return name.startsWith(GRPC_INBOUND_PREFIX); }

function splitHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : undefined;
}

export function buildGrpcInboundListener(ctx: PushContext, namespace: string, labels: Record<string, string>, name: string): ProtoObject | undefined {
  const hp = splitHostPort(name.slice(GRPC_INBOUND_PREFIX.length));
  if (!hp) return undefined;
  let mode = mtlsModeForPort(ctx, namespace, labels, hp.port);
  if (mode === 'PERMISSIVE' && labels[TLS_MODE_LABEL] === 'istio') mode = 'STRICT';
  const mtls = mode === 'STRICT';
  const rbac = buildRbacHttpFilters(ctx, namespace, labels, 'grpc');
  const suffix = mtls ? 'mtls' : 'plaintext';
  const chain: ProtoObject = {
    name: `inbound-${suffix}`,
    filters: [{
      name: `inbound-hcm${suffix}`,
      typed_config: {
        '@type': HCM_TYPE,
        stat_prefix: `inbound_${hp.port}`,
        route_config: {
          name: 'inbound',
          virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ match: { prefix: '/' }, non_forwarding_action: {} }] }],
        },
        http_filters: [...rbac.filters, { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
      },
    }],
  };
  if (mtls) chain.transport_socket = istioMutualDownstream('grpc');
  return {
    '@type': LISTENER_TYPE,
    name,
    address: { socket_address: { address: hp.host, port_value: hp.port } },
    filter_chains: [chain],
  };
}
