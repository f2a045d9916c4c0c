/**
 * `meshpilot proxy-config {clusters|listeners|routes|endpoints|secrets} PROXY [-o json]`: one proxy's config as
 * this server last sent it (/debug/config_dump?proxyID=), summarised in the tables `istioctl proxy-config` prints.
 */
import { X509Certificate } from 'node:crypto';
import { Command } from 'commander';
import { DEFAULT_SERVER, fetchJson, formatTable } from './table.js';

type Obj = Record<string, any>;
const ADMIN = 'type.googleapis.com/envoy.admin.v3.';

/** google.protobuf.Struct as decoded (either field-name style) → plain JSON. */
function structValue(v: any): unknown {
  if (v == null || typeof v !== 'object') return v;
  if ('fields' in v) return Object.fromEntries(Object.entries(v.fields ?? {}).map(([k, x]) => [k, structValue(x)]));
  for (const k of ['string_value', 'stringValue', 'number_value', 'numberValue', 'bool_value', 'boolValue']) if (k in v) return v[k];
  if ('struct_value' in v || 'structValue' in v) return structValue(v.struct_value ?? v.structValue);
  if ('list_value' in v || 'listValue' in v) return ((v.list_value ?? v.listValue).values ?? []).map(structValue);
  return v;
}

/** `/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME` → `NAME.NS` (istioctl's rendering). */
function istioConfigRef(metadata: any): string {
  const istio = structValue(metadata?.filter_metadata?.istio) as Obj | undefined;
  const m = typeof istio?.config === 'string' ? /namespaces\/([^/]+)\/[^/]+\/([^/]+)$/.exec(istio.config) : null;
  return m ? `${m[2]}.${m[1]}` : '-';
}

function section(dump: Obj, kind: string): Obj {
  return (dump.configs as Obj[]).find((c) => c['@type'] === `${ADMIN}${kind}`) ?? {};
}

export function clusters(dump: Obj): Obj[] {
  return (section(dump, 'ClustersConfigDump').dynamic_active_clusters ?? []).map((c: Obj) => c.cluster);
}
export function listeners(dump: Obj): Obj[] {
  return (section(dump, 'ListenersConfigDump').dynamic_listeners ?? []).map((l: Obj) => l.active_state?.listener).filter(Boolean);
}
export function routes(dump: Obj): Obj[] {
  return (section(dump, 'RoutesConfigDump').dynamic_route_configs ?? []).map((r: Obj) => r.route_config);
}
export function endpoints(dump: Obj): Obj[] {
  return (section(dump, 'EndpointsConfigDump').dynamic_endpoint_configs ?? []).map((e: Obj) => e.endpoint_config);
}
export function secrets(dump: Obj): Obj[] {
  return (section(dump, 'SecretsConfigDump').dynamic_active_secrets ?? []).map((s: Obj) => s.secret ?? {});
}

export function clustersTable(dump: Obj): string {
  const rows = clusters(dump).map((c) => {
    const parts = String(c.name).split('|');
    const type = c.type ?? (c.eds_cluster_config ? 'EDS' : c.cluster_discovery_type ? 'CUSTOM' : 'STATIC');
    if (parts.length === 4) {
      const [direction, port, subset, fqdn] = parts as [string, string, string, string];
      return [fqdn, port, subset || '-', direction, type, istioConfigRef(c.metadata)];
    }
    return [c.name, '-', '-', '-', type, '-'];
  }).sort((a, b) => a[0]!.localeCompare(b[0]!) || Number(a[1]) - Number(b[1]) || a[2]!.localeCompare(b[2]!) || a[3]!.localeCompare(b[3]!));
  return formatTable(['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'], rows);
}

function filterChainMatch(m: Obj | undefined): string {
  if (!m || Object.keys(m).length === 0) return 'ALL';
  const parts: string[] = [];
  if (m.destination_port) parts.push(`Port: ${m.destination_port.value ?? m.destination_port}`);
  if (m.prefix_ranges?.length) parts.push(`Addr: ${m.prefix_ranges.map((r: Obj) => `${r.address_prefix}/${r.prefix_len?.value ?? r.prefix_len ?? 32}`).join(',')}`);
  if (m.server_names?.length) parts.push(`SNI: ${m.server_names.join(',')}`);
  if (m.transport_protocol) parts.push(`Trans: ${m.transport_protocol}`);
  if (m.application_protocols?.length) parts.push(`App: ${m.application_protocols.join(',')}`);
  return parts.join('; ') || 'ALL';
}

function chainDestination(chain: Obj): string {
  for (const f of chain.filters ?? []) {
    const cfg = f.typed_config ?? {};
    if (String(cfg['@type']).endsWith('HttpConnectionManager')) {
      if (cfg.rds) return `Route: ${cfg.rds.route_config_name}`;
      if (cfg.route_config) return `Inline Route: ${cfg.route_config.name ?? ''}`.trimEnd();
      return 'HTTP';
    }
    if (String(cfg['@type']).endsWith('TcpProxy')) {
      if (cfg.cluster) return `Cluster: ${cfg.cluster}`;
      if (cfg.weighted_clusters) return `WeightedClusters: ${cfg.weighted_clusters.clusters.map((c: Obj) => c.name).join(',')}`;
    }
  }
  return 'Non-HTTP/Non-TCP';
}

