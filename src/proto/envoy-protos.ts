/**
 * Loads Envoy's .proto files. They ship inside @grpc/grpc-js-xds (deps/), which is not a documented API of that
 * package: its version is pinned in package.json and this is the only module that knows the path.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import fs from 'node:fs';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const XDS_PKG_DIR = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const PROTOBUFJS_DIR = path.dirname(require.resolve('protobufjs/package.json'));

export const PROTO_INCLUDE_DIRS = [
  path.join(XDS_PKG_DIR, 'deps/envoy-api'),
  path.join(XDS_PKG_DIR, 'deps/xds'),
  path.join(XDS_PKG_DIR, 'deps/googleapis'),
  path.join(XDS_PKG_DIR, 'deps/protoc-gen-validate'),
];

const ENTRY_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/grpc_stats/v3/config.proto',
  'envoy/extensions/request_id/uuid/v3/uuid.proto',
  'envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/config/retry/previous_priorities/previous_priorities_config.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/network/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
];

let root: protobuf.Root | undefined;

/** The protobufjs Root with every Envoy type meshpilot emits or reads. Loaded once per thread. */
export function envoyRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target) && fs.existsSync(target)) return target;
    if (target.startsWith('google/protobuf/')) {
      // protobufjs bundles the well-known types as JSON descriptors; its .proto copies live here too.
      const wk = path.join(PROTOBUFJS_DIR, target);
      if (fs.existsSync(wk)) return wk;
    }
    for (const dir of PROTO_INCLUDE_DIRS) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target;
  };
  r.loadSync(ENTRY_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

export function lookupType(fullName: string): protobuf.Type {
  return envoyRoot().lookupType(fullName);
}