export function listenersTable(dump: Obj): string {
  const rows: string[][] = [];
  for (const l of listeners(dump)) {
    const sa = l.address?.socket_address;
    const address = sa?.address ?? '';
    const port = String(sa?.port_value ?? 0);
    if (l.api_listener) { rows.push([l.name, '-', 'ALL', `API Listener: ${l.name}`]); continue; }
    const chains: Obj[] = l.filter_chains ?? [];
    if (chains.length === 0 && l.default_filter_chain === undefined) rows.push([address, port, 'ALL', l.name]);
    for (const c of chains) rows.push([address, port, filterChainMatch(c.filter_chain_match), chainDestination(c)]);
    if (l.default_filter_chain) rows.push([address, port, 'ALL', chainDestination(l.default_filter_chain)]);
  }
  rows.sort((a, b) => Number(a[1]) - Number(b[1]) || a[0]!.localeCompare(b[0]!));
  return formatTable(['ADDRESSES', 'PORT', 'MATCH', 'DESTINATION'], rows);
}

function routeMatch(m: Obj | undefined): string {
  if (!m) return '/*';
  if (m.prefix !== undefined) return `${m.prefix === '/' ? '' : m.prefix}/*`.replace('//*', '/*');
  if (m.path !== undefined) return m.path;
  if (m.safe_regex) return m.safe_regex.regex;
  if (m.path_separated_prefix !== undefined) return `${m.path_separated_prefix}/*`;
  return '/*';
}

function domainsText(domains: string[]): string {
  if (domains.length <= 2) return domains.join(', ');
  return `${domains.slice(0, 2).join(', ')} + ${domains.length - 2} more...`;
}

export function routesTable(dump: Obj): string {
  const rows: string[][] = [];
  for (const rc of routes(dump)) {
    for (const vh of rc.virtual_hosts ?? []) {
      for (const r of vh.routes ?? [{}]) rows.push([rc.name, vh.name, domainsText(vh.domains ?? []), routeMatch(r.match), istioConfigRef(r.metadata)]);
    }
  }
  return formatTable(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'], rows);
}

export function endpointsTable(dump: Obj): string {
  const rows: string[][] = [];
  for (const cla of endpoints(dump)) {
    for (const loc of cla.endpoints ?? []) {
      for (const e of loc.lb_endpoints ?? []) {
        const sa = e.endpoint?.address?.socket_address;
        const status = !e.health_status || e.health_status === 'UNKNOWN' ? 'HEALTHY' : e.health_status;
        rows.push([`${sa?.address}:${sa?.port_value}`, status, 'OK', cla.cluster_name]);
      }
    }
  }
  rows.sort((a, b) => a[3]!.localeCompare(b[3]!) || a[0]!.localeCompare(b[0]!));
  return formatTable(['ENDPOINT', 'STATUS', 'OUTLIER CHECK', 'CLUSTER'], rows);
}

export function secretsTable(dump: Obj): string {
  const rows = secrets(dump).map((s) => {
    const tls = s.tls_certificate;
    const ca = s.validation_context;
    const pem = tls?.certificate_chain?.inline_bytes ?? ca?.trusted_ca?.inline_bytes;
    let valid = 'false'; let serial = '-'; let notAfter = '-'; let notBefore = '-';
    if (pem) {
      try {
        const cert = new X509Certificate(Buffer.from(pem, 'base64'));
        const now = Date.now();
        valid = String(Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo));
        serial = cert.serialNumber.toLowerCase();
        notAfter = new Date(cert.validTo).toISOString();
        notBefore = new Date(cert.validFrom).toISOString();
      } catch { valid = 'false'; }
    }
    return [s.name ?? '', tls ? 'Cert Chain' : 'CA', 'ACTIVE', valid, serial, notAfter, notBefore];
  });
  return formatTable(['RESOURCE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'], rows);
}

const KINDS = {
  clusters: [clusters, clustersTable],
  listeners: [listeners, listenersTable],
  routes: [routes, routesTable],
  endpoints: [endpoints, endpointsTable],
  secrets: [secrets, secretsTable],
} as const;

export function proxyConfigCommand(): Command {
  const cmd = new Command('proxy-config').description("Show a proxy's config as meshpilot last sent it (clusters, listeners, routes, endpoints, secrets)");
  for (const [kind, [extract, table]] of Object.entries(KINDS)) {
    cmd.addCommand(new Command(kind)
      .description(`the ${kind} sent to PROXY (node ID, or POD.NAMESPACE)`)
      .argument('<proxy>', 'proxy ID')
      .option('--server <host:port>', 'meshpilot monitoring address', DEFAULT_SERVER)
      .option('-o, --output <format>', 'table or json', 'table')
      .action(async (proxy: string, o: { server: string; output: string }) => {
        if (o.output !== 'table' && o.output !== 'json') throw new Error(`--output ${o.output}: expected table or json`);
        const dump = await fetchJson(o.server, `/debug/config_dump?proxyID=${encodeURIComponent(proxy)}`) as Obj;
        process.stdout.write(o.output === 'json' ? `${JSON.stringify(extract(dump), null, 2)}\n` : table(dump));
      }));
  }
  return cmd;
}
